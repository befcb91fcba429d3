import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseApacheStatus, withoutOwnScrape } from "../src/sources/apache.ts";
import { createSource, SOURCES } from "../src/sources/index.ts";
import { parseLoadText } from "../src/sources/load-text.ts";
import { nginxLoad, parseStubStatus } from "../src/sources/nginx.ts";
import { SourceConfigError, type SourceSettings } from "../src/sources/source.ts";
import { parseProcNetTcp, tcpLoad } from "../src/sources/tcp.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;

test("sources: static answers its numbers; busy defaults to 0", async () => {
  assert.deepEqual(await (await createSource("static", { ready: 10 })).read(never), {
    ready: 10,
    busy: 0,
  });
  assert.deepEqual(await (await createSource("static", { ready: 0, busy: 4 })).read(never), {
    ready: 0,
    busy: 4,
  });
  assert.equal(
    (await createSource("static", { ready: 1, busy: 2 })).description,
    "static ready=1 busy=2",
  );
});

test("sources: configuration mistakes are SourceConfigErrors naming the fix", async () => {
  const cases: [string, SourceSettings, RegExp][] = [
    ["static", {}, /--source static needs --ready N/],
    ["static:5", { ready: 1 }, /--source static takes no argument, got 'static:5'/],
    ["static", { ready: -1 }, /--ready must be a whole number/],
    [
      "apache2",
      {},
      /unknown source 'apache2'; the sources are: auto, static, apache, nginx, tcp, exec, file/,
    ],
    ["__proto__", {}, /unknown source '__proto__'/],
    ["apache:not a url", {}, /--source apache:URL: 'not a url' is not a URL/],
    ["apache:ftp://x/", {}, /is not an http or https URL/],
    [
      "nginx",
      {},
      /--source nginx needs --capacity N: how many connections this server can serve at once/,
    ],
    ["tcp", {}, /--source tcp needs --capacity N/],
    [
      "tcp:80,http",
      { capacity: 5 },
      /--source tcp:PORTS: '80,http' is not a list of ports like 80,443/,
    ],
    ["tcp:0", { capacity: 5 }, /is not a list of ports/],
    ["exec", {}, /--source exec:COMMAND needs a command/],
    ["exec:  ", {}, /--source exec:COMMAND needs a command/],
    ["file", {}, /--source file:PATH needs a path/],
    ["auto:x", {}, /--source auto takes no argument/],
  ];
  for (const [spec, settings, message] of cases) {
    await assert.rejects(
      createSource(spec, settings),
      (error: unknown) => error instanceof SourceConfigError && message.test(error.message),
      spec,
    );
  }
  for (const [name, definition] of Object.entries(SOURCES)) {
    assert.ok(definition.summary.length > 0, name);
  }
});

test("apache: scoreboards from real prefork, worker and event servers, by mod_heartbeat's rules", () => {
  // Apache's own BusyWorkers and IdleWorkers on the same pages agree with these counts.
  const expected: Record<string, [number, number]> = {
    "apache-prefork-idle.txt": [4, 1],
    "apache-prefork-busy.txt": [0, 13], // SSSS starting slots are neither ready nor busy
    "apache-worker-idle.txt": [19, 1],
    "apache-worker-busy.txt": [17, 13],
    "apache-event-idle.txt": [19, 1],
    "apache-event-busy.txt": [17, 13],
  };
  for (const [name, [ready, busy]] of Object.entries(expected)) {
    const text = fixture(name);
    assert.deepEqual(parseApacheStatus(text), { ready, busy }, name);
    assert.equal(
      Number(/^BusyWorkers: (\d+)$/m.exec(text)?.[1]),
      busy,
      `${name}: Apache's own count`,
    );
  }
});

test("apache: every slot state is counted as mod_heartbeat counts it", () => {
  assert.deepEqual(parseApacheStatus("Scoreboard: _SRWKDCLGI.\n"), { ready: 1, busy: 7 });
  assert.deepEqual(parseApacheStatus("Total Accesses: 1\nScoreboard: \n"), { ready: 0, busy: 0 });
});

