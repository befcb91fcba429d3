/**
 * `bun scripts/bench.ts --balance`: what heartbeat does for a real balancer. In private network
 * namespaces, a real Apache proxy (mod_proxy_balancer) in front of two Apache origins of unequal
 * capacity: the same 8 prefork workers each, a PHP script burning BURN_MS of CPU a request, but
 * CPU quotas of 0.6 and 0.2 of a CPU (a cgroup each). The same load goes through the proxy with
 * each lbmethod in turn: byrequests, bybusyness, a static 3:1 split by capacity (the oracle),
 * and heartbeat fed by heartbeat agents on the origins, with each source. Prints, for each
 * method, the throughput, latency percentiles, errors, each origin's share of the requests and
 * its CPU, and the ratios to byrequests and bybusyness (medians of --runs runs), for a closed
 * loop (wrk, fixed concurrency) and an open loop (a fixed rate below the capacity); then a step
 * test (origin1's quota halves mid-run: how soon the shares follow, the runs added up) and a
 * batch job eating origin1's CPU, which the proxy cannot see; then the verdict line. Writes an SVG
 * of the latencies and of the step test's shares.
 *
 *   proxy    10.99.30.1   apache2 (event MPM), balancer of origin1 then origin2; mod_heartmonitor
 *                         (shared memory) or heartbeat monitor beside it for the heartbeat methods
 *   client   10.99.30.2   wrk, or the open-loop client (scripts/bench/open-loop.ts)
 *   origin1  10.99.30.11  apache2 prefork + mod_php, 8 workers, cgroup quota 0.6 CPU; an agent
 *   origin2  10.99.30.12  the same with 0.2 CPU
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { agentCommand, commandAvailable, Lab, runtimeCommand, stop, waitFor } from "../lab/lab.ts";
import { formatColumns } from "../../src/columns.ts";
import { REPO } from "../repo.ts";
import { type Apache, apacheRoot, startApache } from "../lab/servers.ts";
import { Cgroup, quotaUnavailable } from "./cgroup.ts";

const APACHE_MODULES = "/usr/lib/apache2/modules";
const SUBNET = "10.99.30";
const PROXY = `${SUBNET}.1`;
const URL = `http://${PROXY}/burn.php`;
const GROUP = "239.0.0.1:27999";
/** CPU a request costs at the origins, in ms. */
const BURN_MS = 4;
/** Prefork workers at each origin. */
const WORKERS = 8;

interface Origin {
  name: string;
  ip: string;
  /** Its CPU quota, in CPUs. */
  cpus: number;
  cgroup: Cgroup;
  log: string;
}

/** What a heartbeat method needs that this build may lack. */
type Feature = "cpu source" | "several sources";

/** How the proxy hears the heartbeats. */
type Collector = "mod_heartmonitor" | "heartbeat monitor";

export interface Method {
  name: string;
  /** The proxy's lbmethod, with the members' loadfactors when not equal. */
  lbmethod: "byrequests" | "bybusyness" | "heartbeat";
  loadfactors?: [number, number];
  /** For lbmethod=heartbeat: the agents' arguments (past --address) at `origin`. */
  agent?: (origin: Origin) => string[];
  /** What collects the heartbeats for the proxy: by default, heartbeat monitor. */
  collector?: Collector;
  needs?: Feature[];
  /** Told what no source measures: not a candidate for the verdict. */
  oracle?: boolean;
  /** What it is, for the tables' legend. */
  about: string;
}

