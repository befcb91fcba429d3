/**
 * Heartbeats turned into an nginx upstream (issue 26): open-source nginx has no feedback
 * balancing, its `server ... weight=W;` lines are fixed until a reload. The monitor keeps a file
 * of those lines, for the operator to `include` inside an `upstream NAME { ... }` block, and
 * reloads nginx when the file changes: weights as the HAProxy push sets them, a server at ready=0
 * or silent for 10 s `down`, one silent for 30 s gone (the table drops it).
 *
 * Each reload starts new worker processes (and keeps the old ones until their connections end),
 * so reloads are what this output bounds: at most one every --nginx-reload-interval seconds, and
 * a change of weights alone only when one moved enough to matter (changedEnough).
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { describeError } from "../../errors.ts";
import { balancerWeights } from "../balancer.ts";
import { type Logger, ProblemLog } from "../../log.ts";
import { family } from "../../prometheus.ts";
import { inCidr, type ServerRange } from "../cidr.ts";
import { writeFileAtomic } from "../storage.ts";
import type { ServerEntry } from "../table.ts";
import type { MonitorOutput } from "./output.ts";

/**
 * A weight is rewritten only when it moved by more than this fraction of the one in the file...
 * An agent's ready moves by a few slots from one second to the next (requests come and go); a
 * fifth is above that noise, and below a change of load an operator would want nginx to follow.
 */
export const HYSTERESIS_FRACTION = 0.2;
/**
 * ...and by at least this much (of 256): the smallest weights (a server with under 1 % of the
 * largest one's free slots) would otherwise flap between 1 and 2, a change of half or double.
 */
export const HYSTERESIS_MIN_STEP = 3;
/**
 * Nothing is written before the monitor has listened this long: agents send every second, so
 * by then each one running has been heard, and a restarted monitor does not first write a file
 * with the one server it heard first, or none up.
 */
export const SETTLE_MS = 2_000;
/** A reload command still running after this is killed, and has failed. */
export const RELOAD_DEADLINE_MS = 10_000;
/** How long after the reload command exits its output is still read (see runReload). */
const OUTPUT_GRACE_MS = 500;
/** What of a failed reload's output is kept for the log: its first line, at most this long. */
const DETAIL_CHARS = 300;

/** One `server` line: ADDR:PORT, and its weight, 0 for `down`. */
export interface UpstreamServer {
  address: string;
  weight: number;
}

/**
 * The upstream's servers from the table: those --nginx-server allows (everyone when none is
 * given), each at the heartbeat's `port=` or else `port`, weighted as the HAProxy push weighs
 * them (balancerWeights, over these servers only: 1 to 256 while up, 0 at ready=0 or when silent
 * for 10 s).
 */
export function upstreamServers(
  entries: readonly ServerEntry[],
  now: number,
  options: { port: number; servers: readonly ServerRange[] },
): UpstreamServer[] {
  const portOf = (entry: ServerEntry) => entry.portGiven ? entry.port : options.port;
  const allowed = entries.filter((entry) =>
    options.servers.length === 0 ||
    options.servers.some(({ range, port }) =>
      inCidr(entry.ip, range) && (port === undefined || port === portOf(entry))
    )
  );
  const weights = balancerWeights([...allowed], now);
  return allowed.map((entry) => ({
    address: `${entry.ip.includes(":") ? `[${entry.ip}]` : entry.ip}:${portOf(entry)}`,
    weight: weights.get(entry) ?? 0,
  }));
}

const HEADER = "# Written by heartbeat monitor, to include inside an nginx upstream block; " +
  "rewritten as heartbeats change: edits are lost.\n";

/** The file's text: one `server` line each; a server at weight 0 is `down`. */
export function formatUpstream(servers: readonly UpstreamServer[]): string {
  return HEADER +
    servers.map(({ address, weight }) =>
      `server ${address} ${weight > 0 ? `weight=${weight}` : "down"};\n`
    ).join("");
}

/** The servers of a file formatUpstream wrote (other lines skipped). */
export function parseUpstream(text: string): UpstreamServer[] {
  return text.split("\n").flatMap((line) => {
    const server = /^server (\S+) (?:weight=(\d+)|down);$/.exec(line);
    return server ? [{ address: server[1], weight: Number(server[2] ?? 0) }] : [];
  });
}

