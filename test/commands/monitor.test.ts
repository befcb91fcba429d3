/** The monitor command with a fake context: which signals stop it, and which it only logs. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runMonitorCommand } from "../../src/commands/monitor.ts";
import { loadSettings } from "../../src/config/load.ts";
import { resolveSettings } from "../../src/settings.ts";
import { FAKE_RMEM_MAX, fakeContext, INVOCATION } from "../support/fakes.ts";
import { waitFor } from "../../scripts/lab/lab.ts";

test("monitor command: SIGHUP, SIGUSR1, SIGUSR2, SIGTTOU and SIGTTIN are logged and change nothing; SIGTERM stops it", async () => {
  const { signals, log, context } = fakeContext();
  const resolved = resolveSettings({ flags: { listen: "239.0.0.1:27999" }, env: {} });
  const running = runMonitorCommand(resolved, INVOCATION, context);
  await waitFor(
    () => log.lines.some((line) => line.includes("listening on udp 239.0.0.1:27999")),
    5_000,
    "the monitor",
  );
  for (const signal of ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN"] as const) {
    signals.send(signal);
  }
  await waitFor(
    () => log.lines.some((line) => line.includes("SIGTTIN: the monitor does not drain; ignored")),
    5_000,
    "the last one logged",
  );
  assert.match(log.lines.join("\n"), /SIGHUP: the monitor does not reload its configuration/);
  signals.send("SIGTERM");
  assert.equal(await running, 0);
  assert.match(log.lines.join("\n"), /stopping on SIGTERM\n.*stopped$/s);
  assert.ok(signals.closed);
});

test("monitor command: says the receive buffer the kernel gave, and what to raise when it gave less", async () => {
  for (
    const [asked, said, warned] of [[1 << 20, 1 << 20, false], [
      8 << 20,
      FAKE_RMEM_MAX,
      true,
    ]] as const
  ) {
    const { signals, log, context } = fakeContext();
    const resolved = resolveSettings({
      flags: { listen: "239.0.0.1:27999", "receive-buffer": String(asked) },
      env: {},
    });
    const running = runMonitorCommand(resolved, INVOCATION, context);
    await waitFor(
      () => log.lines.some((line) => line.includes("listening on")),
      5_000,
      "the monitor",
    );
    signals.send("SIGTERM");
    assert.equal(await running, 0);
    const text = log.lines.join("\n");
    assert.match(text, new RegExp(`listening on udp .*; receive buffer ${said} bytes`));
    assert.equal(
      text.includes(
        `--receive-buffer ${asked}: the kernel gave ${said} bytes, its limit (net.core.rmem_max); ` +
          `raise it with sysctl -w net.core.rmem_max=${asked}`,
      ),
      warned,
      text,
    );
  }
});

test("monitor command: the receive buffer's warning names the setting as it was given", async () => {
  const asked = 8 << 20;
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-names-"));
  const configFile = join(dir, "heartbeat.conf");
  writeFileSync(configFile, `HeartbeatReceiveBuffer ${asked}\n`);
  try {
    for (
      const [options, name] of [
        [{ env: { HEARTBEAT_RECEIVE_BUFFER: String(asked) } }, "HEARTBEAT_RECEIVE_BUFFER"],
        [{ env: {}, configFile }, `HeartbeatReceiveBuffer at ${configFile}:1`],
      ] as const
    ) {
      const { signals, log, context } = fakeContext();
      const resolved = loadSettings({ flags: { listen: "239.0.0.1:27999" }, ...options });
      const running = runMonitorCommand(resolved, INVOCATION, context);
      await waitFor(() => log.lines.some((line) => line.includes("listening on")), 5_000, name);
      signals.send("SIGTERM");
      assert.equal(await running, 0);
      assert.ok(log.lines.join("\n").includes(`${name} ${asked}: the kernel gave `), name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
