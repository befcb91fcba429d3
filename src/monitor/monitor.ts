/**
 * The monitor: mod_heartmonitor outside Apache. It collects heartbeats sent by UDP (multicast
 * or unicast) or POSTed over HTTP, keeps one entry per sender, and writes the storage file that
 * mod_lbmethod_heartbeat reads.
 */
import { listen, reply } from "../listen.ts";
import {
  type ConnectionBounds,
  ConnectionLimits,
  type ConnectionRefusal,
  hostOf,
  HTTP_BOUNDS,
  limitConnections,
} from "../connection-limits.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import {
  type Heartbeat,
  latin1,
  MAX_MESSAGE_BYTES,
  parseHeartbeat,
  readCommonHeartbeat,
  type RejectReason,
} from "../codec.ts";
import { describeError } from "../errors.ts";
import { family } from "../prometheus.ts";
import { type Logger, ProblemLog } from "../log.ts";
import { type Clock, runEvery } from "../scheduler.ts";
import type { OpenUdpListener, UdpListenOptions } from "../transport/transport.ts";
import type { HAProxyPush } from "../haproxy/runtime-api.ts";
import type { MonitorOutput } from "./outputs/output.ts";
import type { SignatureCheck, SignatureProblem } from "../signing.ts";
import { type Cidr, inCidr } from "./cidr.ts";
import {
  formatStorage,
  parseStorage,
  removeStaleTemporaries,
  type StoredServer,
  writeFileAtomic,
} from "./storage.ts";
import { DEFAULT_PORT, SEEN_TIMEOUT_MS, type ServerEntry, ServerTable } from "./table.ts";

export type Rejection = RejectReason | SignatureProblem | "not-allowed" | "full" | "no-address";
export type Via = "udp" | "http";

export interface MonitorOptions {
  maxServers: number;
  /** Senders accepted; empty: everyone. */
  allow: Cidr[];
  /** Where to write the storage file; none: keep the table in memory only. */
  storage?: string;
  /** With a key: heartbeats must be signed, genuine and fresh. */
  signatures?: SignatureCheck;
  /** Seconds since 1970, for signatures' timestamps. */
  unixNow?: () => number;
  /** A POST's body must be whole within this of its headers (tests shorten it). */
  httpRequestMs?: number;
  /** Connections open at once, and how long each may take (tests shorten it). */
  httpBounds?: ConnectionBounds;
  /** Sets HAProxy's weights from the table, each tick. */
  haproxy?: HAProxyPush;
  /** Kept up to date from the table each tick, after silent servers are dropped (#26: nginx). */
  outputs?: MonitorOutput[];
  /** Where the HTTP side takes POSTed heartbeats (default: DEFAULT_HTTP_PATHS). */
  httpPaths?: string[];
  /** Told one line per heartbeat accepted, for --print. */
  print?: (line: string) => void;
  logger: Logger;
  clock: Clock;
}

/** How often the storage file is rewritten, at least: the balancer reads it on every request. */
export const STORAGE_INTERVAL_MS = 1000;

export class Monitor {
  readonly table: ServerTable;
  readonly accepted: Record<Via, number> = { udp: 0, http: 0 };
  readonly rejected = new Map<Rejection, number>();
  /** Heartbeats taken without their `port=`, which was no port (codec: ignoredPort). */
  portsIgnored = 0;
  readonly httpRefused = new Map<HttpRefusal, number>();
  readonly #options: MonitorOptions;
  readonly #problems: ProblemLog;

