/**
 * The php-fpm source against Debian's php8.2-fpm, in a private namespace with only its
 * loopback: a master run as root, its pools as www-data, requests held in a sleeping script by
 * `cgi-fcgi` (libfcgi-bin). Each test has pools of its own, since a held request keeps its
 * process asleep after the test.
 */
import assert from "node:assert/strict";
import { chownSync, mkdirSync } from "node:fs";
import { after, test } from "node:test";
import { parseHeartbeat } from "../../src/codec.ts";
import { agentCommand, collect, Lab, stop, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import {
  type PhpFpm,
  type PhpFpmPool,
  startNginx,
  startPhpFpm,
} from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["php-fpm8.2", "cgi-fcgi", "nginx", "setpriv"]);
const runtime = currentRuntime();
const NS = "fpm";

interface Reading {
  ready: number;
  busy: number;
}

const staticPool = (name: string, listen: string, children: number, extra: string[] = []) => ({
  name,
  listen,
  settings: ["pm = static", `pm.max_children = ${children}`, "pm.status_path = /status", ...extra],
});

/** The pools, with the dynamic one on a unix socket in `dir`. */
const pools = (dir: string): PhpFpmPool[] => [
  staticPool("idle", "127.0.0.1:9000", 4),
  staticPool("held", "127.0.0.1:9010", 4),
  {
    name: "dynamic",
    listen: `${dir}/dynamic.sock`,
    settings: [
      "pm = dynamic",
      "pm.max_children = 5",
      "pm.start_servers = 2",
      "pm.min_spare_servers = 1",
      "pm.max_spare_servers = 3",
      "pm.status_path = /status",
    ],
  },
  staticPool("full", "127.0.0.1:9020", 2, ["pm.status_listen = 127.0.0.1:9021"]),
  { name: "nostatus", listen: "127.0.0.1:9030", settings: ["pm = static", "pm.max_children = 1"] },
];

let lab: Lab | undefined;
after(() => lab?.close());

