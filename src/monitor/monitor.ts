/**
 * The monitor: mod_heartmonitor outside Apache. It collects heartbeats sent by UDP (multicast
 * or unicast) or POSTed over HTTP, keeps one entry per sender, and writes the storage file that
 * mod_lbmethod_heartbeat reads.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { latin1, MAX_MESSAGE_BYTES, parseHeartbeat, type RejectReason } from "../codec.ts";
import { describeError } from "../errors.ts";
import { type Logger, ProblemLog } from "../log.ts";
import { type Clock, runEvery } from "../scheduler.ts";
import type { OpenUdpListener, UdpListenOptions } from "../transport/transport.ts";
import type { SignatureCheck, SignatureProblem } from "../signing.ts";
import { type Cidr, inCidr } from "./cidr.ts";
import { formatStorage, writeFileAtomic } from "./storage.ts";
import { DEFAULT_PORT, type ServerEntry, ServerTable } from "./table.ts";

export type Rejection = RejectReason | SignatureProblem | "not-allowed" | "full";
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
  ): { reason: Rejection; detail: string } | undefined {
    // A link-local sender comes with its zone (`fe80::1%eth0`) from some runtimes and not others: one host, one entry.
    const from = sender.includes(":")
      ? sender.replace(/%.*$/, "").replace(/^::ffff:(?=\d+\.)/, "")
      : sender;
    const rejection = this.#take(message, from, via);
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
  ): { reason: Rejection; detail: string } | undefined {
    const { allow, signatures, clock } = this.#options;
    if (allow.length > 0 && !allow.some((range) => inCidr(from, range))) {
      return { reason: "not-allowed", detail: "not in --allow" };
    }
    const parsed = parseHeartbeat(message);
    if (!parsed.ok) return parsed;
    const unsound = signatures?.check(
      typeof message === "string" ? message : latin1(message),
      from,
      this.#unixNow(),
    );
    if (unsound) return unsound;
    const recorded = this.table.record(from, parsed.heartbeat, clock.now());
    if (recorded === "full") {
      return { reason: "full", detail: `already ${this.table.size} servers (--max-servers)` };
    }
    this.accepted[via]++;
    const { ready, busy, port } = parsed.heartbeat;
    this.#options.print?.(
      `${new Date().toISOString()} ${from} ready=${ready} busy=${busy} port=${
        port ?? DEFAULT_PORT
      } (${via})`,
    );
    if (recorded === "added") {
      this.#options.logger.info(`new server ${from} (${via})`);
      this.writeStorage();
    }
    return undefined;
  }

  #unixNow(): number {
    return Math.floor(this.#options.unixNow?.() ?? Date.now() / 1000);
  }

  /** Drops silent servers and rewrites the storage file. */
  tick(): void {
    this.#options.signatures?.forget(this.#unixNow());
    for (const gone of this.table.expire(this.#options.clock.now())) {
      this.#options.logger.info(`server ${gone.ip} silent for 30 s: removed`);
    }
    this.writeStorage();
  }

  writeStorage(): void {
    const { storage, clock } = this.#options;
    if (!storage) return;
    try {
      writeFileAtomic(storage, formatStorage(this.table.entries(), clock.now()));
      this.#problems.ok("storage", `writing ${storage} works again`);
    } catch (error) {
      this.#problems.fail("storage", `cannot write ${storage}: ${describeError(error)}`);
    }
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
    const family = (name: string, help: string, type: string, samples: string[]) =>
      [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples].join("\n");
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
          "not-allowed",
          "full",
        ] as Rejection[])
          .map((reason) =>
            `heartbeat_messages_rejected_total{reason="${reason}"} ${
              this.rejected.get(reason) ?? 0
            }`
          ),
      ),
    ].join("\n") + "\n";
  }

  /**
   * The HTTP side: POST /heartbeat takes a heartbeat as mod_heartmonitor's `SetHandler
   * heartbeat` does, keyed by the TCP peer, and answers `OK`; GET /servers and GET /metrics.
   */
  handleHttp(request: IncomingMessage, response: ServerResponse): void {
    const reply = (status: number, body: string, type = "text/plain") => {
      response.writeHead(status, {
        "Content-Type": type,
        "Content-Length": Buffer.byteLength(body),
      });
      response.end(body);
    };
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/heartbeat") {
      if (request.method !== "POST") {
        return reply(405, "Method Not Allowed: POST a heartbeat here\n");
      }
      const chunks: Buffer[] = [];
      let size = 0;
      request.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_MESSAGE_BYTES + 1) chunks.push(chunk);
      });
      request.on("end", () => {
        const from = request.socket.remoteAddress ?? "";
        const body = Buffer.concat(chunks);
        const rejection = this.accept(
          size > MAX_MESSAGE_BYTES ? new Uint8Array(size) : body,
          from,
          "http",
        );
        if (rejection) {
          reply(
            rejection.reason === "oversize" ? 413 : rejection.reason === "not-allowed" ? 403 : 400,
            `${rejection.reason}: ${rejection.detail}\n`,
          );
        } else reply(200, "OK");
      });
      return;
    }
    if (request.method !== "GET") return reply(405, "Method Not Allowed\n");
    if (path === "/servers") {
      return reply(200, `${JSON.stringify(this.servers(), null, 2)}\n`, "application/json");
    }
    if (path === "/metrics") return reply(200, this.metrics(), "text/plain; version=0.0.4");
    reply(404, "Not Found: POST /heartbeat, GET /servers, GET /metrics\n");
  }
}

export interface RunMonitorOptions extends MonitorOptions {
  udp?: UdpListenOptions;
  openUdpListener: OpenUdpListener;
  http?: { host: string; port: number };
  signal: AbortSignal;
  /** Told once the listeners are open, with the HTTP port actually bound (for port 0). */
  onListening?: (monitor: Monitor, http: { port?: number }) => void;
}

/** Runs the monitor until `signal` aborts. Rejects if a listener cannot be opened. */
export async function runMonitor(options: RunMonitorOptions): Promise<Monitor> {
  const monitor = new Monitor(options);
  const listener = options.udp
    ? await options.openUdpListener(
      options.udp,
      ({ data, from }) => monitor.accept(data, from, "udp"),
    )
    : undefined;
  let server: import("node:http").Server | undefined;
  try {
    if (options.http) {
      const { createServer } = await import("node:http");
      server = createServer((request, response) => monitor.handleHttp(request, response));
      await new Promise<void>((resolve, reject) => {
        server!.once("error", reject);
        server!.listen(options.http!.port, options.http!.host, () => resolve());
      });
    }
    const bound = server?.address();
    options.onListening?.(monitor, {
      port: typeof bound === "object" && bound ? bound.port : undefined,
    });
    await runEvery(() => Promise.resolve(monitor.tick()), {
      intervalMs: STORAGE_INTERVAL_MS,
      clock: options.clock,
      signal: options.signal,
    });
  } finally {
    await listener?.close();
    server?.closeAllConnections?.(); // keep-alive clients would hold close() open
    await new Promise<void>((resolve) => server ? server.close(() => resolve()) : resolve());
  }
  return monitor;
}