/** The methods compared, in the order they run and print. */
export const METHODS: Method[] = [
  { name: "byrequests", lbmethod: "byrequests", about: "Apache alone: round robin" },
  {
    name: "bybusyness",
    lbmethod: "bybusyness",
    about: "Apache alone: fewest requests in flight from this proxy",
  },
  {
    name: "static 3:1",
    lbmethod: "byrequests",
    loadfactors: [3, 1],
    about: "the oracle: byrequests with loadfactor 3:1, the capacities' ratio",
  },
  {
    name: "hb by quota",
    lbmethod: "heartbeat",
    // busy=1: with busy=0 mod_lbmethod_heartbeat would divide ready by 4. Large numbers: its draw
    // is inclusive, so the last member also wins the first slot of the others' range.
    agent: (origin) => [
      "--source",
      "static",
      "--ready",
      String(Math.round(origin.cpus * 100)),
      "--busy",
      "1",
    ],
    oracle: true,
    about: "lbmethod=heartbeat, agents sending ready=100 × their CPU quota (busy=1): a report " +
      "in proportion to capacity",
  },
  {
    name: "hb by quota^1.5",
    lbmethod: "heartbeat",
    agent: (origin) => [
      "--source",
      "static",
      "--ready",
      String(Math.round(100 * origin.cpus ** 1.5)),
      "--busy",
      "1",
    ],
    oracle: true,
    about: "the same, ready=100 × quota^1.5 (46 and 9): about the cpu source's idle weights, held",
  },
  {
    name: "hb apache shm",
    lbmethod: "heartbeat",
    agent: () => ["--source", "apache"],
    collector: "mod_heartmonitor",
    about: "heartbeat --source apache, mod_heartmonitor in shared memory (news every 5 s)",
  },
  {
    name: "hb apache",
    lbmethod: "heartbeat",
    agent: () => ["--source", "apache"],
    about: "heartbeat --source apache; heartbeat monitor writes the file (each second), as below",
  },
  {
    name: "hb apache minbusy",
    lbmethod: "heartbeat",
    agent: () => ["--source", "apache", "--min-busy", "1"],
    about: "the same with --min-busy 1: an idle origin's ready not divided by 4",
  },
  {
    name: "hb apache 0.25s",
    lbmethod: "heartbeat",
    agent: () => ["--source", "apache", "--interval", "0.25"],
    about: "heartbeat --source apache --interval 0.25",
  },
  {
    name: "hb apache smooth",
    lbmethod: "heartbeat",
    agent: () => ["--source", "apache", "--smooth", "2"],
    needs: ["several sources"],
    about: "heartbeat --source apache --smooth 2",
  },
  {
    name: "hb cpu",
    lbmethod: "heartbeat",
    agent: (origin) => ["--source", `cpu:${origin.cgroup.quota}`, "--capacity", "100"],
    needs: ["cpu source"],
    about: "heartbeat --source cpu:CGROUP --capacity 100 (the origin's cgroup)",
  },
  {
    name: "hb cpu+apache",
    lbmethod: "heartbeat",
    agent: (origin) => [
      "--source",
      `cpu:${origin.cgroup.quota}`,
      "--capacity",
      "100",
      "--source",
      "apache",
    ],
    needs: ["cpu source", "several sources"],
    about: "heartbeat --source cpu:CGROUP --capacity 100 --source apache: cpu's weight, lower " +
      "where Apache's workers are fuller",
  },
  {
    name: "hb apache+cpu",
    lbmethod: "heartbeat",
    agent: (origin) => [
      "--source",
      "apache",
      "--source",
      `cpu:${origin.cgroup.quota}`,
      "--capacity",
      "100",
    ],
    needs: ["cpu source", "several sources"],
    about: "heartbeat --source apache --source cpu:CGROUP --capacity 100: Apache's workers, cpu " +
      "trimming them by a quarter at most",
  },
];

export interface Options {
  runs: number;
  seconds: number;
  warmup: number;
  connections: number;
  rate: number;
  methods: string[];
  scenarios: string[];
  svg?: string;
}

/** Why the benchmark cannot run here (what to install or be), or undefined when it can. */
export function balanceUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "run as root: it makes network namespaces and cgroups";
  for (const command of ["ip", "apache2", "wrk", "stress-ng"]) {
    if (!commandAvailable(command)) {
      return `${command} is not installed (apt-get install ${command})`;
    }
  }
  if (!phpModule()) {
    return "Apache's PHP module is not installed (apt-get install libapache2-mod-php)";
  }
  return quotaUnavailable();
}

function phpModule(): string | undefined {
  const name = existsSync(APACHE_MODULES)
    ? readdirSync(APACHE_MODULES).find((file) => /^libphp[\d.]*\.so$/.test(file))
    : undefined;
  return name && join(APACHE_MODULES, name);
}

/** What this build's agent can do, from its --help. */
function features(): Set<Feature> {
  const [command, ...args] = agentCommand("bun", ["--help"]);
  const help = execFileSync(command, args, { cwd: REPO, encoding: "utf8" });
  const found = new Set<Feature>();
  if (/^\s+cpu[:\s]/m.test(help)) found.add("cpu source");
  if (/--smooth\b/.test(help)) found.add("several sources");
  return found;
}

/** A PHP script that burns `ms` of its own CPU time (not wall time: a throttled worker waits). */
function burnScript(ms: number): string {
  return `<?php
function cpu_seconds() {
  $usage = getrusage();
  return $usage["ru_utime.tv_sec"] + $usage["ru_utime.tv_usec"] / 1e6
    + $usage["ru_stime.tv_sec"] + $usage["ru_stime.tv_usec"] / 1e6;
}
$end = cpu_seconds() + ${ms / 1000};
$x = 0.0;
do {
  for ($i = 0; $i < 1000; $i++) $x += sqrt($i);
} while (cpu_seconds() < $end);
echo gethostname(), "\\n";
`;
}

