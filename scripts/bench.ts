/**
 * Benchmark: what running the agent costs, side by side with what else a user could run.
 * `bun scripts/bench.ts [--runs N]` as root (it makes a private network namespace, where the
 * heartbeats go to 239.0.0.1 on loopback and nowhere else), after `bun scripts/build.ts
 * --target linux-x64 --no-archives`. Prints each command it measures and a table of medians.
 *
 * Measured for each sender, with the static source:
 *   first packet  ms from starting the process to its first heartbeat arriving at a listener
 *   peak RSS      VmHWM of the process after its heartbeats (MB)
 *   CPU/beat      user+system CPU per heartbeat, over 200 heartbeats at 20 a second (ms)
 *
 * With --accuracy SECONDS, instead: the compiled agent and Apache's own mod_heartbeat send
 * once a second side by side for that long; for each, the p50 and p99 of how far each interval
 * is from 1 s, and the drift of the last heartbeat from first + N × 1 s.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(REPO, "node_modules", ".bin");
const NS = `hbbench${process.pid}`;
const BEATS = 200;
const INTERVAL = 0.05;

/** The physical floor: a C sender sleeping to absolute deadlines, no runtime at all. */
const REFERENCE_C = `#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  double interval = atof(argv[1]);
  int sock = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(27999) };
  inet_pton(AF_INET, "239.0.0.1", &to.sin_addr);
  const char *message = "v=1&ready=10&busy=0";
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long step = (long)(interval * 1e9);
  for (;;) {
    sendto(sock, message, strlen(message), 0, (struct sockaddr *)&to, sizeof to);
    next.tv_nsec += step;
    while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
}
`;

function sh(command: string): string {
  return execFileSync("sh", ["-ec", command], { encoding: "utf8" });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
const wallMs = () => performance.timeOrigin + performance.now();

/** A listener in the namespace printing each heartbeat's arrival time (on other ports: `PORT TIME`). */
function listener(ports = [27999]): { arrivals: number[]; byPort: Map<number, number[]>; child: ChildProcess; ready: Promise<void> } {
  const script = join(tmpdir(), `hbbench-listen-${process.pid}.ts`);
  writeFileSync(script, `import { createSocket } from "node:dgram";
let ready = 0;
for (const port of ${JSON.stringify(ports)}) {
  const socket = createSocket({ type: "udp4", reuseAddr: true });
  socket.on("message", () => console.log(port === 27999 ? performance.timeOrigin + performance.now() : port + " " + (performance.timeOrigin + performance.now())));
  socket.bind(port, () => { socket.addMembership("239.0.0.1", "127.0.0.1"); if (++ready === ${ports.length}) console.log("ready"); });
}
`);
  const child = spawn("ip", ["netns", "exec", NS, join(BIN, "bun"), script], { stdio: ["ignore", "pipe", "inherit"] });
  const arrivals: number[] = [];
  const byPort = new Map<number, number[]>();
  let resolveReady: () => void;
  const ready = new Promise<void>((resolve) => resolveReady = resolve);
  let buffer = "";
  child.stdout!.on("data", (chunk) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (line === "ready") resolveReady();
      else if (line.includes(" ")) {
        const [port, time] = line.split(" ").map(Number);
        byPort.set(port, [...(byPort.get(port) ?? []), time]);
      } else arrivals.push(Number(line));
    }
  });
  return { arrivals, byPort, child, ready };
}

