/**
 * What a release holds: archives in the shape users know, checksums sha256sum can check, and
 * the contrib/ files an operator installs as they are (systemd units, example config).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { archive, imageSource, sha256sums } from "../scripts/build.ts";
import { VERSION } from "../scripts/repo.ts";
import { loadSettings } from "../src/config/load.ts";
import { main } from "../src/main.ts";
import { SETTINGS } from "../src/settings.ts";
import { agentCommand, commandAvailable } from "../scripts/lab/lab.ts";
import { REPO } from "../scripts/repo.ts";
import { currentRuntime, requiredOrSkipped } from "./support/lab.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-release-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("release: an archive holds one folder with the binary as heartbeat, LICENSE, NOTICE, README, CHANGELOG and contrib", () => {
  const binary = join(scratch, "heartbeat-linux-x64");
  writeFileSync(binary, "#!/bin/sh\necho fake\n", { mode: 0o755 });
  const folder = `heartbeat-${VERSION}-linux-x64`;
  const tarball = archive(binary, folder, false, scratch);
  assert.equal(tarball, join(scratch, `${folder}.tar.xz`));
  const listing = execFileSync("tar", ["-tvJf", tarball], { encoding: "utf8" });
  const names = listing.split("\n").filter(Boolean).map((line) =>
    line.split(/\s+/).slice(5).join(" ")
  ).sort();
  for (
    const name of [
      "heartbeat",
      "LICENSE",
      "NOTICE",
      "README.md",
      "CHANGELOG.md",
      "contrib/heartbeat.service",
      "contrib/heartbeat-monitor.service",
      "contrib/heartbeat.conf",
    ]
  ) {
    assert.ok(names.includes(`${folder}/${name}`), `${folder}/${name} in ${names.join(", ")}`);
  }
  assert.ok(names.every((name) => name.startsWith(`${folder}/`)), "one folder holds everything");
  assert.match(listing, new RegExp(`^-rwxr-xr-x root/root .* ${folder}/heartbeat$`, "m"));

  const zip = archive(binary, `heartbeat-${VERSION}-windows-x64`, true, scratch);
  assert.match(
    execFileSync("unzip", ["-l", zip], { encoding: "utf8" }),
    new RegExp(`heartbeat-${VERSION}-windows-x64/heartbeat\\.exe`),
  );

  const sums = sha256sums([zip, tarball], scratch);
  assert.deepEqual(
    readFileSync(sums, "utf8").split("\n").filter(Boolean).map((line) => line.split("  ")[1]),
    [`${folder}.tar.xz`, `heartbeat-${VERSION}-windows-x64.zip`],
  );
  const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: scratch, encoding: "utf8" });
  assert.equal(check.status, 0, check.stdout + check.stderr);
});

test("release: SHA256SUMS lists what this build made, not an image an earlier build left in dist", () => {
  const dist = mkdtempSync(join(tmpdir(), "heartbeat-release-dist-"));
  try {
    const binary = join(dist, "heartbeat-linux-x64");
    writeFileSync(binary, "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(dist, `heartbeat-0.1.0-linux-x64.image.tar`), "an older build's image");
    writeFileSync(join(dist, `heartbeat-0.1.0-linux-x64.tar.xz`), "an older build's archive");
    const made = archive(binary, `heartbeat-${VERSION}-linux-x64`, false, dist);
    const sums = readFileSync(sha256sums([made], dist), "utf8");
    assert.equal(sums.split("\n").filter(Boolean).length, 1, sums);
    assert.match(sums, new RegExp(`^[0-9a-f]{64}  heartbeat-${VERSION}-linux-x64\\.tar\\.xz\n$`));
  } finally {
    rmSync(dist, { recursive: true, force: true });
  }
});

test("release: the image's source label is a URL: IMAGE_SOURCE, else an https or git@ origin, else empty", () => {
  const repo = "https://github.com/example/heartbeat";
  assert.equal(imageSource("https://example.org/src", "/work/main"), "https://example.org/src");
  assert.equal(imageSource(undefined, "https://github.com/example/heartbeat.git"), repo);
  assert.equal(imageSource(undefined, "https://user:token@github.com/example/heartbeat"), repo);
  assert.equal(imageSource(undefined, "git@github.com:example/heartbeat.git"), repo);
  assert.equal(imageSource("", "git@github.com:example/heartbeat"), repo);
  for (
    const origin of [
      "/work/main",
      "../heartbeat",
      "file:///srv/git/heartbeat",
      "http://git.example/x",
      "ssh://git@github.com/example/heartbeat.git",
      undefined,
    ]
  ) {
    assert.equal(imageSource(undefined, origin), "", String(origin));
  }
});

test("release: LICENSE is the Apache License 2.0; NOTICE names Bun and JavaScriptCore; CHANGELOG has this version", () => {
  assert.match(
    readFileSync(join(REPO, "LICENSE"), "utf8"),
    /Apache License\s+Version 2\.0, January 2004/,
  );
  const notice = readFileSync(join(REPO, "NOTICE"), "utf8");
  for (const component of ["Bun", "JavaScriptCore", "BoringSSL", "mimalloc", "GNU C Library"]) {
    assert.ok(notice.includes(component), component);
  }
  assert.match(
    readFileSync(join(REPO, "CHANGELOG.md"), "utf8"),
    new RegExp(`^## \\[${VERSION.replace(/\./g, "\\.")}\\] - \\d{4}-\\d\\d-\\d\\d$`, "m"),
  );
});

test("release: contrib/heartbeat.conf names every directive, and checks as Syntax OK", async () => {
  const example = readFileSync(join(REPO, "contrib", "heartbeat.conf"), "utf8");
  for (const spec of SETTINGS) {
    assert.match(example, new RegExp(`^#?${spec.directive} `, "m"), spec.directive);
  }
  const out: string[] = [];
  // -t checks what a start would: with no web server here for auto to find, a fixed source.
  const code = await main(["-t", "-f", join(REPO, "contrib", "heartbeat.conf")], {
    stdout: (line) => out.push(line),
    stderr: (line) => out.push(line),
  }, { HEARTBEAT_SOURCE: "static", HEARTBEAT_READY: "1" });
  assert.deepEqual([code, out], [0, ["Syntax OK"]]);
});

test("release: HeartbeatKeyFile ${CREDENTIALS_DIRECTORY}/heartbeat.key finds the key systemd's LoadCredential= hands over", () => {
  const conf = join(scratch, "credentials.conf");
  writeFileSync(
    conf,
    "HeartbeatAddress 239.0.0.1:27999\nHeartbeatKeyFile ${CREDENTIALS_DIRECTORY}/heartbeat.key\n",
  );
  const resolved = loadSettings({
    flags: {},
    env: { CREDENTIALS_DIRECTORY: "/run/credentials/heartbeat.service" },
    configFile: conf,
  });
  assert.deepEqual(resolved.problems, []);
  assert.equal(resolved.settings.keyFile, "/run/credentials/heartbeat.service/heartbeat.key");
});

const noSystemd = requiredOrSkipped(
  commandAvailable("systemd-analyze")
    ? undefined
    : "systemd-analyze is not installed (apt-get install systemd)",
);

for (const unit of ["heartbeat.service", "heartbeat-monitor.service"]) {
  test(
    `release: contrib/${unit} passes systemd-analyze verify and scores at most 2.0 on security`,
    { skip: noSystemd },
    () => {
      // verify checks that ExecStart's program exists: point it at one that does.
      const copy = join(scratch, unit);
      writeFileSync(
        copy,
        readFileSync(join(REPO, "contrib", unit), "utf8").replaceAll(
          "/usr/local/bin/heartbeat",
          "/bin/true",
        ),
      );
      const verify = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
      assert.deepEqual([verify.status, verify.stdout + verify.stderr], [0, ""]);
      const security = spawnSync("systemd-analyze", [
        "security",
        "--offline=true",
        "--no-pager",
        copy,
      ], { encoding: "utf8" });
      const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1]);
      assert.ok(score <= 2.0, `exposure ${score}:\n${security.stdout}${security.stderr}`);
    },
  );
}

test("release: the tcp source reads /proc/net under the units' ProtectProc=invisible", {
  skip: process.getuid?.() === 0 && commandAvailable("unshare")
    ? false
    : "a mount namespace of its own needs root",
}, async () => {
  // A listening port, in this network namespace: the one the agent's /proc/net shows.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    // /proc as systemd mounts it for ProtectProc=invisible: other users' processes hidden.
    const agent = agentCommand(currentRuntime(), [
      "-a",
      "127.0.0.1:9",
      "--source",
      `tcp:${port}`,
      "--capacity",
      "10",
      "--dry-run",
      "--once",
    ])
      .map((arg) => `'${arg}'`).join(" ");
    const run = spawnSync("unshare", [
      "--mount",
      "--pid",
      "--fork",
      "--",
      "sh",
      "-c",
      `mount -t proc -o hidepid=invisible proc /proc && exec ${agent}`,
    ], {
      cwd: REPO,
      encoding: "utf8",
    });
    assert.deepEqual(
      [run.status, run.stdout],
      [0, "127.0.0.1:9 v=1&ready=10&busy=0\n"],
      run.stderr,
    );
  } finally {
    server.close();
  }
});