function startOrigin(lab: Lab, origin: Origin): Apache {
  const documents = join(apacheRoot(lab, origin.name), "htdocs");
  execFileSync("mkdir", ["-p", documents]);
  writeFileSync(join(documents, "burn.php"), burnScript(BURN_MS));
  return startApache(lab, origin.name, {
    listen: "80",
    mpm: "mpm_prefork",
    modules: ["status"],
    cgroups: origin.cgroup.folders,
    directives: `LoadModule php_module ${phpModule()}
DocumentRoot ${documents}
StartServers ${WORKERS}
MinSpareServers ${WORKERS}
MaxSpareServers ${WORKERS}
ServerLimit ${WORKERS}
MaxRequestWorkers ${WORKERS}
# One request a connection: a kept-alive proxy connection would hold a prefork worker idle.
KeepAlive Off
LogFormat "%{sec}t %U %D" seconds
CustomLog ${origin.log} seconds
<Files "burn.php">
  SetHandler application/x-httpd-php
</Files>
<Location "/server-status">
  SetHandler server-status
</Location>
`,
  });
}

/** The proxy for `method`, and for lbmethod=heartbeat what collects the heartbeats. */
function startProxy(lab: Lab, method: Method, origins: Origin[]): Apache {
  rmSync(apacheRoot(lab, "proxy"), { recursive: true, force: true });
  const heartbeat = method.lbmethod === "heartbeat";
  const storage = join(lab.dir, "monitor.dat");
  let collecting = "";
  if (heartbeat && method.collector !== "mod_heartmonitor") {
    rmSync(storage, { force: true });
    lab.spawn("proxy", agentCommand("bun", ["monitor", "--listen", GROUP, "--storage", storage]));
    collecting = `HeartbeatStorage ${storage}`;
  } else if (heartbeat) {
    collecting = `HeartbeatListen ${GROUP}\nHeartbeatMaxServers 20`;
  }
  const factors = method.loadfactors ?? [1, 1];
  return startApache(lab, "proxy", {
    listen: `${PROXY}:80`,
    modules: [
      "slotmem_shm",
      "proxy",
      "proxy_http",
      "proxy_balancer",
      "lbmethod_byrequests",
      "lbmethod_bybusyness",
      "lbmethod_heartbeat",
      ...(heartbeat && method.collector === "mod_heartmonitor" ? ["heartmonitor"] : []),
    ],
    directives: `${collecting}
ServerLimit 8
ThreadsPerChild 50
MaxRequestWorkers 400
ProxyTimeout 30
<Proxy "balancer://origins">
${
      origins.map((origin, i) =>
        `  BalancerMember "http://${origin.ip}:80" loadfactor=${factors[i]}`
      ).join("\n")
    }
  ProxySet lbmethod=${method.lbmethod}
</Proxy>
ProxyPass "/" "balancer://origins/"
`,
  });
}

interface Sample {
  /** Answered requests a second. */
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  /** origin1's share of the requests the origins served. */
  share: number;
  /** Each origin's CPU over the run, in CPUs. */
  cpus: number[];
  /**
   * Each origin's p99 of the time Apache logs for a request (%D: from reading it to answering),
   * in ms: what the client waits beyond it was spent in the origin's accept queue, waiting for a
   * worker, or on the way.
   */
  originP99: number[];
  /** The machine's 1-minute load average when the run began. */
  load: number;
}

const loadAverage = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);

/** The requests for /burn.php an origin logged: the Unix second each began, and its ms. */
function servedRequests(origin: Origin): { second: number; ms: number }[] {
  let text = "";
  try {
    text = readFileSync(origin.log, "utf8");
  } catch { /* nothing served yet */ }
  return text.split("\n").map((line) => line.split(" "))
    .filter(([, path]) => path === "/burn.php")
    .map(([second, , microseconds]) => ({
      second: Number(second),
      ms: Number(microseconds) / 1000,
    }));
}

/** Requests for /burn.php an origin logged, by the Unix second each began. */
function requestsBySecond(served: { second: number }[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const { second } of served) {
    counts.set(second, (counts.get(second) ?? 0) + 1);
  }
  return counts;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const WRK_SCRIPT = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`;

type Load = "closed" | "open";

interface Measured {
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

/** Runs the load for `seconds` from the client namespace. */
async function load(lab: Lab, kind: Load, seconds: number, options: Options): Promise<Measured> {
  if (kind === "closed") {
    const script = join(lab.dir, "report.lua");
    writeFileSync(script, WRK_SCRIPT);
    const result = await lab.run("client", [
      "wrk",
      "-t2",
      `-c${options.connections}`,
      `-d${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      URL,
    ], { timeoutMs: (seconds + 30) * 1000 });
    const match = /^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(result.stdout);
    if (!match) throw new Error(`wrk printed no result: ${result.stdout}${result.stderr}`);
    const [requests, durationUs, p50, p95, p99, errors] = match.slice(1).map(Number);
    return {
      throughput: (requests - errors) / (durationUs / 1e6),
      p50: p50 / 1000,
      p95: p95 / 1000,
      p99: p99 / 1000,
      errors,
    };
  }
  const result = await lab.run(
    "client",
    runtimeCommand("bun", "scripts/bench/open-loop.ts", [
      URL,
      String(options.rate),
      String(seconds),
    ]),
    { timeoutMs: (seconds + 30) * 1000 },
  );
  const report = JSON.parse(result.stdout || "null") as {
    answered: number;
    errors: number;
    latenciesMs: number[];
  } | null;
  if (!report) throw new Error(`the open-loop client printed nothing: ${result.stderr}`);
  const sorted = report.latenciesMs.sort((a, b) => a - b);
  return {
    throughput: report.answered / seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    errors: report.errors,
  };
}