let started: Promise<PhpFpm> | undefined;
function network(): Promise<PhpFpm> {
  started ??= (async () => {
    lab = new Lab();
    lab.addNamespace(NS);
    const fpm = startPhpFpm(lab, NS, pools(lab.dir));
    startNginx(lab, NS, {
      listen: "127.0.0.1:8080",
      body: "web",
      phpFpmStatus: { "/fpm-status": "127.0.0.1:9000", "/fpm-nostatus": "127.0.0.1:9030" },
    });
    try {
      await waitFor(
        () => /ready to handle connections/.test(fpm.diagnostics()),
        20_000,
        "php-fpm to start",
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${fpm.diagnostics()}`);
    }
    return fpm;
  })();
  return started;
}

function readings(stdout: string): Reading[] {
  return stdout.split("\n").filter(Boolean).map((line) => {
    const parsed = parseHeartbeat(line.split(" ")[1]);
    assert.ok(parsed.ok, line);
    return { ready: parsed.heartbeat.ready, busy: parsed.heartbeat.busy };
  });
}

/** An agent in --dry-run, every 0.25 s: its heartbeats so far, and its log. */
function agent(args: string[]) {
  const child = lab!.spawn(
    NS,
    agentCommand(runtime, ["-a", "239.0.0.1:27999", "--dry-run", "--interval", "0.25", ...args]),
  );
  const output = collect(child);
  return {
    child,
    heartbeats: () => readings(output().stdout),
    log: () => output().stderr,
  };
}

/** One heartbeat, printed: `--once --dry-run`. */
function once(args: string[]) {
  return lab!.run(
    NS,
    agentCommand(runtime, ["-a", "239.0.0.1:27999", "--dry-run", "--once", ...args]),
  );
}

/** Holds `count` requests to `address`, each asleep in PHP for `seconds`. */
function hold(fpm: PhpFpm, address: string, count: number, seconds = 30) {
  return Array.from(
    { length: count },
    () =>
      lab!.spawn(NS, ["cgi-fcgi", "-bind", "-connect", address], {
        env: {
          REQUEST_METHOD: "GET",
          SCRIPT_FILENAME: fpm.sleepScript,
          QUERY_STRING: `s=${seconds}`,
        },
      }),
  );
}

const last = <T>(items: T[]) => items[items.length - 1];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the agent's last heartbeat is `expected`, and for it to stay so for a while. */
async function steady(ours: ReturnType<typeof agent>, expected: Reading, what: string) {
  try {
    await waitFor(
      () => JSON.stringify(last(ours.heartbeats())) === JSON.stringify(expected),
      15_000,
      what,
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message}: got ${JSON.stringify(last(ours.heartbeats()))}\n${ours.log()}`,
    );
  }
  await sleep(600);
  assert.deepEqual(last(ours.heartbeats()), expected, what);
}

test(`php-fpm ${runtime}: an idle static pool of 4 is ready=4&busy=0, once and every interval`, {
  skip,
}, async () => {
  await network();
  const ours = agent(["--source", "php-fpm:tcp://127.0.0.1:9000/status"]);
  try {
    // The processes php-fpm has forked may not all be waiting for requests yet.
    await steady(ours, { ready: 4, busy: 0 }, "the pool to start");
    const from = ours.heartbeats().length;
    await waitFor(() => ours.heartbeats().length >= from + 12, 15_000, "heartbeats");
    // Our own request, answered by one of the four, never shows as busy.
    assert.deepEqual(
      ours.heartbeats().slice(from).filter((r) => r.ready !== 4 || r.busy !== 0),
      [],
    );
  } finally {
    await stop(ours.child);
  }
  assert.match(ours.log(), /sending php-fpm tcp:\/\/127\.0\.0\.1:9000\/status/);
  assert.doesNotMatch(ours.log(), /warn|error/, ours.log());
  const result = await once(["--source", "php-fpm"]);
  assert.equal(result.stdout, "239.0.0.1:27999 v=1&ready=4&busy=0\n", result.stderr);
  assert.equal(result.code, 0, result.stderr);
});

test(`php-fpm ${runtime}: requests held in PHP are busy, static over TCP`, { skip }, async () => {
  const fpm = await network();
  const ours = agent(["--source", "php-fpm:tcp://127.0.0.1:9010/status"]);
  try {
    await steady(ours, { ready: 4, busy: 0 }, "idle");
    const held = hold(fpm, "127.0.0.1:9010", 3);
    await steady(ours, { ready: 1, busy: 3 }, "3 held requests");
    await Promise.all(held.map((child) => stop(child)));
  } finally {
    await stop(ours.child);
  }
});

test(`php-fpm ${runtime}: requests held in PHP are busy, dynamic over a unix socket`, {
  skip,
}, async () => {
  const fpm = await network();
  const socket = `${lab!.dir}/dynamic.sock`;
  const ours = agent(["--source", `php-fpm:unix://${socket};/status`]);
  try {
    // pm.start_servers = 2.
    await steady(ours, { ready: 2, busy: 0 }, "idle");
    const held = hold(fpm, socket, 3);
    // php-fpm starts processes for them, and keeps one spare (pm.min_spare_servers = 1).
    await steady(ours, { ready: 1, busy: 3 }, "3 held requests");
    await Promise.all(held.map((child) => stop(child)));
  } finally {
    await stop(ours.child);
  }
  assert.match(ours.log(), new RegExp(`sending php-fpm unix://${socket};/status`));
});

test(`php-fpm ${runtime}: a saturated pool, with connections waiting, is ready=0`, {
  skip,
}, async () => {
  const fpm = await network();
  // 2 processes, 4 requests: 2 wait in the listen queue. pm.status_listen answers regardless.
  const held = hold(fpm, "127.0.0.1:9020", 4);
  const ours = agent(["--source", "php-fpm:tcp://127.0.0.1:9021/status"]);
  try {
    await steady(ours, { ready: 0, busy: 2 }, "a saturated pool");
  } finally {
    await stop(ours.child);
  }
  // Through the pool's own socket the status request waits in the queue too: no answer.
  const result = await once(["--source", "php-fpm:tcp://127.0.0.1:9020/status"]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.stdout, "");
  assert.match(
    result.stderr,
    /no heartbeat sent: php-fpm tcp:\/\/127\.0\.0\.1:9020\/status: no answer within \d+ ms\n$/,
  );
  await Promise.all(held.map((child) => stop(child)));
});

test(`php-fpm ${runtime}: through a web server, over HTTP`, { skip }, async () => {
  await network();
  const result = await once(["--source", "php-fpm:http://127.0.0.1:8080/fpm-status"]);
  assert.equal(result.stdout, "239.0.0.1:27999 v=1&ready=4&busy=0\n", result.stderr);
});

test(`php-fpm ${runtime}: errors say what to fix`, { skip }, async () => {
  await network();
  const cases: [string, RegExp][] = [
    [
      "php-fpm:tcp://127.0.0.1:9030/status",
      /php-fpm tcp:\/\/127\.0\.0\.1:9030\/status: answered 404 Not Found: set pm\.status_path = \/status in the pool's configuration\n$/,
    ],
    [
      "php-fpm:tcp://127.0.0.1:9099/status",
      /php-fpm tcp:\/\/127\.0\.0\.1:9099\/status: connection refused \(ECONNREFUSED\): is php-fpm running, with a pool that listens there\?\n$/,
    ],
    [
      "php-fpm:http://127.0.0.1:8080/fpm-nostatus",
      /php-fpm http:\/\/127\.0\.0\.1:8080\/fpm-nostatus\?json&full: answered 404 Not Found: pass this URL to the pool with SCRIPT_NAME set to its pm\.status_path, or set pm\.status_path in the pool's configuration\n$/,
    ],
    [
      "php-fpm:http://127.0.0.1:8080/no-such-status",
      /php-fpm http:\/\/127\.0\.0\.1:8080\/no-such-status\?json&full: not a php-fpm \?json&full status page: not JSON\n$/,
    ],
  ];
  for (const [source, message] of cases) {
    const result = await once(["--source", source]);
    assert.equal(result.code, 1, source);
    assert.match(result.stderr, message, source);
  }
});

test(`php-fpm ${runtime}: a unix socket the agent may not open says how to allow it`, {
  skip,
}, async () => {
  await network();
  const socket = `${lab!.dir}/dynamic.sock`;
  // nobody, not www-data: the pool's socket is www-data's, mode 0660.
  const home = `${lab!.dir}/nobody`;
  mkdirSync(home);
  chownSync(home, 65534, 65534);
  const result = await lab!.run(NS, [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "env",
    `HOME=${home}`,
    ...agentCommand(runtime, [
      "-a",
      "239.0.0.1:27999",
      "--dry-run",
      "--once",
      "--source",
      `php-fpm:unix://${socket};/status`,
    ]),
  ]);
  assert.equal(result.code, 1, result.stderr);
  assert.ok(
    result.stderr.endsWith(
      `no heartbeat sent: php-fpm unix://${socket};/status: permission denied (EACCES): ` +
        "run the agent as the socket's owner or group, or allow it with listen.owner, " +
        "listen.group or listen.mode in the pool\n",
    ),
    result.stderr,
  );
});

test(`php-fpm ${runtime}: auto chooses php-fpm when no Apache answers, and says why`, {
  skip,
}, async () => {
  await network();
  const ours = agent([]);
  try {
    await steady(ours, { ready: 4, busy: 0 }, "heartbeats");
  } finally {
    await stop(ours.child);
  }
  assert.match(
    ours.log(),
    /sending php-fpm tcp:\/\/127\.0\.0\.1:9000\/status \(chosen because tcp:\/\/127\.0\.0\.1:9000\/status answers\)/,
  );
});
