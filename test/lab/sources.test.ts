/**
 * Load sources against real servers, on a private bridge:
 *
 *   monitor  10.99.5.1   listens for mod_heartbeat's own packets on 239.0.0.1:27999
 *   origin   10.99.5.11  apache2 with mod_status and mod_heartbeat; agents with --source apache
 *   web      10.99.5.12  nginx with stub_status; agents with --source nginx and tcp
 *   client   10.99.5.20  holds connections open to make the servers busy
 *
 * The apache test is the oracle: the agent's numbers must match what mod_heartbeat, counting
 * from inside the same Apache, sends at the same time, within 1.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { parseHeartbeat } from "../../src/codec.ts";
import {
  agentCommand,
  collect,
  Lab,
  runtimeCommand,
  stop,
  waitFor,
} from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { listenProbe } from "../support/listen.ts";
import { type Apache, startApacheOrigin, startNginx } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "nginx"]);
const runtime = currentRuntime();

interface Reading {
  ready: number;
  busy: number;
}

let lab: Lab | undefined;
after(() => lab?.close());

let started: Promise<{ apache: Apache; modHeartbeat: () => Reading[] }> | undefined;
function network() {
  started ??= (async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    for (
      const [ns, ip] of [
        ["monitor", "10.99.5.1"],
        ["origin", "10.99.5.11"],
        ["web", "10.99.5.12"],
        ["client", "10.99.5.20"],
      ]
    ) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
    }
    const apache = startApacheOrigin(lab, "origin", { heartbeatAddress: "239.0.0.1:27999" });
    startNginx(lab, "web", { listen: "10.99.5.12:80", body: "web" });
    const listener = await listenProbe(lab, "monitor", runtime, {
      port: 27999,
      group: "239.0.0.1",
    });
    const modHeartbeat = () =>
      readings(
        listener.output().stdout.split("\n")
          .filter((line) => line.startsWith('{"from":"10.99.5.11"')).map((line) =>
            JSON.parse(line).payload
          ),
      );
    try {
      await waitFor(() => modHeartbeat().length > 0, 20_000, "mod_heartbeat's first packet");
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${apache.diagnostics()}`);
    }
    return { apache, modHeartbeat };
  })();
  return started;
}

function readings(payloads: string[]): Reading[] {
  return payloads.map((payload) => {
    const parsed = parseHeartbeat(payload);
    assert.ok(parsed.ok, payload);
    return { ready: parsed.heartbeat.ready, busy: parsed.heartbeat.busy };
  });
}

/** An agent in --dry-run, every 0.25 s: its heartbeats so far, and its log. */
function agent(ns: string, args: string[]) {
  const child = lab!.spawn(
    ns,
    agentCommand(runtime, ["-a", "239.0.0.1:27999", "--dry-run", "--interval", "0.25", ...args]),
  );
  const output = collect(child);
  return {
    child,
    heartbeats: () =>
      readings(output().stdout.split("\n").filter(Boolean).map((line) => line.split(" ")[1])),
    log: () => output().stderr,
  };
}

/** Holds `count` half-sent requests open to HOST:80 from the client; resolves once they are. */
async function hold(count: number, host: string) {
  const child = lab!.spawn(
    "client",
    runtimeCommand(runtime, "test/support/hold-connections.ts", [String(count), host, "80"]),
  );
  const output = collect(child);
  await waitFor(
    () => output().stdout.includes('"held"'),
    10_000,
    `${count} connections to ${host}`,
  );
  return child;
}

const last = <T>(items: T[]) => items[items.length - 1];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for mod_heartbeat to report the same numbers three times running, and returns them. */
async function settled(
  modHeartbeat: () => Reading[],
  condition: (reading: Reading) => boolean,
): Promise<Reading> {
  await waitFor(
    () => {
      const recent = modHeartbeat().slice(-3);
      return recent.length === 3 &&
        recent.every((r) => r.ready === recent[0].ready && r.busy === recent[0].busy) &&
        condition(recent[0]);
    },
    30_000,
    "mod_heartbeat's numbers to settle",
  );
  return last(modHeartbeat());
}