/** The proxy and agents for `method`, ready: both origins have answered through the proxy. */
async function setUp(lab: Lab, method: Method, origins: Origin[]): Promise<() => Promise<void>> {
  const proxy = startProxy(lab, method, origins);
  const agents = method.agent
    ? origins.map((origin) =>
      lab.spawn(
        origin.name,
        agentCommand("bun", [
          "--address",
          GROUP,
          ...method.agent!(origin),
        ]),
        { hostMounts: true }, // the cpu source reads the origin's cgroup
      )
    )
    : [];
  const before = origins.map((origin) => servedRequests(origin).length);
  const deadline = Date.now() + 30_000;
  for (;;) {
    await lab.run("client", [
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "--max-time",
      "5",
      ...Array(8).fill(URL),
    ]);
    const served = origins.map((origin, i) => servedRequests(origin).length - before[i]);
    if (served.every((count) => count > 0)) break;
    if (Date.now() > deadline) {
      throw new Error(
        `${method.name}: both origins did not answer through the proxy within 30 s\n${proxy.diagnostics()}`,
      );
    }
  }
  return async () => {
    await Promise.all([...agents.map((agent) => stop(agent)), stop(proxy.process)]);
    // heartbeat monitor, where it ran, with the proxy's namespace's other processes.
    await Promise.all(
      lab.pids("proxy").map((pid) => {
        try {
          process.kill(pid, "SIGTERM");
        } catch { /* gone */ }
      }),
    );
    await waitFor(() => lab.pids("proxy").length === 0, 10_000, "the proxy to stop");
  };
}

/** One measured run of `method` under `kind` of load, after the warm-up. */
async function sample(
  lab: Lab,
  method: Method,
  origins: Origin[],
  kind: Load,
  options: Options,
  during?: (second: number) => void,
): Promise<Sample & { perSecond: number[][]; from: number }> {
  const tearDown = await setUp(lab, method, origins);
  try {
    if (options.warmup > 0) await load(lab, kind, options.warmup, options);
    const cpuBefore = origins.map((origin) => origin.cgroup.usageMs());
    const load1 = loadAverage();
    const from = Math.ceil(Date.now() / 1000);
    const started = Date.now();
    // At the start of each counted second (the logs count by Unix second, from `from`), so that
    // what `during` does at second N falls on the Nth second of the per-second counts.
    const timers = during
      ? [...Array(options.seconds).keys()].map((second) =>
        setTimeout(() => during(second), (from + second) * 1000 - started)
      )
      : [];
    const measured = await load(lab, kind, options.seconds, options);
    timers.forEach(clearTimeout);
    const elapsed = (Date.now() - started) / 1000;
    const to = Math.floor(Date.now() / 1000);
    const cpus = origins.map((origin, i) =>
      (origin.cgroup.usageMs() - cpuBefore[i]) / 1000 / elapsed
    );
    // Requests still being served when the load stopped are logged when they end, and the
    // slowest are those: give them a second.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const served = origins.map(servedRequests);
    const counts = served.map(requestsBySecond);
    const originP99 = served.map((requests) =>
      percentile(
        requests.filter(({ second }) => second >= from && second < to).map(({ ms }) => ms)
          .sort((a, b) => a - b),
        99,
      )
    );
    const perSecond = counts.map((count) =>
      [...Array(Math.max(0, to - from)).keys()].map((second) => count.get(from + second) ?? 0)
    );
    const [served1, served2] = perSecond.map((counts) => counts.reduce((a, b) => a + b, 0));
    return {
      ...measured,
      share: served1 / (served1 + served2),
      cpus,
      originP99,
      load: load1,
      perSecond,
      from,
    };
  } finally {
    await tearDown();
  }
}

/**
 * The medians of --runs runs of each method under `kind` of load, the methods interleaved so that
 * the machine's changing load falls on all alike. `job` makes what runs beside each run.
 */
async function compare(
  lab: Lab,
  methods: Method[],
  origins: Origin[],
  kind: Load,
  options: Options,
  job?: () => { during: (second: number) => void; end: () => Promise<void> },
): Promise<Map<string, Sample>> {
  const samples = new Map<string, Sample[]>(methods.map((method) => [method.name, []]));
  for (let run = 0; run < options.runs; run++) {
    for (const method of methods) {
      const beside = job?.();
      const s = await sample(lab, method, origins, kind, options, beside?.during);
      await beside?.end();
      samples.get(method.name)!.push(s);
      console.error(
        `  ${kind} run ${run + 1} ${method.name}: ${s.throughput.toFixed(1)} req/s, p99 ${
          s.p99.toFixed(0)
        } ms, origin1 ${(s.share * 100).toFixed(0)} %, load ${s.load}`,
      );
    }
  }
  return new Map([...samples].map(([name, list]) => [name, medianSample(list)]));
}

