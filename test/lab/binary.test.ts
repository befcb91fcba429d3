/**
 * The compiled binary as users get it: alone in a folder, no node_modules near, an empty
 * environment, and in a root file system holding nothing but it and the libraries ldd names.
 * Runs when HEARTBEAT_BINARY names one (scripts/test.ts builds dist/heartbeat-linux-x64).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { Lab, runtimeCommand } from "../../scripts/lab/lab.ts";
import { skipUnlessLab } from "../support/lab.ts";

const binary = process.env.HEARTBEAT_BINARY;
const skip = binary ? false : "HEARTBEAT_BINARY names no compiled binary (scripts/test.ts sets it)";
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-binary-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test(
  "binary: runs alone with an empty environment, and knows its version and target",
  { skip },
  () => {
    const alone = join(scratch, "heartbeat");
    copyFileSync(binary!, alone);
    const version = spawnSync("env", ["-i", alone, "--version"], {
      cwd: scratch,
      encoding: "utf8",
    });
    assert.equal(version.status, 0, version.stderr);
    // The commit and date scripts/build.ts baked in: "from source" would mean they were not.
    assert.match(
      version.stdout,
      /^heartbeat \d+\.\d+\.\d+ \([0-9a-f]{7}(-dirty)?, \d{4}-\d\d-\d\d, bun [\d.]+, linux-x64\)\n$/,
    );
    const once = spawnSync("env", [
      "-i",
      alone,
      "-a",
      "239.0.0.1:27999",
      "--ready",
      "3",
      "--dry-run",
      "--once",
    ], { cwd: scratch, encoding: "utf8" });
    assert.deepEqual([once.status, once.stdout, once.stderr], [
      0,
      "239.0.0.1:27999 v=1&ready=3&busy=0\n",
      "",
    ]);
    const wrong = spawnSync("env", ["-i", alone, "-a", "239.0.0.1"], {
      cwd: scratch,
      encoding: "utf8",
    });
    assert.equal(wrong.status, 2);
    assert.match(
      wrong.stderr,
      /^heartbeat: --address '239\.0\.0\.1': No port provided in address\n/,
    );
  },
);

test("binary: ignores a .env and a bunfig.toml in the directory it is started in", { skip }, () => {
  const folder = join(scratch, "elsewhere");
  mkdirSync(folder);
  writeFileSync(join(folder, ".env"), "HEARTBEAT_BUSY=7\n");
  writeFileSync(join(folder, "preload.ts"), "console.log('preloaded');\n");
  writeFileSync(join(folder, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
  const once = spawnSync("env", [
    "-i",
    binary!,
    "-a",
    "239.0.0.1:27999",
    "--ready",
    "3",
    "--dry-run",
    "--once",
  ], { cwd: folder, encoding: "utf8" });
  assert.deepEqual([once.status, once.stdout, once.stderr], [
    0,
    "239.0.0.1:27999 v=1&ready=3&busy=0\n",
    "",
  ]);
});

test(
  "binary: runs in a root file system of itself and the libraries ldd names (what a distroless image holds)",
  { skip: skip || (process.getuid?.() === 0 ? false : "chroot needs root") },
  () => {
    const root = join(scratch, "root");
    mkdirSync(root);
    copyFileSync(binary!, join(root, "heartbeat"));
    const libraries = execFileSync("ldd", [binary!], { encoding: "utf8" }).split("\n")
      .map((line) => /(\/\S+)/.exec(line.includes("=>") ? line.split("=>")[1] : line)?.[1]).filter((
        path,
      ): path is string => !!path);
    for (const library of libraries) {
      mkdirSync(join(root, dirname(library)), { recursive: true });
      copyFileSync(library, join(root, library));
    }
    // /proc as a container runtime mounts it (Bun aborts without it), in a mount namespace of its own.
    mkdirSync(join(root, "proc"));
    const run = spawnSync("/usr/bin/unshare", [
      "--mount",
      "--",
      "/bin/sh",
      "-c",
      `mount -t proc proc '${root}/proc' && exec /usr/sbin/chroot '${root}' /heartbeat -a 239.0.0.1:27999 --ready 5 --busy 1 --dry-run --once`,
    ], { env: {}, encoding: "utf8" });
    assert.deepEqual([run.status, run.stdout, run.stderr], [
      0,
      "239.0.0.1:27999 v=1&ready=5&busy=1\n",
      "",
    ]);
  },
);

test(
  "binary: scripts/smoke.ts, which the release workflow runs on Windows and macOS, passes here",
  { skip: skip || skipUnlessLab() },
  async () => {
    const lab = new Lab();
    try {
      lab.addNamespace("host");
      const result = await lab.run("host", runtimeCommand("bun", "scripts/smoke.ts", [binary!]));
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /^ok +a listener on 127\.0\.0\.1 receives it$/m);
    } finally {
      await lab.close();
    }
  },
);
