/** mod_heartmonitor's storage file, written and read (src/monitor/storage.ts). */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, test } from "node:test";
import {
  formatStorage,
  parseStorage,
  storageFolderProblem,
  writeFileAtomic,
} from "../../src/monitor/storage.ts";
import { collect, runtimeCommand, waitFor } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime } from "../support/lab.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-storage-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("monitor storage: mod_heartmonitor's exact line format", () => {
  const entries = [
    { ip: "10.0.0.1", ready: 5, busy: 2, port: 80, portGiven: false, lastSeen: 1000 },
    { ip: "10.0.0.2", ready: 0, busy: 9, port: 8080, portGiven: true, lastSeen: 4500 },
  ];
  assert.equal(
    formatStorage(entries, 7000),
    "10.0.0.1 &ready=5&busy=2&lastseen=6&port=80\n10.0.0.2 &ready=0&busy=9&lastseen=2&port=8080\n",
  );
  assert.equal(formatStorage([], 0), "");
});

test("monitor storage: replaced atomically, readable by all, no temporary files left", () => {
  const path = join(scratch, "hb.dat");
  writeFileAtomic(path, "first\n");
  writeFileAtomic(path, "10.0.0.1 &ready=1&busy=1&lastseen=0&port=80\n");
  assert.equal(readFileSync(path, "utf8"), "10.0.0.1 &ready=1&busy=1&lastseen=0&port=80\n");
  assert.equal(statSync(path).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith("hb.dat")), ["hb.dat"]);
  assert.throws(() => writeFileAtomic(join(scratch, "no-such-dir", "hb.dat"), "x"), /ENOENT/);
});

test("monitor storage: read back as mod_lbmethod_heartbeat reads it", () => {
  const text =
    "# comment\n10.0.0.1 &ready=8&busy=0&lastseen=1&port=80\nno-space-line\n10.0.0.2 &ready=12abc&busy=3\n10.0.0.3 &ready=5&busy=1&lastseen=12&port=81\n";
  assert.deepEqual(parseStorage(text), [
    { ip: "10.0.0.1", ready: 8, busy: 0, lastseen: 1, port: 80 },
    { ip: "10.0.0.2", ready: 12, busy: 3, lastseen: -1, port: 80 },
    { ip: "10.0.0.3", ready: 5, busy: 1, lastseen: 12, port: 81 },
  ]);
});

test("monitor storage: a symlink swapped in for the temporary file is never followed (a local user racing the monitor)", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-race-"));
  const secret = join(folder, "..", `${basename(folder)}-secret`);
  writeFileSync(secret, "root only\n", { mode: 0o600 });
  chmodSync(secret, 0o600);
  try {
    const [command, ...args] = runtimeCommand(currentRuntime(), "test/support/symlink-swapper.ts", [
      folder,
      "hb.dat.tmp.",
      secret,
      "3",
    ]);
    const swapper = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] });
    const output = collect(swapper);
    await waitFor(() => output().stdout.includes("started"), 20_000, "the swapper");
    const exited = new Promise((resolve) => swapper.once("exit", resolve));
    let done = false;
    void exited.then(() => done = true);
    while (!done) {
      for (let i = 0; i < 200; i++) {
        try {
          writeFileAtomic(join(folder, "hb.dat"), "10.0.0.1 &ready=1&busy=1&lastseen=0&port=80\n");
        } catch { /* lost the race: the monitor logs it and writes again next second */ }
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const { swapped } = JSON.parse(output().stdout.trim().split("\n").at(-1)!);
    assert.ok(swapped > 0, "the swapper never won a race");
    assert.equal(statSync(secret).mode & 0o777, 0o600, `after ${swapped} swaps`);
    assert.equal(readFileSync(secret, "utf8"), "root only\n", `after ${swapped} swaps`);
  } finally {
    rmSync(folder, { recursive: true, force: true });
    rmSync(secret, { force: true });
  }
});

test("monitor storage: a folder anybody may write to without the sticky bit is unsafe", () => {
  assert.match(
    storageFolderProblem(0o40777)!,
    /writable by everyone \(mode 0777\) without the sticky bit/,
  );
  assert.equal(storageFolderProblem(0o41777), undefined);
  assert.equal(storageFolderProblem(0o40755), undefined);
  assert.equal(storageFolderProblem(0o40775), undefined);
});
