/**
 * Benchmark: what running heartbeat costs, side by side with what else a user could run.
 * Run as root (everything happens in a private network namespace, where heartbeats go to
 * 239.0.0.1 on loopback and nowhere else), after `bun scripts/build.ts --target linux-x64
 * --no-archives`. Prints each command it measures, then a table of medians.
 *
 *   bun scripts/bench.ts [--runs N]      startup, memory and CPU, with the static source and with
 *                                        the apache source against a real Apache:
 *     first packet  ms from starting the process to its first heartbeat arriving at a listener
 *     peak RSS      VmHWM of the process after its heartbeats (MB)
 *     CPU/beat      CPU time of all its threads per heartbeat, over 200 heartbeats at 20 a second
 *   bun scripts/bench.ts --accuracy S    the compiled agent and Apache's own mod_heartbeat send
 *                                        once a second side by side for S seconds: the p50 and
 *                                        p99 of how far each interval is from 1 s, and the drift
 *                                        of the last heartbeat from first + N × 1 s
 *   bun scripts/bench.ts --ingest [--runs N]
 *                                        monitors taking a blast of heartbeats from 100 senders
 *                                        (the blaster on CPU 0, the monitor on CPU 1): loss at
 *                                        each rate, and the highest rate with under 1 % lost,
 *                                        next to Apache's own mod_heartmonitor and to a bare
 *                                        Bun receiver (the floor)
 *   bun scripts/bench.ts --sizes         binary and archive sizes of each target in dist/
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Lab, REPO, waitFor } from "../test/support/lab.ts";
import { startApacheOrigin, startApacheProxy } from "../test/support/servers.ts";
import { VERSION } from "../src/version.ts";

const BIN = join(REPO, "node_modules", ".bin");
const DIST = join(REPO, "dist");
/** The C and TypeScript programs the benchmarks run beside heartbeat. */
const PROGRAMS = join(REPO, "scripts", "bench");
const BINARY = join(DIST, "heartbeat-linux-x64");
const BEATS = 200;
const INTERVAL = 0.05;
const NS = "bench";

/**
 * The physical floor: a C sender sleeping to absolute deadlines, no runtime at all. With a
 * status port, it reads Apache's scoreboard each time, as the apache source does.
 */

/**
 * A blaster: RATE heartbeats a second for SECONDS, round robin from SENDERS source addresses
 * 10.99.1.1… (on lo), paced to 1 ms deadlines. Prints how many it sent.
 */

/** Compiles scripts/bench/NAME.c into the lab's folder. */
function compileC(lab: Lab, name: string): string {
  const path = join(lab.dir, name);
  execFileSync("cc", ["-O2", "-o", path, join(PROGRAMS, `${name}.c`)]);
  return path;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((row) => row[column].length))
  );
  for (const row of [header, ...rows]) {
    console.log(
      row.map((cell, column) =>
        column ? cell.padStart(widths[column]) : cell.padEnd(widths[column])
      ).join("  "),
    );
  }
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
const wallMs = () => performance.timeOrigin + performance.now();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How often to look for an arrival: the CPU window opens and closes within this of its heartbeat. */
const POLL_MS = 5;

/** A listener in the namespace noting each heartbeat's arrival time, by port. */
async function listener(lab: Lab, ports: number[]): Promise<Map<number, number[]>> {
  const child = lab.spawn(NS, [
    join(BIN, "bun"),
    join(PROGRAMS, "arrivals.ts"),
    ...ports.map(String),
  ]);
  const arrivals = new Map<number, number[]>(ports.map((port) => [port, []]));
  let ready = false;
  let buffer = "";
  child.stdout!.on("data", (chunk) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (line === "ready") ready = true;
      else {
        const [port, time] = line.split(" ").map(Number);
        arrivals.get(port)!.push(time);
      }
    }
  });
  await waitFor(() => ready, 20_000, "the listener", POLL_MS);
  return arrivals;
}

/** CPU time of every thread of `pid` so far, in ms, to the nanosecond (not the 10 ms tick). */
function cpuMs(pid: number): number {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.reduce((sum, task) => {
    try {
      return sum +
        Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]) / 1e6;
    } catch {
      return sum; // a thread that ended meanwhile
    }
  }, 0);
}