/**
 * Whether `wanted` is worth a reload over `written`: always when a server comes, goes, or goes
 * down or up (a drain is never held back by the hysteresis); for weights alone, only when one
 * moved by more than HYSTERESIS_FRACTION of the written one and by HYSTERESIS_MIN_STEP or more.
 * Then the whole file is rewritten as computed, so that it never mixes weights of two moments.
 */
export function changedEnough(
  written: readonly UpstreamServer[],
  wanted: readonly UpstreamServer[],
): boolean {
  if (written.length !== wanted.length) return true;
  const before = new Map(written.map((server) => [server.address, server.weight]));
  return wanted.some(({ address, weight }) => {
    const old = before.get(address);
    if (old === undefined || (old === 0) !== (weight === 0)) return true;
    const step = Math.abs(weight - old);
    return step > old * HYSTERESIS_FRACTION && step >= HYSTERESIS_MIN_STEP;
  });
}

/**
 * The reload command as run: split at spaces and tabs into a program and its arguments, with no
 * shell and no quoting (`nginx -s reload`, `/usr/sbin/nginx -c /etc/nginx/nginx.conf -s reload`);
 * whatever needs a shell goes in a script, named here.
 */
export function reloadArgv(command: string): string[] {
  return command.trim().split(/[ \t]+/);
}

/**
 * Why the reload command cannot run, for -t; or undefined: its program must be an executable file,
 * found as a path when it has a slash, else in PATH.
 */
export function reloadCommandProblem(
  command: string,
  path = process.env.PATH ?? "",
): string | undefined {
  const [program] = reloadArgv(command);
  const candidates = program.includes("/")
    ? [program]
    : path.split(delimiter).filter(Boolean).map((folder) => join(folder, program));
  const found = candidates.some((candidate) => {
    try {
      // By its mode: access(X_OK) says yes to root for any file on some runtimes.
      const stat = statSync(candidate);
      return stat.isFile() && (stat.mode & 0o111) !== 0;
    } catch {
      return false;
    }
  });
  return found
    ? undefined
    : program.includes("/")
    ? `${program} is no executable file`
    : `${program} is not in PATH (${path})`;
}

export interface ReloadResult {
  ok: boolean;
  /** How it ended: `exit 1: <its first line of output>`, or why it could not start. */
  detail: string;
}

/**
 * Runs `argv` to its end, at most `deadlineMs` (then it is killed); never rejects. Its exit is
 * its end: a process it leaves running (a script's `nginx &`) may hold its output open for ever,
 * and would hold every later reload with it; what it said within OUTPUT_GRACE_MS is kept.
 */
export function runReload(argv: string[], deadlineMs = RELOAD_DEADLINE_MS): Promise<ReloadResult> {
  return new Promise((resolve) => {
    let output = "";
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    } catch (error) {
      return resolve({ ok: false, detail: describeError(error) });
    }
    const keep = (chunk: Buffer) => {
      if (output.length < DETAIL_CHARS * 4) output += chunk.toString();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let grace: ReturnType<typeof setTimeout> | undefined;
    const deadline = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
    const finish = (result: ReloadResult) => {
      clearTimeout(deadline);
      clearTimeout(grace);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve(result);
    };
    const ended = (code: number | null, signal: NodeJS.Signals | null) => {
      const said = output.trim().split("\n")[0].slice(0, DETAIL_CHARS);
      const how = code === null
        ? `killed by ${signal}${signal === "SIGKILL" ? ` after ${deadlineMs / 1000} s` : ""}`
        : `exit ${code}`;
      finish({ ok: code === 0, detail: said ? `${how}: ${said}` : how });
    };
    child.once("error", (error) => finish({ ok: false, detail: describeError(error) }));
    child.once("exit", (code, signal) => {
      clearTimeout(deadline);
      grace = setTimeout(() => ended(code, signal), OUTPUT_GRACE_MS);
    });
    child.once("close", ended);
  });
}

export interface NginxUpstreamOptions {
  /** --nginx-upstream */
  file: string;
  /** --nginx-port: a server's port when its heartbeat names none. */
  port: number;
  /** --nginx-server: the servers allowed in the file; none: everyone heard. */
  servers: readonly ServerRange[];
  /** --nginx-reload, as given. */
  reload: string;
  /** --nginx-reload-interval */
  intervalSeconds: number;
  logger: Logger;
  /** Runs the reload command (tests give their own). */
  run?: (argv: string[]) => Promise<ReloadResult>;
}