  constructor(options: MonitorOptions) {
    this.#options = options;
    this.table = new ServerTable(options.maxServers);
    this.#problems = new ProblemLog(options.logger, { now: () => options.clock.now() });
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
    const from = sender.includes(":")
      ? sender.replace(/%.*$/, "").replace(/^::ffff:(?=\d+\.)/, "")
      : sender;
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
    const { allow, signatures, clock } = this.#options;
    // A POST whose connection is gone by the time it is read has no peer address left: a
    // server without an address would be a line mod_lbmethod_heartbeat cannot match. (A
    // datagram always has one: not checked on the hot path.)
    if (via === "http" && !isIP(from)) {
      return { reason: "no-address", detail: "the sender's address is unknown" };
    }
    if (allow.length > 0 && !allow.some((range) => inCidr(from, range))) {
      return { reason: "not-allowed", detail: "not in --allow" };
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
    const recorded = this.table.record(from, heartbeat, clock.now());
    if (recorded === "full") {
      return { reason: "full", detail: `already ${this.table.size} servers (--max-servers)` };
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
    // The file is rewritten once a second (tick), never per heartbeat: a storm of new senders
    // must not take the time that keeps known servers fresh.
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

  /** Drops silent servers and rewrites the storage file. */
  tick(): void {
    if (this.#newServers.unlogged) {
      this.#options.logger.info(`and ${this.#newServers.unlogged} more new servers`);
    }
    this.#newServers = { logged: 0, unlogged: 0 };
    this.#options.signatures?.forget(this.#unixNow());
    // Not awaited: an HAProxy that does not answer must not hold up the storage file.
    void this.#options.haproxy?.sync(this.table.entries(), this.#options.clock.now());
    const gone = this.table.expire(this.#options.clock.now());
    for (const { ip } of gone.slice(0, SERVER_LINES)) {
      this.#options.logger.info(`server ${ip} silent for 30 s: removed`);
    }
    if (gone.length > SERVER_LINES) {
      this.#options.logger.info(`and ${gone.length - SERVER_LINES} more servers silent: removed`);
    }
    // MonitorOutput hook (#26): each output takes the table as it is now.
    for (const output of this.#options.outputs ?? []) {
      output.update(this.table.entries(), this.#options.clock.now());
    }
    this.writeStorage();
  }

  writeStorage(): void {
    const { storage, clock } = this.#options;
    if (!storage) return;
    try {
      writeFileAtomic(storage, formatStorage(this.table.entries(), clock.now()));
      this.#storageProblem = undefined;
      this.#problems.ok("storage", `writing ${storage} works again`);
    } catch (error) {
      this.#storageProblem = `cannot write ${storage}: ${describeError(error)}`;
      this.#problems.fail("storage", `cannot write ${storage}: ${describeError(error)}`);
    }
  }

  /** Counts and logs (rate-limited) an HTTP request or connection refused for `reason`. */
  refusedHttp(reason: HttpRefusal, what: string): void {
    this.httpRefused.set(reason, (this.httpRefused.get(reason) ?? 0) + 1);
    this.#problems.fail(`http ${reason}`, `refused ${what}: ${reason}`);
  }

  /** Whether a new HTTP connection from `ip` may stay open: --allow, checked before anything is read. */
  allowsConnection(ip: string | undefined): boolean {
    const { allow } = this.#options;
    const sender = hostOf(ip);
    if (!ip || (allow.length > 0 && !allow.some((range) => inCidr(sender, range)))) {
      this.refusedHttp("not-allowed", `a connection from ${sender}`);
      return false;
    }
    return true;
  }

  #storageProblem: string | undefined;

  /**
   * GET /healthz: unhealthy while the storage file cannot be written, while an HAProxy says it
   * has no backend of that name (a mistyped --haproxy-backend), or while an output says why.
   */
  health(): { healthy: boolean; reason: string } {
    const missing = this.#options.haproxy?.missingBackends ?? [];
    const problem = this.#storageProblem ??
      (missing.length ? `no such --haproxy-backend: ${missing.join(", ")}` : undefined) ??
      // MonitorOutput hook (#26)
      this.#options.outputs?.map((output) => output.problem()).find(Boolean);
    return problem
      ? { healthy: false, reason: problem }
      : { healthy: true, reason: `ok: ${this.table.size} servers` };
  }

  /** GET /servers */
  servers(): object[] {
    const now = this.#options.clock.now();
    return this.table.entries().map((entry: ServerEntry) => ({
      ip: entry.ip,
      ready: entry.ready,
      busy: entry.busy,
      port: entry.port,
      lastSeenSeconds: Math.floor((now - entry.lastSeen) / 1000),
    }));
  }

  /** GET /metrics, in Prometheus' text format. */
  metrics(): string {
    const now = this.#options.clock.now();
    const entries = this.table.entries();
    const label = (entry: ServerEntry) => `{ip="${entry.ip}",port="${entry.port}"}`;
    return [
      family("heartbeat_servers", "Servers heard from in the last 30 seconds.", "gauge", [
        `heartbeat_servers ${entries.length}`,
      ]),
      family(
        "heartbeat_server_ready",
        "Idle worker slots the server last reported.",
        "gauge",
        entries.map((entry) => `heartbeat_server_ready${label(entry)} ${entry.ready}`),
      ),
      family(
        "heartbeat_server_busy",
        "Busy worker slots the server last reported.",
        "gauge",
        entries.map((entry) => `heartbeat_server_busy${label(entry)} ${entry.busy}`),
      ),
      family(
        "heartbeat_server_last_seen_seconds",
        "Seconds since the server's last heartbeat.",
        "gauge",
        entries.map((entry) =>
          `heartbeat_server_last_seen_seconds${label(entry)} ${
            ((now - entry.lastSeen) / 1000).toFixed(3)
          }`
        ),
      ),
      family(
        "heartbeat_messages_accepted_total",
        "Heartbeats accepted, by transport.",
        "counter",
        (Object.keys(this.accepted) as Via[]).map((via) =>
          `heartbeat_messages_accepted_total{via="${via}"} ${this.accepted[via]}`
        ),
      ),
      family(
        "heartbeat_messages_rejected_total",
        "Messages rejected, by reason.",
        "counter",
        ([
          "oversize",
          "missing-field",
          "bad-number",
          "unsigned",
          "forged",
          "replayed",
          "future",
          "wrong-sender",
          "not-allowed",
          "full",
          "no-address",
        ] as Rejection[])
          .map((reason) =>
            `heartbeat_messages_rejected_total{reason="${reason}"} ${
              this.rejected.get(reason) ?? 0
            }`
          ),
      ),
      family(
        "heartbeat_ports_ignored_total",
        "Heartbeats taken without their port=, which was no port from 1 to 65535.",
        "counter",
        [`heartbeat_ports_ignored_total ${this.portsIgnored}`],
      ),
      ...(this.#options.haproxy
        ? [
          family("heartbeat_haproxy_weight_changes_total", "Weights set in HAProxy.", "counter", [
            `heartbeat_haproxy_weight_changes_total ${this.#options.haproxy.changes}`,
          ]),
          family(
            "heartbeat_haproxy_errors_total",
            "Failed exchanges with HAProxy's runtime API.",
            "counter",
            [
              `heartbeat_haproxy_errors_total ${this.#options.haproxy.errors}`,
            ],
          ),
        ]
        : []),
      // MonitorOutput hook (#26)
      ...(this.#options.outputs ?? []).flatMap((output) => output.metrics()),
      family(
        "heartbeat_http_requests_refused_total",
        "HTTP requests refused that were not heartbeats, by reason.",
        "counter",
        ([
          "not-found",
          "method-not-allowed",
          "timeout",
          "not-allowed",
          "too-many-connections",
          "too-many-from-address",
        ] as HttpRefusal[]).map((reason) =>
          `heartbeat_http_requests_refused_total{reason="${reason}"} ${
            this.httpRefused.get(reason) ?? 0
          }`
        ),
      ),
    ].join("\n") + "\n";
  }

  /**
   * The HTTP side: a POST to one of the heartbeat paths (`/heartbeat` and Tomcat's
   * `/HeartbeatListener` unless told otherwise) takes a heartbeat as mod_heartmonitor's
   * `SetHandler heartbeat` does, keyed by the TCP peer, and answers `OK`; GET /servers and GET
   * /metrics. Anything else is refused with the status that says why, counted and logged.
   */
  handleHttp(request: IncomingMessage, response: ServerResponse): void {
    const answer = (status: number, body: string, headers?: Record<string, string>) =>
      reply(response, status, body, headers);
    const path = (request.url ?? "/").split("?")[0];
    const paths = this.#options.httpPaths ?? DEFAULT_HTTP_PATHS;
    const from = request.socket.remoteAddress ?? "?";
    const refuse = (
      status: number,
      reason: HttpRefusal,
      body: string,
      headers?: Record<string, string>,
    ) => {
      this.refusedHttp(reason, `${request.method} ${JSON.stringify(path)} from ${from}`);
      answer(status, body, headers);
    };
    if (paths.includes(path)) {
      if (request.method !== "POST") {
        return refuse(405, "method-not-allowed", "Method Not Allowed: POST a heartbeat here\n", {
          Allow: "POST",
        });
      }
      // A heartbeat is under 1000 bytes, and comes at once: anything larger is refused at its
      // first bytes, anything slower when HTTP_REQUEST_TIMEOUT_MS is up, and the connection
      // closed, so that neither holds memory or a file descriptor.
      const hangUp = () => response.once("finish", () => request.socket.destroy());
      const oversize = (size: number) => {
        clearTimeout(timer);
        this.accept("", from, "http", size);
        hangUp();
        answer(413, `oversize: more than ${MAX_MESSAGE_BYTES} bytes\n`, { Connection: "close" });
      };
      const timer = setTimeout(() => {
        hangUp();
        refuse(408, "timeout", "Request Timeout: send the heartbeat at once\n", {
          Connection: "close",
        });
      }, this.#options.httpRequestMs ?? HTTP_REQUEST_TIMEOUT_MS);
      const declared = Number(request.headers["content-length"]);
      if (declared > MAX_MESSAGE_BYTES) return oversize(declared);
      const chunks: Buffer[] = [];
      let size = 0;
      request.on("data", (chunk: Buffer) => {
        if (size > MAX_MESSAGE_BYTES) return;
        size += chunk.length;
        if (size > MAX_MESSAGE_BYTES) oversize(size);
        else chunks.push(chunk);
      });
      request.on("end", () => {
        clearTimeout(timer);
        if (size > MAX_MESSAGE_BYTES || response.headersSent) return;
        // Tomcat ends its body with CRLF; Apache's handler takes it, and so do we.
        const rejection = this.accept(trimEnd(Buffer.concat(chunks)), from, "http");
        if (rejection) {
          answer(
            rejection.reason === "not-allowed" ? 403 : 400,
            `${rejection.reason}: ${rejection.detail}\n`,
          );
        } else answer(200, "OK");
      });
      request.on("close", () => clearTimeout(timer));
      return;
    }
    if (path === "/healthz") {
      const { healthy, reason } = this.health();
      return answer(healthy ? 200 : 503, `${reason}\n`);
    }
    if (path === "/servers" || path === "/metrics") {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return refuse(405, "method-not-allowed", "Method Not Allowed: GET it\n", {
          Allow: "GET, HEAD",
        });
      }
      return path === "/servers"
        ? answer(200, `${JSON.stringify(this.servers(), null, 2)}\n`, {
          "Content-Type": "application/json",
        })
        : answer(200, this.metrics(), { "Content-Type": "text/plain; version=0.0.4" });
    }
    refuse(
      404,
      "not-found",
      `Not Found: POST heartbeats to ${paths.join(" or ")}; GET /healthz, /servers, /metrics\n`,
    );
  }
}

/** The servers in the storage file at `path`; none when there is no such file yet. */
function readStorageFile(path: string): StoredServer[] {
  try {
    return parseStorage(readFileSync(path, "latin1"));
  } catch {
    return [];
  }
}

/** How many new servers, and how many removed ones, get a log line each a second. */
const SERVER_LINES = 10;

/** Why the HTTP side refused a request or a connection, other than for what a heartbeat said. */
export type HttpRefusal =
  | "not-found"
  | "method-not-allowed"
  | "timeout"
  | "not-allowed"
  | ConnectionRefusal;

/** A POST's body must be whole within this of its headers. */
export const HTTP_REQUEST_TIMEOUT_MS = 5_000;

/** Where heartbeats are POSTed when no --http-path is given. */
export const DEFAULT_HTTP_PATHS = ["/heartbeat", "/HeartbeatListener"];

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
  signal: AbortSignal;
  /**
   * Told once the listeners are open, with the HTTP port actually bound (for port 0) and the UDP
   * receive buffer the kernel gave, when one was asked for.
   */
  onListening?: (monitor: Monitor, opened: { port?: number; receiveBuffer?: number }) => void;
}

/** Runs the monitor until `signal` aborts. Rejects if a listener cannot be opened. */
export async function runMonitor(options: RunMonitorOptions): Promise<Monitor> {
  const monitor = new Monitor(options);
  if (options.storage) {
    for (const removed of removeStaleTemporaries(options.storage)) {
      options.logger.info(`removed ${removed}, left by a monitor that was killed while writing`);
    }
    const previous = readStorageFile(options.storage);
    if (previous.length) {
      options.logger.info(
        `kept ${monitor.restore(previous)} of the ${previous.length} servers in ${options.storage}`,
      );
    }
  }
  const listener = options.udp
    ? await options.openUdpListener(
      options.udp,
      ({ data, from }) => monitor.accept(data, from, "udp"),
    )
    : undefined;
  let server: import("node:http").Server | undefined;
  let httpPort: number | undefined;
  try {
    if (options.http) {
      const { createServer } = await import("node:http");
      server = createServer((request, response) => monitor.handleHttp(request, response));
      const limits = new ConnectionLimits(
        options.httpBounds ?? HTTP_BOUNDS,
        (reason, address, detail) =>
          monitor.refusedHttp(reason, `a connection from ${address} (${detail})`),
      );
      limitConnections(server, limits, (address) => monitor.allowsConnection(address));
      httpPort = await listen(server, options.http);
    }
    options.onListening?.(monitor, { port: httpPort, receiveBuffer: listener?.receiveBuffer });
    await runEvery(() => Promise.resolve(monitor.tick()), {
      intervalMs: STORAGE_INTERVAL_MS,
      clock: options.clock,
      signal: options.signal,
    });
  } finally {
    // MonitorOutput hook (#26)
    await Promise.all((options.outputs ?? []).map((output) => output.close()));
    await listener?.close();
    server?.closeAllConnections?.(); // keep-alive clients would hold close() open
    await new Promise<void>((resolve) => server ? server.close(() => resolve()) : resolve());
  }
  return monitor;
}
