/**
 * The monitor: mod_heartmonitor outside Apache. It takes heartbeats sent by UDP (multicast or
 * unicast) or POSTed over HTTP (http.ts), keeps one entry per sender in its table, and once a
 * second drops the silent ones and hands the table to its outputs (outputs/): the storage file
 * mod_lbmethod_heartbeat reads, HAProxy's weights.
 */
import { isIP } from "node:net";
import {
  type Heartbeat,
  latin1,
  MAX_MESSAGE_BYTES,
  parseHeartbeat,
  readCommonHeartbeat,
} from "../codec.ts";
import { type ConnectionBounds, hostOf } from "../connection-limits.ts";
import { type Logger, ProblemLog } from "../log.ts";
import { type Clock, runEvery } from "../scheduler.ts";
import { describeError } from "../errors.ts";
import { FLAG_NAMES, type SettingNames } from "../settings.ts";
import type { SignatureCheck } from "../signing.ts";
import type { OpenUdpListener, UdpListenOptions } from "../transport/transport.ts";
import { type Cidr, inCidr } from "./cidr.ts";
import { type MonitorHttp, type OpenMonitorHttp, openMonitorHttp } from "./http.ts";
import type { MonitorOutput } from "./outputs/output.ts";
import { type MonitorView, ServerHistory } from "./page.ts";
import type { Rejection } from "./rejections.ts";
import type { StoredServer } from "./storage.ts";
import { DEFAULT_PORT, SEEN_TIMEOUT_MS, type ServerEntry, ServerTable, type Via } from "./table.ts";

export interface MonitorOptions {
  maxServers: number;
  /** How its messages name the settings (Resolved.names); the flags when not given. */
  names?: SettingNames;
  /** Senders accepted; empty: everyone. */
  allow: Cidr[];
  /** With a key: heartbeats must be signed, genuine and fresh. */
  signatures?: SignatureCheck;
  /** Seconds since 1970, for signatures' timestamps. */
  unixNow?: () => number;
  /** What the table is written to each tick, in this order; none: the table is kept in memory only. */
  outputs?: MonitorOutput[];
  /** Told one line per heartbeat accepted, for --print. */
  print?: (line: string) => void;
  logger: Logger;
  clock: Clock;
}

/** How often the table is handed to the outputs: the balancer reads the storage file on every request. */
export const TICK_MS = 1000;

/** How many new servers, and how many removed ones, get a log line each a second. */
const SERVER_LINES = 10;

export class Monitor {
  readonly table: ServerTable;
  readonly outputs: readonly MonitorOutput[];
  readonly accepted: Record<Via, number> = { udp: 0, http: 0 };
  readonly rejected = new Map<Rejection, number>();
  /** Heartbeats taken without their `port=`, which was no port (codec: ignoredPort). */
  portsIgnored = 0;
  /** For the status page: each server's recent ready, and how it was heard. */
  readonly history = new ServerHistory();
  readonly #options: MonitorOptions;
  readonly #problems: ProblemLog;
  readonly #names: SettingNames;

  constructor(options: MonitorOptions) {
    this.#options = options;
    this.#names = options.names ?? FLAG_NAMES;
    this.table = new ServerTable(options.maxServers);
    this.outputs = options.outputs ?? [];
    this.#problems = new ProblemLog(options.logger, { now: () => options.clock.now() });
  }

  /** The monitor's clock (ms). */
  now(): number {
    return this.#options.clock.now();
  }

  /** Whether --allow lets `host` in. */
  allows(host: string): boolean {
    const { allow } = this.#options;
    return allow.length === 0 || allow.some((range) => inCidr(host, range));
  }