function assertWithinOne(ours: Reading, theirs: Reading, phase: string) {
  const detail = `${phase}: agent ${JSON.stringify(ours)}, mod_heartbeat ${JSON.stringify(theirs)}`;
  assert.ok(Math.abs(ours.ready - theirs.ready) <= 1, detail);
  assert.ok(Math.abs(ours.busy - theirs.busy) <= 1, detail);
}

test(
  `sources ${runtime}: apache agrees with mod_heartbeat in the same Apache, idle and with 12 held connections`,
  { skip },
  async () => {
    const { modHeartbeat } = await network();
    const ours = agent("origin", ["--source", "apache:http://10.99.5.11/server-status?auto"]);
    try {
      const idle = await settled(modHeartbeat, (r) => r.busy === 0);
      await sleep(600);
      assertWithinOne(last(ours.heartbeats()), idle, "idle");

      const held = await hold(12, "10.99.5.11");
      const busy = await settled(modHeartbeat, (r) => r.busy >= 12);
      await sleep(600);
      assertWithinOne(last(ours.heartbeats()), busy, "12 held connections");
      const confirm = await settled(modHeartbeat, () => true);
      assertWithinOne(last(ours.heartbeats()), confirm, "12 held connections, again");
      await stop(held);
    } finally {
      await stop(ours.child);
    }
    assert.doesNotMatch(ours.log(), /warn|error/, ours.log());
  },
);

test(
  `sources ${runtime}: auto chooses Apache when its status page answers, and says why`,
  { skip },
  async () => {
    await network();
    const ours = agent("origin", []);
    await waitFor(() => ours.heartbeats().length > 0, 10_000, "a heartbeat");
    await stop(ours.child);
    assert.match(
      ours.log(),
      /sending apache http:\/\/127\.0\.0\.1\/server-status\?auto \(chosen because http:\/\/127\.0\.0\.1\/server-status\?auto answers with a scoreboard\)/,
    );
  },
);

test(`sources ${runtime}: nginx reports capacity minus connections, without its own scrape`, {
  skip,
}, async () => {
  await network();
  const ours = agent("web", [
    "--source",
    "nginx:http://10.99.5.12/nginx_status",
    "--capacity",
    "100",
  ]);
  try {
    await waitFor(() => ours.heartbeats().length >= 2, 10_000, "heartbeats");
    assert.deepEqual(last(ours.heartbeats()), { ready: 100, busy: 0 });
    const held = await hold(5, "10.99.5.12");
    await waitFor(() => last(ours.heartbeats()).busy === 5, 10_000, "busy=5");
    await sleep(600);
    assert.deepEqual(last(ours.heartbeats()), { ready: 95, busy: 5 });
    await stop(held);
  } finally {
    await stop(ours.child);
  }
});

test(
  `sources ${runtime}: tcp counts established connections to the server's port`,
  { skip },
  async () => {
    await network();
    const held = await hold(7, "10.99.5.12");
    const ours = agent("web", ["--source", "tcp:80", "--capacity", "50"]);
    try {
      await waitFor(() => ours.heartbeats().length >= 3, 10_000, "heartbeats");
      assert.deepEqual(last(ours.heartbeats()), { ready: 43, busy: 7 });
      await stop(held);
      await waitFor(() => last(ours.heartbeats()).busy === 0, 10_000, "the connections to close");
      assert.deepEqual(last(ours.heartbeats()), { ready: 50, busy: 0 });
    } finally {
      await stop(ours.child);
    }
  },
);

test(
  `sources ${runtime}: a server that is down means no heartbeat, and the reason once`,
  { skip },
  async () => {
    await network();
    const tcp = await lab!.run(
      "web",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27999",
        "--source",
        "tcp:81",
        "--capacity",
        "50",
        "--once",
      ]),
    );
    assert.equal(tcp.code, 1);
    assert.match(
      tcp.stderr,
      /warn {2}no heartbeat sent: tcp port 81 capacity 50: nothing listens on port 81\n$/,
    );
    const ours = agent("web", ["--source", "apache:http://10.99.5.12:8081/server-status?auto"]);
    await sleep(1500);
    await stop(ours.child);
    // Nothing while it was down; at the stop, the farewell that tells proxies ready=0.
    assert.deepEqual(ours.heartbeats(), [{ ready: 0, busy: 0 }]);
    assert.equal(ours.log().match(/no heartbeat sent/g)?.length, 1, ours.log());
    assert.match(
      ours.log(),
      /no heartbeat sent: apache http:\/\/10\.99\.5\.12:8081\/server-status\?auto: .*ECONNREFUSED/,
    );
  },
);

