/** src/sources/tcp.ts */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSource } from "../../src/sources/index.ts";
import { parseProcNetTcp, tcpLoad } from "../../src/sources/tcp.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;

test("tcp: real /proc/net/tcp and tcp6, IPv4 and IPv6, every state", () => {
  const v4 = parseProcNetTcp(fixture("proc-nginx/net/tcp"));
  const v6 = parseProcNetTcp(fixture("proc-nginx/net/tcp6"));
  assert.equal(v4.length, 13);
  assert.equal(v6.length, 6);
  // nginx on 127.0.0.1:8080 and [::1]:8080 with 5 + 2 held connections; TIME_WAIT and client ends not counted.
  assert.deepEqual(tcpLoad([...v4, ...v6], new Set([8080]), 50), { ready: 43, busy: 7 });
  assert.deepEqual(tcpLoad([...v4, ...v6], undefined, 50), { ready: 43, busy: 7 });
  assert.deepEqual(tcpLoad(v4, new Set([8080]), 50), { ready: 45, busy: 5 });
  assert.deepEqual(tcpLoad([...v4, ...v6], new Set([8080]), 3), { ready: 0, busy: 7 });
  const apache = parseProcNetTcp(fixture("proc-apache/net/tcp"));
  assert.deepEqual(tcpLoad(apache, new Set([80]), 20), { ready: 8, busy: 12 });
});

test("tcp: watched ports that nothing listens on are no data: the server is down", () => {
  const sockets = parseProcNetTcp(fixture("proc-nginx/net/tcp"));
  assert.throws(() => tcpLoad(sockets, new Set([80, 443]), 10), /nothing listens on port 80, 443/);
  assert.throws(() => tcpLoad([], undefined, 10), /nothing listens on any TCP port/);
  // One of two ports listening is enough.
  assert.deepEqual(tcpLoad(sockets, new Set([80, 8080]), 10), { ready: 5, busy: 5 });
});

test("tcp: malformed /proc files are rejected", () => {
  const header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  for (
    const text of [
      "",
      "garbage\n",
      header + "   0: 0100007F:0050\n",
      header +
      "   0: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n",
      header + "hello world\n",
    ]
  ) {
    assert.throws(() => parseProcNetTcp(text), /not a \/proc\/net\/tcp/, JSON.stringify(text));
  }
  assert.deepEqual(parseProcNetTcp(header), []);
});

test("tcp: the source reads /proc from --proc-root", async () => {
  const source = await createSource("tcp:8080", {
    names: FLAG_NAMES,
    capacity: 10,
    procRoot: join(FIXTURES, "proc-nginx"),
  });
  assert.deepEqual(await source.read(never), { ready: 3, busy: 7 });
  const down = await createSource("tcp:9999", {
    names: FLAG_NAMES,
    capacity: 10,
    procRoot: join(FIXTURES, "proc-nginx"),
  });
  await assert.rejects(down.read(never), /nothing listens on port 9999/);
  const missing = await createSource("tcp", {
    names: FLAG_NAMES,
    capacity: 10,
    procRoot: join(scratch, "no-proc"),
  });
  await assert.rejects(missing.read(never), /ENOENT/);
});
