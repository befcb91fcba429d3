/** src/sources/php-fpm.ts, on status pages recorded from Debian's php8.2-fpm */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { FastCgiReader } from "../../src/sources/fastcgi.ts";
import {
  cgiBody,
  describeLocation,
  parsePoolStatus,
  parseStatusLocation,
  poolLoad,
} from "../../src/sources/php-fpm.ts";
import { createSource } from "../../src/sources/index.ts";
import { SourceConfigError } from "../../src/sources/source.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

/** The CGI response in a recorded FastCGI answer. */
function recorded(name: string): string {
  const reader = new FastCgiReader(1024 * 1024);
  reader.push(new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url))));
  return new TextDecoder().decode(reader.answer!.stdout);
}

const loadOf = (name: string) => poolLoad(parsePoolStatus(cgiBody(recorded(name), "/status")));

test("php-fpm: idle pools report every process ready, our own request counted as idle", () => {
  assert.deepEqual(parsePoolStatus(cgiBody(recorded("php-fpm-static-idle.fcgi"), "/status")), {
    pool: "www",
    listenQueue: 0,
    idle: 3,
    active: 1,
    ownPages: 1,
  });
  assert.deepEqual(loadOf("php-fpm-static-idle.fcgi"), { ready: 4, busy: 0 });
  assert.deepEqual(loadOf("php-fpm-dynamic-idle.fcgi"), { ready: 2, busy: 0 });
});

test("php-fpm: processes counted as they are now, not by the pool's totals, which lag", () => {
  const page = JSON.parse(cgiBody(recorded("php-fpm-static-idle.fcgi"), "/status"));
  const withProcesses = (states: [string, string][]) =>
    JSON.stringify({
      ...page,
      processes: states.map(([state, script]) => ({ ...page.processes[0], state, script })),
    });
  // Seen from php8.2-fpm just after it started: three processes forked, not yet waiting.
  const starting: [string, string][] = [
    ["Running", "-"],
    ["(null)", "-"],
    ["(null)", "-"],
    ["(null)", "-"],
  ];
  assert.deepEqual(poolLoad(parsePoolStatus(withProcesses(starting))), { ready: 1, busy: 0 });
  // Seen with status requests 5 ms apart: the previous one still finishing.
  const finishing: [string, string][] = [
    ["Idle", "-"],
    ["Idle", "-"],
    ["Finishing", "-"],
    ["Running", "-"],
  ];
  assert.deepEqual(poolLoad(parsePoolStatus(withProcesses(finishing))), { ready: 4, busy: 0 });
  // A PHP script's request is busy in every stage; one not yet read is busy too.
  const scripts = withProcesses([
    ["Reading headers", "-"],
    ["Getting request information", "-"],
    ["Running", "/var/www/index.php"],
    ["Finishing", "/var/www/index.php"],
    ["Running", "-"],
  ]);
  assert.deepEqual(poolLoad(parsePoolStatus(scripts)), { ready: 1, busy: 4 });
});

test("php-fpm: requests held in a sleeping script are busy", () => {
  assert.deepEqual(loadOf("php-fpm-static-busy.fcgi"), { ready: 2, busy: 2 });
  assert.deepEqual(loadOf("php-fpm-dynamic-busy.fcgi"), { ready: 1, busy: 2 });
});

test("php-fpm: a waiting connection means a saturated pool: ready=0, every process busy", () => {
  // Read through pm.status_listen, whose own process is not one of the pool's.
  assert.deepEqual(
    parsePoolStatus(cgiBody(recorded("php-fpm-saturated-status-listen.fcgi"), "/status")),
    { pool: "www", listenQueue: 2, idle: 0, active: 4, ownPages: 0 },
  );
  assert.deepEqual(loadOf("php-fpm-saturated-status-listen.fcgi"), { ready: 0, busy: 4 });
  assert.deepEqual(
    poolLoad({ pool: "www", listenQueue: 1, idle: 1, active: 3, ownPages: 1 }),
    { ready: 0, busy: 4 },
  );
});