  /** Takes one message from `from`; returns why it was turned away, or undefined. */
  accept(
    message: Uint8Array | string,
    sender: string,
    via: Via,
    /** The message's size, where only that was kept (an oversize POST is not read whole). */
    size?: number,
  ): { reason: Rejection; detail: string } | undefined {
    // A link-local sender comes with its zone (`fe80::1%eth0`) from some runtimes and not others: one host, one entry.
    const from = hostOf(sender);
    // A trailing line end is no part of the heartbeat, over UDP (`echo ... | socat`) as in a
    // POST (Tomcat's CRLF): Apache's atoi never sees it.
    const body = typeof message === "string" ? message : trimEnd(message);
    const rejection = this.#take(body, from, via, size ?? body.length);
    if (rejection) {
      this.rejected.set(rejection.reason, (this.rejected.get(rejection.reason) ?? 0) + 1);
      this.#problems.fail(
        `reject ${rejection.reason}`,
        `rejected a heartbeat from ${from} (${via}): ${rejection.reason}: ${rejection.detail}`,
      );
    }
    return rejection;
  }

  #take(
    message: Uint8Array | string,
    from: string,
    via: Via,
    size: number,
  ): { reason: Rejection; detail: string } | undefined {
    const { signatures, clock } = this.#options;
    // A POST whose connection is gone by the time it is read has no peer address left: a
    // server without an address would be a line mod_lbmethod_heartbeat cannot match. (A
    // datagram always has one: not checked on the hot path.)
    if (via === "http" && !isIP(from)) {
      return { reason: "no-address", detail: "the sender's address is unknown" };
    }
    if (!this.allows(from)) {
      return { reason: "not-allowed", detail: `not in ${this.#names("allow")}` };
    }
    // A signed-only monitor checks the signature before it does anything else with the bytes
    // but count them.
    if (size > MAX_MESSAGE_BYTES) {
      return {
        reason: "oversize",
        detail: `${size} bytes, more than ${MAX_MESSAGE_BYTES}`,
      };
    }
    const unsound = signatures?.check(
      typeof message === "string" ? message : latin1(message),
      from,
      this.#unixNow(),
    );
    if (unsound) return unsound;
    // The common form straight from the bytes; anything else through the full parser.
    let heartbeat: Heartbeat & { ignoredPort?: string } | undefined = typeof message === "string"
      ? undefined
      : readCommonHeartbeat(message);
    if (!heartbeat) {
      const parsed = parseHeartbeat(message);
      if (!parsed.ok) return parsed;
      heartbeat = parsed.heartbeat;
    }
    const recorded = this.table.record(from, heartbeat, clock.now(), via);
    if (recorded === "full") {
      return {
        reason: "full",
        detail: `already ${this.table.size} servers (${this.#names("maxServers")})`,
      };
    }
    if (heartbeat.ignoredPort !== undefined) {
      this.portsIgnored++;
      this.#problems.fail(
        "ignored port",
        `took a heartbeat from ${from} (${via}) without its port: port=${
          JSON.stringify(heartbeat.ignoredPort)
        } is no port from 1 to 65535`,
      );
    }
    this.accepted[via]++;
    const { ready, busy, port } = heartbeat;
    this.#options.print?.(
      `${new Date().toISOString()} ${from} ready=${ready} busy=${busy} port=${
        port ?? DEFAULT_PORT
      } (${via})`,
    );
    // The outputs hear of it at the next tick, never per heartbeat: a storm of new senders must
    // not take the time that keeps known servers fresh.
    if (recorded === "added") this.#newServer(from, via);
    return undefined;
  }

  /** New servers logged one a line, at most SERVER_LINES a second; the rest counted. */
  #newServers = { logged: 0, unlogged: 0 };

  #newServer(ip: string, via: Via): void {
    if (this.#newServers.logged++ < SERVER_LINES) {
      this.#options.logger.info(`new server ${ip} (${via})`);
    } else this.#newServers.unlogged++;
  }

  /**
   * Takes the servers of a storage file left by an earlier run (or by mod_heartmonitor), aged
   * by their lastseen: a restart loses no one. (mod_heartmonitor's own rewrite is from what it
   * heard since its start, so its file is empty at the first one after a restart.)
   */
  restore(servers: StoredServer[]): number {
    const now = this.#options.clock.now();
    let kept = 0;
    for (const server of servers) {
      const ageMs = server.lastseen * 1000;
      if (!isIP(server.ip) || !(server.lastseen >= 0) || ageMs > SEEN_TIMEOUT_MS) continue;
      const { ready, busy, port } = server;
      if (this.table.record(server.ip, { ready, busy, port }, now - ageMs) !== "full") kept++;
    }
    return kept;
  }

  #unixNow(): number {
    return Math.floor(this.#options.unixNow?.() ?? Date.now() / 1000);
  }

  /** Drops silent servers, then hands the table to each output in turn. */
  tick(): void {
    const { logger, clock, signatures } = this.#options;
    if (this.#newServers.unlogged) {
      logger.info(`and ${this.#newServers.unlogged} more new servers`);
    }
    this.#newServers = { logged: 0, unlogged: 0 };
    signatures?.forget(this.#unixNow());
    const now = clock.now();
    const gone = this.table.expire(now);
    for (const { ip } of gone.slice(0, SERVER_LINES)) {
      logger.info(`server ${ip} silent for ${SEEN_TIMEOUT_MS / 1000} s: removed`);
    }
    if (gone.length > SERVER_LINES) {
      logger.info(`and ${gone.length - SERVER_LINES} more servers silent: removed`);
    }
    const entries = this.table.entries();
    this.history.update(entries, now);
    for (const output of this.outputs) {
      // An output's contract is never to throw; one that does anyway costs its own update, not
      // the tick that keeps the others (and the table's expiry) going.
      try {
        output.update(entries, now);
      } catch (error) {
        this.#problems.fail(
          `output ${output.name}`,
          `the ${output.name} output failed: ${describeError(error)}`,
        );
      }
    }
  }

  /** What the status page shows (src/monitor/page.ts). */
  pageView(): MonitorView {
    const { signatures, clock } = this.#options;
    return {
      entries: this.table.entries(),
      now: clock.now(),
      history: this.history,
      signed: signatures !== undefined,
      accepted: this.accepted,
      rejected: this.rejected,
      outputs: Object.assign({}, ...this.outputs.map((output) => output.counters())),
    };
  }

  /** GET /healthz: unhealthy while an output has a problem; the first one says why. */
  health(): { healthy: boolean; reason: string } {
    for (const output of this.outputs) {
      const problem = output.problem();
      if (problem) return { healthy: false, reason: problem };
    }
    return { healthy: true, reason: `ok: ${this.table.size} servers` };
  }

  /** GET /servers */
  servers(): { ip: string; ready: number; busy: number; port: number; lastSeenSeconds: number }[] {
    const now = this.#options.clock.now();
    return this.table.entries().map((entry: ServerEntry) => ({
      ip: entry.ip,
      ready: entry.ready,
      busy: entry.busy,
      port: entry.port,
      lastSeenSeconds: Math.floor((now - entry.lastSeen) / 1000),
    }));
  }
}