/** The --nginx-upstream output: the file, and nginx reloaded when it changes. */
export class NginxUpstream implements MonitorOutput {
  readonly name = "nginx";
  readonly reloads = { ok: 0, failed: 0 };
  readonly #options: NginxUpstreamOptions;
  readonly #run: (argv: string[]) => Promise<ReloadResult>;
  readonly #problems: ProblemLog;
  /** The servers in the file: a previous run's at start, so that an unchanged file is not reloaded. */
  #written: UpstreamServer[];
  #firstUpdate: number | undefined;
  #now = 0;
  #lastReload = -Infinity;
  #reloading: Promise<void> | undefined;
  #writeProblem: string | undefined;
  #reloadProblem: string | undefined;

  constructor(options: NginxUpstreamOptions) {
    this.#options = options;
    this.#run = options.run ?? runReload;
    this.#problems = new ProblemLog(options.logger, { now: () => this.#now });
    let previous = "";
    try {
      previous = readFileSync(options.file, "utf8");
    } catch { /* none yet */ }
    this.#written = parseUpstream(previous);
  }

  update(entries: readonly ServerEntry[], now: number): void {
    this.#now = now;
    this.#firstUpdate ??= now;
    if (now - this.#firstUpdate < SETTLE_MS) return;
    let wanted = upstreamServers(entries, now, this.#options);
    // An upstream without servers fails `nginx -t`: the last ones stay, down, until others come.
    if (wanted.length === 0) {
      if (this.#written.length === 0) return;
      wanted = this.#written.map(({ address }) => ({ address, weight: 0 }));
    }
    if (!changedEnough(this.#written, wanted)) return;
    // One reload at a time, and one an interval: a change held here is taken at a later tick.
    if (this.#reloading) return;
    if (now - this.#lastReload < this.#options.intervalSeconds * 1000) return;
    const { file } = this.#options;
    try {
      writeFileAtomic(file, formatUpstream(wanted));
      this.#writeProblem = undefined;
      this.#problems.ok("write", `writing ${file} works again`);
    } catch (error) {
      this.#writeProblem = `cannot write ${file}: ${describeError(error)}`;
      this.#problems.fail("write", this.#writeProblem);
      return;
    }
    this.#written = wanted;
    this.#lastReload = now;
    this.#reloading = this.#reload(wanted).finally(() => this.#reloading = undefined);
  }

  async #reload(servers: UpstreamServer[]): Promise<void> {
    const { reload, file, logger } = this.#options;
    const up = servers.filter((server) => server.weight > 0).length;
    const what = `${file} (${up} up, ${servers.length - up} down)`;
    // A runner that rejects has failed, as one that exits non-zero: update() never throws.
    const result = await this.#run(reloadArgv(reload)).catch((error): ReloadResult => ({
      ok: false,
      detail: describeError(error),
    }));
    if (result.ok) {
      this.reloads.ok++;
      this.#reloadProblem = undefined;
      logger.info(`nginx: wrote ${what}; '${reload}' reloaded it`);
    } else {
      this.reloads.failed++;
      this.#reloadProblem = `'${reload}' failed (${result.detail}): nginx has not read ${file}`;
      logger.warn(
        `nginx: wrote ${what}; ${this.#reloadProblem}; tried again at the next change`,
      );
    }
  }

  problem(): string | undefined {
    return this.#writeProblem ?? this.#reloadProblem;
  }

  counters(): Record<string, number | string> {
    return {
      "nginx upstream file": this.#options.file,
      "nginx reloads": this.reloads.ok,
      "nginx reloads failed": this.reloads.failed,
    };
  }

  metrics(): string[] {
    const up = this.#written.filter((server) => server.weight > 0).length;
    return [
      family(
        "heartbeat_nginx_reloads_total",
        "Reload commands run after the nginx upstream file changed, by result.",
        "counter",
        [
          `heartbeat_nginx_reloads_total{result="ok"} ${this.reloads.ok}`,
          `heartbeat_nginx_reloads_total{result="failed"} ${this.reloads.failed}`,
        ],
      ),
      family(
        "heartbeat_nginx_upstream_servers",
        "Servers in the nginx upstream file, up or down.",
        "gauge",
        [
          `heartbeat_nginx_upstream_servers{state="up"} ${up}`,
          `heartbeat_nginx_upstream_servers{state="down"} ${this.#written.length - up}`,
        ],
      ),
    ];
  }

  async close(): Promise<void> {
    await this.#reloading;
  }
}
