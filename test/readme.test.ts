/**
 * The documents' commands, as a reader copies them: the repository's scripts run with the
 * project's own Bun (`npx bun`, as `npm ci` puts no `bun` on PATH), and CONTRIBUTING.md explains
 * every HEARTBEAT_* variable the tests read.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO } from "./support/lab.ts";

const read = (file: string) => readFileSync(join(REPO, file), "utf8");

/** Every file a contributor reads a command from: the documents, and the scripts' usage. */
function documents(): string[] {
  const docs = readdirSync(join(REPO, "docs")).filter((file) => file.endsWith(".md"))
    .map((file) => `docs/${file}`);
  const scripts = readdirSync(join(REPO, "scripts")).filter((file) => file.endsWith(".ts"))
    .map((file) => `scripts/${file}`);
  return ["README.md", "CONTRIBUTING.md", "Dockerfile", ...docs, ...scripts];
}

test("readme: every command that runs a repository script with Bun says npx bun", () => {
  const bare = documents().flatMap((file) =>
    read(file).split("\n").flatMap((line, index) =>
      /(?<!npx )\bbun scripts\//.test(line) ? [`${file}:${index + 1}: ${line.trim()}`] : []
    )
  );
  assert.deepEqual(bare, []);
});

test("readme: CONTRIBUTING says how to run one test file on each runtime, and every HEARTBEAT_* variable the tests read", () => {
  const contributing = read("CONTRIBUTING.md");
  assert.match(contributing, /npx deno test -A test\/\S+\.test\.ts/);
  assert.match(contributing, /npx bun test --timeout 120000 test\/\S+\.test\.ts/);
  const tests = [
    ...readdirSync(join(REPO, "test")).filter((file) => file.endsWith(".ts")).map((file) =>
      `test/${file}`
    ),
    ...readdirSync(join(REPO, "test", "support")).map((file) => `test/support/${file}`),
  ];
  const variables = new Set(
    tests.flatMap((file) =>
      [...read(file).matchAll(/process\.env\.(HEARTBEAT_[A-Z_]+)/g)].map((match) => match[1])
    ),
  );
  assert.ok(variables.has("HEARTBEAT_BINARY") && variables.has("HEARTBEAT_IMAGE"));
  for (const variable of variables) {
    assert.match(contributing, new RegExp(`\`${variable}=`), `${variable} in CONTRIBUTING.md`);
  }
});