/** `bytes` without trailing spaces, tabs, CRs and LFs. */
function trimEnd(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (
    end > 0 &&
    (bytes[end - 1] === 0x20 || bytes[end - 1] === 0x09 || bytes[end - 1] === 0x0d ||
      bytes[end - 1] === 0x0a)
  ) end--;
  // Nearly always nothing to trim: no new view for each of thousands of datagrams a second.
  return end === bytes.length ? bytes : bytes.subarray(0, end);
}

export interface RunMonitorOptions extends MonitorOptions {
  udp?: UdpListenOptions;
  openUdpListener: OpenUdpListener;
  http?: { host: string; port: number };
  /** Where the HTTP side takes POSTed heartbeats (default: DEFAULT_HTTP_PATHS). */
  httpPaths?: string[];
  /** A POST's body must be whole within this of its headers (tests shorten it). */
  httpRequestMs?: number;
  /** Connections open at once, and how long each may take (tests shorten it). */
  httpBounds?: ConnectionBounds;
  /** Servers an earlier run left (StorageOutput.start), taken before anything is heard. */
  restore?: { servers: StoredServer[]; from: string };
  signal: AbortSignal;
  /**
   * Told once the listeners are open, with the HTTP port actually bound (for port 0), the HTTP
   * side, and the UDP receive buffer the kernel gave, when one was asked for.
   */
  onListening?: (
    monitor: Monitor,
    opened: { port?: number; http?: MonitorHttp; receiveBuffer?: number },
  ) => void;
}

/** Runs the monitor until `signal` aborts. Rejects if a listener cannot be opened. */
export async function runMonitor(options: RunMonitorOptions): Promise<Monitor> {
  const monitor = new Monitor(options);
  const { restore } = options;
  if (restore?.servers.length) {
    const kept = monitor.restore(restore.servers);
    options.logger.info(`kept ${kept} of the ${restore.servers.length} servers in ${restore.from}`);
  }
  const listener = options.udp
    ? await options.openUdpListener(
      options.udp,
      ({ data, from }) => monitor.accept(data, from, "udp"),
    )
    : undefined;
  let http: OpenMonitorHttp | undefined;
  try {
    if (options.http) {
      http = await openMonitorHttp(monitor, {
        ...options.http,
        paths: options.httpPaths,
        requestMs: options.httpRequestMs,
        bounds: options.httpBounds,
        logger: options.logger,
        clock: options.clock,
      });
    }
    options.onListening?.(monitor, {
      port: http?.port,
      http: http?.side,
      receiveBuffer: listener?.receiveBuffer,
    });
    await runEvery(() => Promise.resolve(monitor.tick()), {
      intervalMs: TICK_MS,
      clock: options.clock,
      signal: options.signal,
    });
  } finally {
    await listener?.close();
    await http?.close();
    await Promise.all(monitor.outputs.map((output) => output.close()));
  }
  return monitor;
}