function median(values: number[]): number {
  const sorted = [...values].filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function medianSample(samples: Sample[]): Sample {
  const of = (pick: (sample: Sample) => number) => median(samples.map(pick));
  return {
    throughput: of((s) => s.throughput),
    p50: of((s) => s.p50),
    p95: of((s) => s.p95),
    p99: of((s) => s.p99),
    errors: of((s) => s.errors),
    share: of((s) => s.share),
    cpus: [of((s) => s.cpus[0]), of((s) => s.cpus[1])],
    originP99: [of((s) => s.originP99[0]), of((s) => s.originP99[1])],
    load: of((s) => s.load),
  };
}

const ratio = (value: number, base: number) =>
  Number.isFinite(value / base) ? `${(value / base).toFixed(2)}x` : "-";

function resultTable(results: Map<string, Sample>): string {
  const byRequests = results.get("byrequests");
  const byBusyness = results.get("bybusyness");
  return formatColumns([
    [
      "method",
      "req/s",
      "×byreq",
      "×bybusy",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "p99 ×byreq",
      "p99 ×bybusy",
      "errors",
      "origin1 share",
      "CPU origin1/2",
      "origin p99 ms",
      "load",
    ],
    ...[...results].map(([name, s]) => [
      name,
      s.throughput.toFixed(1),
      byRequests ? ratio(s.throughput, byRequests.throughput) : "-",
      byBusyness ? ratio(s.throughput, byBusyness.throughput) : "-",
      s.p50.toFixed(0),
      s.p95.toFixed(0),
      s.p99.toFixed(0),
      byRequests ? ratio(s.p99, byRequests.p99) : "-",
      byBusyness ? ratio(s.p99, byBusyness.p99) : "-",
      s.errors.toFixed(0),
      `${(s.share * 100).toFixed(0)} %`,
      `${s.cpus[0].toFixed(2)}/${s.cpus[1].toFixed(2)}`,
      s.originP99.map((ms) => ms.toFixed(0)).join("/"),
      s.load.toFixed(1),
    ]),
  ]);
}

/** How origin1's share followed the step, from its requests each second. */
export interface StepFollow {
  /** Seconds from the step until the share was within the band and stayed; Infinity: never. */
  seconds: number;
  /** Its share over the 5 seconds before the step, and where it settled: the last third after. */
  before: number;
  after: number;
  /** The band's half-width at the settled level, for a 3-second window of the mean size. */
  band: number;
}

/**
 * When origin1's share of the last 3 seconds' requests comes within a band of where it settles
 * (its share over the last third of the time after the step) and stays there to the end. The band
 * is 10 % of the share's move, or three standard errors of the difference between a window's share
 * and the settled share (each a share drawn from that many requests), whichever is wider.
 * lbmethod_heartbeat draws each request at random, so after this step, at about 125 requests a
 * second, a 3-second share moves by ±2.6 points from draw to draw alone, more than 10 % of the
 * step: a band of 10 % would time the draw's luck (it once gave 12 s for a share that moved in 2;
 * docs/performance.md). Three runs' requests added up narrow the band by √3. Infinity where the
 * share did not follow: it settled less than half of `capacityMove` (the capacities' share after
 * the step less before) from where it was, or the other way, or never stayed within the band.
 */
export function followStep(perSecond: number[][], step: number, capacityMove: number): StepFollow {
  if (!Number.isFinite(capacityMove) || capacityMove === 0) {
    throw new RangeError(`the capacities' shares must move: ${capacityMove}`);
  }
  const [origin1, origin2] = perSecond;
  const end = origin1.length;
  const window = (from: number, to: number) => {
    let mine = 0;
    let all = 0;
    for (let i = Math.max(0, from); i < Math.min(to, end); i++) {
      mine += origin1[i];
      all += origin1[i] + origin2[i];
    }
    return { share: all ? mine / all : NaN, requests: all };
  };
  const before = window(step - 5, step).share;
  const settled = window(step + Math.floor((end - step) * 2 / 3), end);
  const after = settled.share;
  const halfWidth = (requests: number) =>
    Math.max(
      0.1 * Math.abs(after - before),
      3 * Math.sqrt(after * (1 - after) * (1 / Math.max(1, requests) + 1 / settled.requests)),
    );
  const afterStep = window(step, end);
  const band = halfWidth(afterStep.requests / Math.max(1, end - step) * 3);
  if (!((after - before) / capacityMove >= 0.5)) return { seconds: Infinity, before, after, band };
  const within = (i: number) => {
    const last3 = window(i - 2, i + 1);
    return Math.abs(last3.share - after) <= halfWidth(last3.requests);
  };
  let first = end;
  for (let i = end - 1; i >= step && within(i); i--) first = i;
  return { seconds: first === end ? Infinity : first - step, before, after, band };
}

/** `followed in 3 s`, or `not followed`. */
function followText(seconds: number): string {
  return Number.isFinite(seconds) ? `followed in ${seconds} s` : "not followed";
}

/** `3`, or `never`. */
function secondsText(seconds: number): string {
  return Number.isFinite(seconds) ? String(seconds) : "never";
}

/** Each origin's requests each second, added up over runs (as long as the shortest). */
function addUp(runs: number[][][]): number[][] {
  const length = Math.min(...runs.map((perSecond) => perSecond[0].length));
  return [0, 1].map((origin) =>
    [...Array(length).keys()].map((i) => runs.reduce((sum, run) => sum + run[origin][i], 0))
  );
}

function shareSeries(perSecond: number[][]): number[] {
  return perSecond[0].map((count, i) => {
    const total = count + perSecond[1][i];
    return total ? count / total : NaN;
  });
}

/** The SVG: latency percentiles per method (closed loop), and the step test's shares. */
export function drawSvg(
  closed: Map<string, Sample>,
  steps: Map<string, number[]>,
  stepAt: number,
  capacityShares: [number, number],
): string {
  const width = 760;
  const chartHeight = 260;
  const parts: string[] = [];
  const text = (x: number, y: number, body: string, extra = "") =>
    `<text x="${x}" y="${y}" ${extra}>${body.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</text>`;
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
  // Panel 1: p50, p95, p99 per method, bars on a log scale.
  const methods = [...closed.keys()];
  const maxMs = Math.max(10, ...[...closed.values()].map((s) => s.p99).filter(Number.isFinite));
  const top = Math.pow(10, Math.ceil(Math.log10(maxMs)));
  const left = 60;
  const plotWidth = width - left - 20;
  const y0 = 40;
  const yOf = (ms: number) =>
    y0 + chartHeight - (Math.log10(Math.max(ms, 1)) / Math.log10(top)) * chartHeight;
  parts.push(
    text(
      left,
      24,
      "Latency by method, closed loop (ms, log scale): p50, p95, p99",
      'font-weight="bold"',
    ),
  );
  for (let decade = 1; decade <= top; decade *= 10) {
    parts.push(
      `<line x1="${left}" x2="${width - 20}" y1="${yOf(decade)}" y2="${
        yOf(decade)
      }" stroke="#ddd"/>`,
      text(left - 6, yOf(decade) + 4, String(decade), 'text-anchor="end"'),
    );
  }
  const group = plotWidth / Math.max(1, methods.length);
  methods.forEach((name, i) => {
    const s = closed.get(name)!;
    [s.p50, s.p95, s.p99].forEach((ms, j) => {
      if (!Number.isFinite(ms)) return;
      const x = left + i * group + group * 0.15 + j * group * 0.23;
      const y = yOf(ms);
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${
          (group * 0.2).toFixed(1)
        }" height="${(y0 + chartHeight - y).toFixed(1)}" fill="${
          ["#9ecae1", "#4292c6", "#08519c"][j]
        }"/>`,
      );
    });
    // "hb apache smooth" on two lines: "hb" over the rest, so that 8 methods fit side by side.
    const [first, ...rest] = name.startsWith("hb ") ? ["hb", name.slice(3)] : [name];
    [first, ...rest, `${s.throughput.toFixed(0)} req/s`].forEach((line, n) =>
      parts.push(
        text(
          left + i * group + group / 2,
          y0 + chartHeight + 16 + n * 13,
          line,
          `text-anchor="middle"${n === rest.length + 1 ? ' fill="#555"' : ""}`,
        ),
      )
    );
  });
  ["p50", "p95", "p99"].forEach((label, j) =>
    parts.push(
      `<rect x="${width - 150 + j * 45}" y="32" width="10" height="10" fill="${
        ["#9ecae1", "#4292c6", "#08519c"][j]
      }"/>`,
      text(width - 137 + j * 45, 41, label),
    )
  );
  // Panel 2: origin1's share each second of the step test.
  const p2 = y0 + chartHeight + 100;
  const length = Math.max(1, ...[...steps.values()].map((series) => series.length));
  const xOf = (second: number) => left + (second / Math.max(1, length - 1)) * plotWidth;
  const sOf = (share: number) => p2 + chartHeight - share * chartHeight;
  parts.push(
    text(
      left,
      p2 - 16,
      `origin1's share of requests each second; its quota halves at ${stepAt} s`,
      'font-weight="bold"',
    ),
  );
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${left}" x2="${width - 20}" y1="${sOf(share)}" y2="${sOf(share)}" stroke="#ddd"/>`,
      text(left - 6, sOf(share) + 4, `${share * 100} %`, 'text-anchor="end"'),
    );
  }
  parts.push(
    `<line x1="${xOf(stepAt)}" x2="${xOf(stepAt)}" y1="${p2}" y2="${
      p2 + chartHeight
    }" stroke="#999" stroke-dasharray="4 3"/>`,
    `<line x1="${left}" x2="${xOf(stepAt)}" y1="${sOf(capacityShares[0])}" y2="${
      sOf(capacityShares[0])
    }" stroke="#000" stroke-dasharray="2 2"/>`,
    `<line x1="${xOf(stepAt)}" x2="${width - 20}" y1="${sOf(capacityShares[1])}" y2="${
      sOf(capacityShares[1])
    }" stroke="#000" stroke-dasharray="2 2"/>`,
  );
  [...steps].forEach(([name, series], i) => {
    const points = series.map((share, second) =>
      Number.isFinite(share) ? `${xOf(second).toFixed(1)},${sOf(share).toFixed(1)}` : ""
    ).filter(Boolean).join(" ");
    parts.push(
      `<polyline fill="none" stroke="${
        colors[i % colors.length]
      }" stroke-width="1.5" points="${points}"/>`,
      text(width - 170, p2 + 14 + i * 14, name, `fill="${colors[i % colors.length]}"`),
    );
  });
  parts.push(
    text(
      left,
      p2 + chartHeight + 16,
      "dotted: the capacity share (0.6:0.2, then 0.3:0.2)",
      'fill="#555"',
    ),
  );
  const height = p2 + chartHeight + 30;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