test(`sources ${runtime}: a hung server costs heartbeats, not the schedule, and is logged once`, {
  skip,
}, async () => {
  await network();
  const server = lab!.spawn(
    "web",
    runtimeCommand(runtime, "test/support/silent-server.ts", ["8082"]),
  );
  const serverOutput = collect(server);
  await waitFor(() => serverOutput().stdout.includes("listening"), 10_000, "the silent server");
  const ours = agent("web", ["--source", "apache:http://10.99.5.12:8082/server-status?auto", "-v"]);
  await sleep(2000);
  await Promise.all([stop(ours.child), stop(server)]);
  assert.deepEqual(ours.heartbeats(), [{ ready: 0, busy: 0 }], "only the farewell at the stop");
  assert.equal(ours.log().match(/warn/g)?.length, 1, ours.log());
  assert.match(
    ours.log(),
    /warn {2}no heartbeat sent: apache http:\/\/10\.99\.5\.12:8082\/server-status\?auto: no answer within 188 ms\n/,
  );
  assert.doesNotMatch(ours.log(), /skipped/, "a hung read must not make the scheduler skip ticks");
});

test(
  `sources ${runtime}: apache and nginx at once, each in turn the tight one, sized by Apache`,
  { skip },
  async () => {
    const { modHeartbeat } = await network();
    const ours = agent("origin", [
      "--source",
      "apache:http://10.99.5.11/server-status?auto",
      "--source",
      "nginx:http://10.99.5.12/nginx_status",
      "--capacity",
      "100",
    ]);
    const held: Awaited<ReturnType<typeof hold>>[] = [];
    let logged = 0;
    try {
      // Both idle: Apache's own numbers.
      const idle = await settled(modHeartbeat, (r) => r.busy === 0);
      await sleep(600);
      assertWithinOne(last(ours.heartbeats()), idle, "both idle");
      // From here on, nothing to warn about (the first read, with two cold HTTP clients on a
      // loaded machine, may overrun the 188 ms a 0.25 s interval gives it).
      logged = ours.log().length;

      // nginx with 20 of its 100 busy (80 % free) is the tighter: 80 % of Apache's slots.
      held.push(await hold(20, "10.99.5.12"));
      const size = idle.ready + idle.busy;
      const nginxTight = { ready: Math.floor(size * 0.8), busy: size - Math.floor(size * 0.8) };
      await waitFor(
        () => last(ours.heartbeats()).ready === nginxTight.ready,
        10_000,
        `80 % of Apache's ${size} slots: ${JSON.stringify(last(ours.heartbeats()))}`,
      );
      await sleep(600);
      assert.deepEqual(last(ours.heartbeats()), nginxTight);

      // Apache with 12 held (it starts more workers: about 18 of 30 free, 60 %) is now the
      // tighter: its own numbers again.
      held.push(await hold(12, "10.99.5.11"));
      const busy = await settled(modHeartbeat, (r) => r.busy >= 12);
      assert.ok(busy.ready / (busy.ready + busy.busy) < 0.8, JSON.stringify(busy));
      await sleep(600);
      assertWithinOne(last(ours.heartbeats()), busy, "Apache the tight one");
    } finally {
      await Promise.all([...held.map((child) => stop(child)), stop(ours.child)]);
    }
    assert.doesNotMatch(ours.log().slice(logged), /warn|error/, ours.log());
    assert.match(
      ours.log(),
      /sending the tightest of \(apache http:\/\/10\.99\.5\.11\/server-status\?auto\) and \(nginx http:\/\/10\.99\.5\.12\/nginx_status capacity 100\)/,
    );
  },
);