function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

/** The pid of the process `ip netns exec` became. */
async function execed(pid: number, command: string): Promise<number> {
  await waitFor(
    () => !readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("ip\0"),
    5_000,
    `${command} to start`,
    POLL_MS,
  );
  return pid;
}

async function measure(lab: Lab, argv: string[], arrivals: number[]) {
  arrivals.length = 0;
  const started = wallMs();
  const child = lab.spawn(NS, argv);
  await waitFor(() => arrivals.length >= 1, 20_000, "the first heartbeat", POLL_MS);
  const firstPacketMs = arrivals[0] - started;
  const pid = await execed(child.pid!, argv[0]);
  await waitFor(() => arrivals.length >= 20, 20_000, "20 heartbeats", POLL_MS);
  const before = cpuMs(pid);
  await waitFor(() => arrivals.length >= 20 + BEATS, 60_000, `${20 + BEATS} heartbeats`, POLL_MS);
  const cpuPerBeatMs = (cpuMs(pid) - before) / BEATS;
  const rss = peakRssMb(pid);
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  return { firstPacketMs, peakRssMb: rss, cpuPerBeatMs };
}

async function startup(lab: Lab, runs: number): Promise<void> {
  const reference = compileC(lab, "reference-sender");
  // Apache with mod_status on port 80, for the apache source; its own heartbeats go elsewhere.
  startApacheOrigin(lab, NS, { heartbeatAddress: "239.0.0.1:27990" });
  await waitFor(
    () => {
      try {
        lab.sh(NS, "curl -sf http://127.0.0.1/server-status?auto | grep -q Scoreboard");
        return true;
      } catch {
        return false;
      }
    },
    20_000,
    "Apache's /server-status",
    POLL_MS,
  );
  const arrivals = (await listener(lab, [27999])).get(27999)!;
  const agent = (
    source: string[],
  ) => ["-a", "239.0.0.1:27999", ...source, "--interval", String(INTERVAL), "-q"];
  for (
    const [label, source, referenceArgs] of [
      ["static source", ["--source", "static", "--ready", "10"], [String(INTERVAL)]],
      ["apache source, against Apache's mod_status", ["--source", "apache"], [
        String(INTERVAL),
        "80",
      ]],
    ] as const
  ) {
    const senders: [string, string[]][] = [
      ["compiled binary", [BINARY, ...agent([...source])]],
      ["bun src/main.ts", [join(BIN, "bun"), "src/main.ts", ...agent([...source])]],
      ["deno run src/main.ts", [
        join(BIN, "deno"),
        "run",
        "-A",
        "src/main.ts",
        ...agent([...source]),
      ]],
      ["C reference sender", [reference, ...referenceArgs]],
    ];
    const rows: string[][] = [];
    for (const [name, argv] of senders) {
      console.log(`$ ip netns exec ${lab.ns(NS)} ${argv.join(" ")}    (${runs} runs)`);
      const results = [];
      for (let run = 0; run < runs; run++) results.push(await measure(lab, argv, arrivals));
      rows.push([
        name,
        median(results.map((r) => r.firstPacketMs)).toFixed(1),
        median(results.map((r) => r.peakRssMb)).toFixed(1),
        median(results.map((r) => r.cpuPerBeatMs)).toFixed(3),
      ]);
    }
    console.log(
      `\n${label}: medians of ${runs} runs; CPU over ${BEATS} heartbeats at ${1 / INTERVAL}/s\n`,
    );
    table(["sender", "first packet ms", "peak RSS MB", "CPU/beat ms"], rows);
    console.log();
  }
}

/** p50, p99 of |interval − 1 s| and the drift of the last arrival from first + N × 1 s, in ms. */
function accuracy(arrivals: number[]): { n: number; p50: number; p99: number; drift: number } {
  const errors = arrivals.slice(1).map((time, i) => Math.abs(time - arrivals[i] - 1000)).sort((
    a,
    b,
  ) => a - b);
  const at = (q: number) => errors[Math.min(errors.length - 1, Math.floor(q * errors.length))];
  return {
    n: arrivals.length,
    p50: at(0.5),
    p99: at(0.99),
    drift: arrivals[arrivals.length - 1] - (arrivals[0] + (arrivals.length - 1) * 1000),
  };
}