${parts.join("\n")}
</svg>
`;
}

export async function balance(options: Options): Promise<number> {
  const missing = balanceUnavailable();
  if (missing) {
    console.error(`bench --balance: ${missing}`);
    return 2;
  }
  const available = features();
  const chosen = METHODS.filter((method) =>
    !options.methods.length || options.methods.includes(method.name)
  );
  const methods = chosen.filter((method) =>
    (method.needs ?? []).every((need) => available.has(need))
  );
  const lab = new Lab();
  const origins: Origin[] = [
    { name: "origin1", ip: `${SUBNET}.11`, cpus: 0.6 },
    { name: "origin2", ip: `${SUBNET}.12`, cpus: 0.2 },
  ].map((origin) => ({
    ...origin,
    cgroup: new Cgroup(),
    log: join(lab.dir, `${origin.name}-access.log`),
  }));
  try {
    console.log(
      [
        `Two origins, ${WORKERS} prefork workers each, ${BURN_MS} ms of CPU a request, CPU quotas ${
          origins.map((origin) => origin.cpus).join(" and ")
        } (capacity about ${
          origins.map((o) => Math.round(o.cpus * 1000 / BURN_MS)).join(" + ")
        } req/s);`,
        `closed loop: wrk -t2 -c${options.connections}; open loop: ${options.rate} req/s;`,
        `${options.warmup} s warm-up, then ${options.seconds} s measured; medians of ${options.runs} runs.`,
        `agents and monitor: ${agentCommand("bun", []).join(" ")}`,
        "",
        ...chosen.map((method) =>
          `  ${method.name.padEnd(17)} ${method.about}${
            methods.includes(method) ? "" : " — not available in this build"
          }`
        ),
        "",
      ].join("\n"),
    );
    lab.addSwitch("switch");
    for (
      const [name, host] of [["proxy", 1], ["client", 2], ["origin1", 11], ["origin2", 12]] as const
    ) {
      lab.addNamespace(name);
      lab.plug(name, `${SUBNET}.${host}/24`);
    }
    for (const origin of origins) {
      origin.cgroup.setQuota(origin.cpus);
      startOrigin(lab, origin);
    }
    const scenarios = new Set(options.scenarios);
    const closed = new Map<string, Sample>();
    for (const kind of ["closed", "open"] as const) {
      if (!scenarios.has(kind)) continue;
      const results = await compare(lab, methods, origins, kind, options);
      if (kind === "closed") results.forEach((value, key) => closed.set(key, value));
      console.log(
        `${
          kind === "closed"
            ? `Closed loop (wrk, ${options.connections} connections)`
            : `Open loop (${options.rate} req/s)`
        }, medians of ${options.runs}:`,
      );
      console.log(resultTable(results), "\n");
    }
    const steps = new Map<string, number[]>();
    const follow = new Map<string, number>();
    const stepAt = Math.floor(options.seconds / 2);
    if (scenarios.has("step")) {
      const following = methods.filter((m) =>
        m.name !== "byrequests" && !m.loadfactors && !m.oracle
      );
      const [full, halved] = [origins[0].cpus, origins[0].cpus / 2];
      const capacityMove = halved / (halved + origins[1].cpus) - full / (full + origins[1].cpus);
      // Each method's per-second counts in each run, the runs interleaved as in compare().
      const runs = new Map<string, number[][][]>(following.map((method) => [method.name, []]));
      for (let run = 0; run < options.runs; run++) {
        for (const method of following) {
          const s = await sample(lab, method, origins, "closed", options, (second) => {
            if (second === stepAt) origins[0].cgroup.setQuota(halved);
          });
          origins[0].cgroup.setQuota(full);
          runs.get(method.name)!.push(s.perSecond);
          console.error(
            `  step run ${run + 1} ${method.name}: ${
              followText(followStep(s.perSecond, stepAt, capacityMove).seconds)
            }; origin1's share each second ${
              shareSeries(s.perSecond).map((share) => share.toFixed(2)).join(" ")
            }`,
          );
        }
      }
      const rows: string[][] = [];
      for (const [name, list] of runs) {
        const together = addUp(list);
        const pooled = followStep(together, stepAt, capacityMove);
        follow.set(name, pooled.seconds);
        steps.set(name, shareSeries(together));
        rows.push([
          name,
          `${(pooled.before * 100).toFixed(0)} %`,
          `${(pooled.after * 100).toFixed(0)} %`,
          `±${(pooled.band * 100).toFixed(1)}`,
          secondsText(pooled.seconds),
          list.map((perSecond) => secondsText(followStep(perSecond, stepAt, capacityMove).seconds))
            .join(", "),
        ]);
      }
      console.log(
        `Step: origin1's quota halves (${full} to ${halved} CPU) at the start of second ` +
          `${stepAt} of a ${options.seconds} s closed-loop run; the ${options.runs} runs' ` +
          `requests added up (band: points of share):`,
      );
      console.log(
        formatColumns([
          ["method", "share before", "share after", "band", "seconds to follow", "each run alone"],
          ...rows,
        ]),
        "\n",
      );
    }
    let batch = new Map<string, Sample>();
    if (scenarios.has("batch")) {
      batch = await compare(lab, methods, origins, "closed", options, () => {
        let job: ChildProcess | undefined;
        return {
          during: () =>
            job ??= lab.spawn(
              "origin1",
              ["stress-ng", "--cpu", "2", "--timeout", `${options.seconds + 5}s`, "--quiet"],
              { cgroups: origins[0].cgroup.folders },
            ),
          end: async () => void (job && await stop(job)),
        };
      });
      console.log(
        `Batch job: stress-ng --cpu 2 in origin1's cgroup through the measured run (the proxy cannot see it), closed loop, medians of ${options.runs}:`,
      );
      console.log(resultTable(batch), "\n");
    }
    console.log(verdict(closed, follow, batch));
    if (options.svg && closed.size) {
      writeFileSync(
        options.svg,
        drawSvg(closed, steps, stepAt, [
          origins[0].cpus / (origins[0].cpus + origins[1].cpus),
          origins[0].cpus / 2 / (origins[0].cpus / 2 + origins[1].cpus),
        ]),
      );
      console.log(`wrote ${options.svg}`);
    }
    return 0;
  } finally {
    await lab.close();
    for (const origin of origins) origin.cgroup.remove();
  }
}