test("apache: our own scrape's worker counts as ready, as mod_heartbeat would see it", () => {
  assert.deepEqual(withoutOwnScrape(parseApacheStatus(fixture("apache-event-idle.txt"))), {
    ready: 20,
    busy: 0,
  });
  assert.deepEqual(withoutOwnScrape(parseApacheStatus(fixture("apache-prefork-busy.txt"))), {
    ready: 1,
    busy: 12,
  });
  assert.deepEqual(withoutOwnScrape({ ready: 3, busy: 0 }), { ready: 3, busy: 0 });
});

test("apache: pages that are not mod_status ?auto are rejected", () => {
  const bad: [string, RegExp][] = [
    ["", /no Scoreboard: line/],
    ["<html><body>It works!</body></html>", /no Scoreboard: line/],
    ["Total Accesses: 5\nBusyWorkers: 1\n", /no Scoreboard: line/],
    ["Scoreboard: __W_x_\n", /characters mod_status does not use/],
    ["Scoreboard: __W_ _\n", /characters mod_status does not use/],
    ["\x00\xff\x12binary", /no Scoreboard: line/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseApacheStatus(text), message, JSON.stringify(text));
  }
});

test("nginx: stub_status from a real nginx, without our own scrape", () => {
  assert.deepEqual(parseStubStatus(fixture("nginx-busy.txt")), {
    active: 8,
    reading: 7,
    writing: 1,
    waiting: 0,
  });
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-idle.txt")), 100), {
    ready: 100,
    busy: 0,
  });
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-busy.txt")), 100), {
    ready: 93,
    busy: 7,
  });
  // Past capacity, ready is 0, never negative.
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-busy.txt")), 4), { ready: 0, busy: 7 });
  const waiting =
    "Active connections: 10\nserver accepts handled requests\n 1 1 1\nReading: 1 Writing: 3 Waiting: 6\n";
  assert.deepEqual(nginxLoad(parseStubStatus(waiting), 20), { ready: 11, busy: 3 });
});

test("nginx: text that is not stub_status is rejected", () => {
  for (
    const text of [
      "",
      "<html>404</html>",
      "Active connections: x\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0",
      "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1",
      "Active connections: -1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0",
    ]
  ) {
    assert.throws(
      () => parseStubStatus(text),
      /not an nginx stub_status page/,
      JSON.stringify(text),
    );
  }
  assert.throws(
    () =>
      parseStubStatus(
        "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 5 Writing: 1 Waiting: 0",
      ),
    /do not add up/,
  );
});

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
    capacity: 10,
    procRoot: join(FIXTURES, "proc-nginx"),
  });
  assert.deepEqual(await source.read(never), { ready: 3, busy: 7 });
  const down = await createSource("tcp:9999", {
    capacity: 10,
    procRoot: join(FIXTURES, "proc-nginx"),
  });
  await assert.rejects(down.read(never), /nothing listens on port 9999/);
  const missing = await createSource("tcp", { capacity: 10, procRoot: join(scratch, "no-proc") });
  await assert.rejects(missing.read(never), /ENOENT/);
});

test("load text: ready=N&busy=M or JSON, and nothing else", () => {
  assert.deepEqual(parseLoadText("ready=5&busy=2\n"), { ready: 5, busy: 2 });
  assert.deepEqual(parseLoadText("v=1&busy=0&ready=9&extra=1"), { ready: 9, busy: 0 });
  assert.deepEqual(parseLoadText(' {"ready": 3, "busy": 1, "other": true}\n'), {
    ready: 3,
    busy: 1,
  });
  const bad: [string, RegExp][] = [
    ["", /empty output/],
    ["   \n", /empty output/],
    ["ready=5", /expected ready=N&busy=M/],
    ["hello", /expected ready=N&busy=M/],
    ["ready=-1&busy=0", /ready must be a whole number/],
    ["ready=1.5&busy=0", /ready must be a whole number/],
    ["ready=five&busy=0", /ready must be a whole number/],
    ['{"ready": "5", "busy": 0}', /ready must be a whole number/],
    ['{"ready": 5}', /expected ready=N&busy=M/],
    ['{"ready": 5, "busy": 1e20}', /busy must be a whole number/],
    ["{not json", /not valid JSON/],
    ["null", /expected ready=N&busy=M/],
    ["[1,2]", /expected ready=N&busy=M/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseLoadText(text), message, JSON.stringify(text));
  }
});