async function measureAccuracy(lab: Lab, seconds: number): Promise<void> {
  const arrivals = await listener(lab, [27997, 27998]);
  startApacheOrigin(lab, NS, { heartbeatAddress: "239.0.0.1:27997" });
  const argv = [BINARY, "-a", "239.0.0.1:27998", "--source", "static", "--ready", "10", "-q"];
  lab.spawn(NS, argv);
  console.log(`$ ip netns exec ${lab.ns(NS)} ${argv.join(" ")}`);
  console.log(
    `$ ip netns exec ${
      lab.ns(NS)
    } apache2 (mod_heartbeat: HeartbeatAddress 239.0.0.1:27997)    for ${seconds} s`,
  );
  await sleep(seconds * 1000);
  const rows = ([["compiled agent", 27998], ["mod_heartbeat", 27997]] as const).map(
    ([name, port]) => {
      const { n, p50, p99, drift } = accuracy(arrivals.get(port)!);
      return [name, String(n), p50.toFixed(2), p99.toFixed(2), drift.toFixed(1)];
    },
  );
  console.log();
  table(["sender", "heartbeats", "p50 |interval-1s| ms", "p99 ms", "drift of the last ms"], rows);
}

/** The namespace's count of datagrams that reached a socket (InDatagrams). */
function udpDelivered(lab: Lab): number {
  const lines = lab.sh(NS, "cat /proc/net/snmp").split("\n").filter((line) =>
    line.startsWith("Udp:")
  );
  const [names, values] = lines.map((line) => line.split(/\s+/).slice(1));
  return Number(values[names.indexOf("InDatagrams")]);
}

const INGEST_RATES = [25_000, 50_000, 100_000, 150_000, 200_000, 250_000];
const INGEST_SECONDS = 4;
const INGEST_SENDERS = 100;