/** The goal of issue 22, checked for the best heartbeat method in the closed loop. */
function verdict(
  closed: Map<string, Sample>,
  follow: Map<string, number>,
  batch: Map<string, Sample>,
): string {
  const byRequests = closed.get("byrequests");
  const byBusyness = closed.get("bybusyness");
  const heartbeat = [...closed].filter(([name]) =>
    name.startsWith("hb ") && !METHODS.find((method) => method.name === name)?.oracle
  );
  if (!byRequests || !byBusyness || !heartbeat.length) {
    return "verdict: needs byrequests, bybusyness and a heartbeat method in the closed loop";
  }
  // The best: the lowest p99 among those that answered every request.
  const [best, s] = heartbeat.sort(([, a], [, b]) => a.errors - b.errors || a.p99 - b.p99)[0];
  const checks: [string, boolean][] = [
    [
      `p99 ${ratio(s.p99, byRequests.p99)} byrequests' (goal ≤ 0.5x)`,
      s.p99 <= 0.5 * byRequests.p99,
    ],
    [`${ratio(s.p99, byBusyness.p99)} bybusyness' (goal ≤ 1.1x)`, s.p99 <= 1.1 * byBusyness.p99],
    [
      `throughput ${ratio(s.throughput, byRequests.throughput)} byrequests' (goal ≥ 1.3x)`,
      s.throughput >= 1.3 * byRequests.throughput,
    ],
  ];
  const time = follow.get(best);
  if (time !== undefined) {
    checks.push([`step ${followText(time)} (goal ≤ 5 s)`, time <= 5]);
  }
  const batchBest = batch.get(best);
  const batchBusy = batch.get("bybusyness");
  if (batchBest && batchBusy) {
    checks.push([
      `batch job: p99 ${ratio(batchBest.p99, batchBusy.p99)} and throughput ${
        ratio(batchBest.throughput, batchBusy.throughput)
      } bybusyness' (goal: better)`,
      batchBest.p99 < batchBusy.p99 && batchBest.throughput >= batchBusy.throughput,
    ]);
  }
  const met = checks.every(([, ok]) => ok);
  return `verdict: ${met ? "MET" : "NOT MET"} with ${best}: ${
    checks.map(([what, ok]) => `${what} ${ok ? "✓" : "✗"}`).join("; ")
  }`;
}