test("php-fpm: a pool without pm.status_path, and pages that are not status pages", () => {
  assert.throws(
    () => cgiBody(recorded("php-fpm-not-found.fcgi"), "/fpm-status"),
    new Error(
      "answered 404 Not Found: set pm.status_path = /fpm-status in the pool's configuration",
    ),
  );
  assert.throws(
    () => cgiBody("Status: 403 Forbidden\r\nContent-type: text/html\r\n\r\nAccess denied.\n", "/s"),
    new Error("answered 403 Forbidden"),
  );
  assert.throws(() => cgiBody("no headers", "/status"), /answered without CGI headers/);
  assert.equal(cgiBody("Content-type: text/plain\n\nbody", "/status"), "body");
  const page = JSON.parse(cgiBody(recorded("php-fpm-static-idle.fcgi"), "/status"));
  const without = (key: string) => JSON.stringify({ ...page, [key]: undefined });
  for (
    const [body, message] of [
      ["pool: www\n", /not JSON/],
      ["[1]", /no pool name/],
      [without("listen queue"), /no 'listen queue' count/],
      [JSON.stringify({ ...page, "listen queue": -1 }), /no 'listen queue' count/],
      [without("processes"), /lists no processes: is this the \?json&full page\?/],
      [JSON.stringify({ ...page, processes: [{ state: "Idle" }] }), /lists no processes/],
    ] as const
  ) {
    assert.throws(() => parsePoolStatus(body), message, body);
  }
});

test("php-fpm: where the status page is, and mistakes in writing it", async () => {
  const cases: [string | undefined, string][] = [
    [undefined, "tcp://127.0.0.1:9000/status"],
    ["tcp://10.0.0.5:9001/fpm-status", "tcp://10.0.0.5:9001/fpm-status"],
    ["tcp://[::1]/status", "tcp://[::1]:9000/status"],
    ["tcp://127.0.0.1:9000", "tcp://127.0.0.1:9000/status"],
    ["unix:///run/php/php8.2-fpm.sock;/status", "unix:///run/php/php8.2-fpm.sock;/status"],
    ["unix:///run/php/php8.2-fpm.sock", "unix:///run/php/php8.2-fpm.sock;/status"],
    ["http://127.0.0.1/status", "http://127.0.0.1/status?json&full"],
    ["http://127.0.0.1:8080/fpm?html", "http://127.0.0.1:8080/fpm?json&full"],
  ];
  for (const [argument, described] of cases) {
    assert.equal(
      describeLocation(parseStatusLocation(argument, FLAG_NAMES)),
      described,
      String(argument),
    );
  }
  assert.deepEqual(parseStatusLocation("tcp://[::1]:9000/status", FLAG_NAMES), {
    address: { host: "::1", port: 9000 },
    path: "/status",
  });
  assert.equal(
    (await createSource("php-fpm", { names: FLAG_NAMES })).description,
    "php-fpm tcp://127.0.0.1:9000/status",
  );
  for (
    const [argument, why] of [
      ["127.0.0.1:9000", "is not a tcp, unix or http URI"],
      ["unix://run/php.sock", "does not name a socket by its absolute path"],
      ["unix:///run/php.sock;status", "has a status path that does not start with /"],
      ["tcp://127.0.0.1:9000/status?json", "is not tcp://HOST:PORT/PATH"],
      ["tcp://127.0.0.1:99999/status", "is not a URI"],
    ]
  ) {
    await assert.rejects(
      createSource(`php-fpm:${argument}`, { names: FLAG_NAMES }),
      (error: unknown) =>
        error instanceof SourceConfigError &&
        error.message ===
          `--source php-fpm:URI: '${argument}' ${why}; write tcp://HOST:PORT/PATH (default tcp://127.0.0.1:9000/status), unix:///SOCKET;/PATH or http://HOST/PATH`,
      argument,
    );
  }
});