test("exec: the command's output each read; failures and garbage are no data", async () => {
  assert.deepEqual(await (await createSource("exec:echo ready=4\\&busy=1", {})).read(never), {
    ready: 4,
    busy: 1,
  });
  assert.deepEqual(
    await (await createSource(`exec:printf '{"ready":2,"busy":0}'`, {})).read(never),
    { ready: 2, busy: 0 },
  );
  await assert.rejects(
    (await createSource("exec:echo oops >&2; exit 3", {})).read(never),
    /exited with status 3: oops/,
  );
  await assert.rejects(
    (await createSource("exec:echo garbage", {})).read(never),
    /expected ready=N&busy=M/,
  );
  await assert.rejects(
    (await createSource("exec:/no/such/command", {})).read(never),
    /exited with status 127/,
  );
  await assert.rejects(
    (await createSource("exec:head -c 100000 /dev/zero", {})).read(never),
    /printed more than/,
  );
});

test("exec: a command that hangs is killed at the deadline, with what it started", async () => {
  const pidFile = join(scratch, "background-pid");
  const source = await createSource(
    `exec:sleep 30 & echo $! > ${pidFile}; sleep 30; echo ready=1\\&busy=1`,
    {},
  );
  const started = Date.now();
  await assert.rejects(
    source.read(AbortSignal.timeout(300)),
    /did not finish in time and was killed/,
  );
  assert.ok(Date.now() - started < 5000);
  // Killed processes linger as zombies until reaped: give that a moment.
  const background = Number(readFileSync(pidFile, "utf8"));
  const gone = () => {
    try {
      process.kill(background, 0);
      return false;
    } catch {
      return true;
    }
  };
  for (let wait = 0; wait < 40 && !gone(); wait++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(gone(), "the command's background child was killed too");
});

test("file: the file's numbers while it is fresh; stale, missing or garbage files are no data", async () => {
  const path = join(scratch, "load");
  const source = await createSource(`file:${path}`, { maxAgeSeconds: 5 });
  await assert.rejects(source.read(never), /ENOENT/);
  writeFileSync(path, "ready=7&busy=3\n");
  assert.deepEqual(await source.read(never), { ready: 7, busy: 3 });
  writeFileSync(path, '{"ready":1,"busy":2}');
  assert.deepEqual(await source.read(never), { ready: 1, busy: 2 });
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
  await assert.rejects(source.read(never), /was last written 60 s ago \(more than --max-age 5\)/);
  writeFileSync(path, "half-writ");
  await assert.rejects(source.read(never), /expected ready=N&busy=M/);
  writeFileSync(path, "x".repeat(70_000));
  await assert.rejects(source.read(never), /too large/);
});

test("auto: static when --ready is given, and a clear error listing the choices when nothing fits", async () => {
  const source = await createSource("auto", { ready: 3 });
  assert.deepEqual(await source.read(never), { ready: 3, busy: 0 });
  assert.equal(source.description, "static ready=3 busy=0");
  assert.equal(source.chosenBecause, "--ready was given");
  await assert.rejects(
    createSource("auto", { procRoot: join(scratch, "no-proc") }),
    (error: unknown) => {
      assert.ok(error instanceof SourceConfigError);
      assert.match(
        error.message,
        /^no load source found \(tried apache: http:\/\/127\.0\.0\.1\/server-status\?auto: .*; nginx, tcp: need --capacity N\)/,
      );
      assert.match(
        error.message,
        /Choose one with --source: static --ready N, apache\[:URL\], nginx\[:URL\] --capacity N, tcp\[:PORTS\] --capacity N, exec:COMMAND or file:PATH$/,
      );
      return true;
    },
  );
});