function procStat(pid: number): { cpuMs: number; peakRssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime
  const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1];
  return { cpuMs: (ticks * 1000) / hz, peakRssMb: Number(hwm) / 1024 };
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function measure(argv: string[], listen: ReturnType<typeof listener>) {
  listen.arrivals.length = 0;
  const started = wallMs();
  const child = spawn("ip", ["netns", "exec", NS, ...argv], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  await waitUntil(() => listen.arrivals.length >= 1, 20_000);
  const firstPacketMs = listen.arrivals[0] - started;
  await waitUntil(() => listen.arrivals.length >= 20, 20_000);
  const before = procStat(child.pid!);
  await waitUntil(() => listen.arrivals.length >= 20 + BEATS, 60_000);
  const after = procStat(child.pid!);
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  return { firstPacketMs, peakRssMb: after.peakRssMb, cpuPerBeatMs: (after.cpuMs - before.cpuMs) / BEATS };
}

/** Apache with only mod_heartbeat (and what it needs), sending to 239.0.0.1:`port` each second. */
function startModHeartbeat(port: number): ChildProcess {
  const root = join(tmpdir(), `hbbench-apache-${process.pid}`);
  sh(`mkdir -p ${root}/logs && chown www-data ${root}/logs && chmod 755 ${root}`);
  writeFileSync(join(root, "httpd.conf"), `ServerRoot ${root}
ServerName bench
Listen 127.0.0.1:8099
PidFile ${root}/httpd.pid
DefaultRuntimeDir ${root}
Mutex file:${root} default
ErrorLog ${root}/logs/error.log
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
LoadModule heartbeat_module /usr/lib/apache2/modules/mod_heartbeat.so
HeartbeatAddress 239.0.0.1:${port}
`);
  return spawn("ip", ["netns", "exec", NS, "apache2", "-f", join(root, "httpd.conf"), "-DFOREGROUND"], { stdio: "ignore" });
}

/** p50, p99 of |interval − 1 s| and the drift of the last arrival from first + N × 1 s, in ms. */
function accuracy(arrivals: number[]): { n: number; p50: number; p99: number; drift: number } {
  const errors = arrivals.slice(1).map((time, i) => Math.abs(time - arrivals[i] - 1000)).sort((a, b) => a - b);
  const at = (q: number) => errors[Math.min(errors.length - 1, Math.floor(q * errors.length))];
  return { n: arrivals.length, p50: at(0.5), p99: at(0.99), drift: arrivals[arrivals.length - 1] - (arrivals[0] + (arrivals.length - 1) * 1000) };
}

async function measureAccuracy(seconds: number, binary: string): Promise<void> {
  const listen = listener([27997, 27998]);
  await listen.ready;
  const apache = startModHeartbeat(27997);
  const agent = spawn("ip", ["netns", "exec", NS, binary, "-a", "239.0.0.1:27998", "--source", "static", "--ready", "10", "-q"], { stdio: "ignore" });
  console.log(`$ ip netns exec ${NS} ${binary} -a 239.0.0.1:27998 --source static --ready 10 -q`);
  console.log(`$ ip netns exec ${NS} apache2 (mod_heartbeat: HeartbeatAddress 239.0.0.1:27997)    for ${seconds} s`);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  agent.kill("SIGKILL");
  apache.kill("SIGTERM");
  listen.child.kill("SIGKILL");
  console.log(`\nsender              heartbeats  p50 |interval-1s| ms  p99 ms  drift of the last ms`);
  for (const [name, port] of [["compiled agent", 27998], ["mod_heartbeat", 27997]] as const) {
    const { n, p50, p99, drift } = accuracy(listen.byPort.get(port) ?? []);
    console.log(`${name.padEnd(18)}  ${String(n).padStart(10)}  ${p50.toFixed(2).padStart(19)}  ${p99.toFixed(2).padStart(6)}  ${drift.toFixed(1).padStart(20)}`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { runs: { type: "string", default: "5" }, accuracy: { type: "string" } } });
  const runs = Number(values.runs);
  if (process.getuid?.() !== 0) {
    console.error("bench: run as root: it makes a private network namespace for the heartbeats");
    return 2;
  }
  const binary = join(REPO, "dist", "heartbeat-linux-x64");
  if (!existsSync(binary)) {
    console.error("bench: build the binary first: bun scripts/build.ts --target linux-x64 --no-archives");
    return 2;
  }
  const reference = join(tmpdir(), `hbbench-reference-${process.pid}`);
  writeFileSync(`${reference}.c`, REFERENCE_C);
  execFileSync("cc", ["-O2", "-o", reference, `${reference}.c`]);

  sh(`ip netns add ${NS}`);
  try {
    sh(`ip netns exec ${NS} sh -ec 'ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo'`);
    if (values.accuracy) {
      await measureAccuracy(Number(values.accuracy), binary);
      return 0;
    }
    const listen = listener();
    await listen.ready;
    const agentArgs = ["-a", "239.0.0.1:27999", "--source", "static", "--ready", "10", "--interval", String(INTERVAL), "-q"];
    const senders: [string, string[]][] = [
      ["compiled binary", [binary, ...agentArgs]],
      ["bun src/main.ts", [join(BIN, "bun"), "src/main.ts", ...agentArgs]],
      ["deno run src/main.ts", [join(BIN, "deno"), "run", "-A", "src/main.ts", ...agentArgs]],
      ["C reference sender", [reference, String(INTERVAL)]],
    ];
    const rows: string[][] = [];
    for (const [name, argv] of senders) {
      console.log(`$ ip netns exec ${NS} ${argv.join(" ")}    (${runs} runs)`);
      const results = [];
      for (let run = 0; run < runs; run++) results.push(await measure(argv, listen));
      rows.push([
        name,
        median(results.map((r) => r.firstPacketMs)).toFixed(1),
        median(results.map((r) => r.peakRssMb)).toFixed(1),
        median(results.map((r) => r.cpuPerBeatMs)).toFixed(3),
      ]);
    }
    listen.child.kill("SIGKILL");
    const header = ["sender (static source)", "first packet ms", "peak RSS MB", "CPU/beat ms"];
    const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column].length)));
    console.log(`\nmedians of ${runs} runs; CPU over ${BEATS} heartbeats at ${1 / INTERVAL}/s\n`);
    for (const row of [header, ...rows]) console.log(row.map((cell, column) => column ? cell.padStart(widths[column]) : cell.padEnd(widths[column])).join("  "));
    return 0;
  } finally {
    sh(`ip netns pids ${NS} | xargs -r kill -9; ip netns del ${NS}`);
  }
}

process.exit(await main());