async function ingest(lab: Lab, runs: number): Promise<void> {
  const blaster = compileC(lab, "blaster");
  lab.sh(
    NS,
    Array.from({ length: INGEST_SENDERS }, (_, i) => `ip addr add 10.99.1.${i + 1}/32 dev lo`).join(
      "; ",
    ),
  );
  /** The share of a blast at `rate` that reached the monitor's socket, and the rate the blaster managed. */
  const blast = async (rate: number, seconds: number) => {
    const before = udpDelivered(lab);
    const started = performance.now();
    const sent = Number(lab.sh(NS, `taskset -c 0 ${blaster} ${rate} ${seconds} ${INGEST_SENDERS}`));
    const achieved = sent / ((performance.now() - started) / 1000);
    await sleep(1000); // what is queued is read
    return { lost: 1 - (udpDelivered(lab) - before) / sent, achieved };
  };
  const storage = join(lab.dir, "monitor.dat");
  const monitorArgs = ["monitor", "--listen", "239.0.0.1:27999", "--storage", storage, "-q"];
  // The floor: Bun's receiver doing nothing with what it gets, as the monitor's adapter opens it.
  const bare = join(PROGRAMS, "bare-receiver.ts");
  const ours = monitorArgs.join(" ");
  const monitors: [string, string, () => void][] = [
    [
      "bare Bun receiver",
      "Bun.udpSocket, counting nothing",
      () => lab.spawn(NS, [join(BIN, "bun"), bare]),
    ],
    ["compiled binary", ours, () => lab.spawn(NS, [BINARY, ...monitorArgs])],
    [
      "bun src/main.ts",
      ours,
      () => lab.spawn(NS, [join(BIN, "bun"), "src/main.ts", ...monitorArgs]),
    ],
    [
      "deno run src/main.ts",
      ours,
      () => lab.spawn(NS, [join(BIN, "deno"), "run", "-A", "src/main.ts", ...monitorArgs]),
    ],
    [
      "Apache mod_heartmonitor",
      "HeartbeatListen 239.0.0.1:27999, HeartbeatMaxServers 0",
      () =>
        startApacheProxy(lab, NS, {
          address: "127.0.0.1",
          members: ["http://127.0.0.1:8080"],
          heartmonitor: { listen: "239.0.0.1:27999" },
        }),
    ],
  ];
  const rows: string[][] = [];
  for (const [name, what, start] of monitors) {
    console.log(`$ ${name}: ${what}    (${runs} runs)`);
    start();
    await waitFor(
      () => lab.sh(NS, "cat /proc/net/udp").includes(`:${(27999).toString(16).toUpperCase()} `),
      20_000,
      `${name} to listen`,
      POLL_MS,
    );
    // Everything in the namespace on CPU 1; the blaster gets CPU 0 to itself.
    for (const pid of lab.pids(NS)) {
      execFileSync("taskset", ["-a", "-c", "-p", "1", String(pid)], { stdio: "ignore" });
    }
    await blast(50_000, 2); // warm-up, not counted: a JIT compiles the hot path in the first second
    const cells: string[] = [];
    let best = 0;
    for (const rate of INGEST_RATES) {
      const results = [];
      for (let run = 0; run < runs; run++) results.push(await blast(rate, INGEST_SECONDS));
      const lost = median(results.map((r) => r.lost));
      const achieved = median(results.map((r) => r.achieved));
      cells.push(
        `${(lost * 100).toFixed(1)} %${
          achieved < rate * 0.97 ? ` (at ${Math.round(achieved / 1000)}k/s)` : ""
        }`,
      );
      if (lost < 0.01) best = Math.max(best, Math.min(rate, achieved));
    }
    rows.push([name, ...cells, `${Math.round(best / 1000)}k`]);
    lab.pids(NS).forEach((pid) => process.kill(pid, "SIGKILL"));
    await sleep(500);
  }
  console.log(
    `\nmedian share lost of ${runs} blasts at each rate (heartbeats/s for ${INGEST_SECONDS} s from ${INGEST_SENDERS} senders;` +
      ` "at": the rate the blaster reached); best: the highest rate with < 1 % lost\n`,
  );
  table(["monitor", ...INGEST_RATES.map((rate) => `${rate / 1000}k/s`), "best"], rows);
}

function sizes(): void {
  const mb = (path: string) => existsSync(path) ? (statSync(path).size / 1e6).toFixed(1) : "-";
  const binaries = readdirSync(DIST).filter((name) => /^heartbeat-[^.]+(\.exe)?$/.test(name))
    .sort();
  console.log(`$ ls -l ${DIST}\n`);
  table(
    ["target", "binary MB", "archive MB", "image MB"],
    binaries.map((name) => {
      const target = name.replace(/\.exe$/, "").replace(/^heartbeat-/, "");
      const release = join(DIST, `heartbeat-${VERSION}-${target}`);
      return [
        target,
        mb(join(DIST, name)),
        mb(`${release}.${name.endsWith(".exe") ? "zip" : "tar.xz"}`),
        mb(`${release}.image.tar`),
      ];
    }),
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      runs: { type: "string", default: "5" },
      accuracy: { type: "string" },
      ingest: { type: "boolean" },
      sizes: { type: "boolean" },
    },
  });
  if (values.sizes) {
    sizes();
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error("bench: run as root: it makes a private network namespace for the heartbeats");
    return 2;
  }
  if (!existsSync(BINARY)) {
    console.error(
      "bench: build the binary first: bun scripts/build.ts --target linux-x64 --no-archives",
    );
    return 2;
  }
  // A binary written moments ago is mapped from the page cache in larger pieces, which shows as
  // up to 5 MB more RSS than the same binary read back from disk: start from a cold cache.
  execFileSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]);
  // Interrupted, it still deletes its namespace and what runs there (the lab does so at exit).
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
  const lab = new Lab();
  try {
    lab.addNamespace(NS);
    lab.sh(NS, "ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo");
    if (values.accuracy) await measureAccuracy(lab, Number(values.accuracy));
    else if (values.ingest) await ingest(lab, Number(values.runs));
    else await startup(lab, Number(values.runs));
    return 0;
  } finally {
    await lab.close();
  }
}

process.exit(await main());
