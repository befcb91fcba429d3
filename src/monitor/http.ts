/**
 * The monitor's HTTP side: a POST to one of the heartbeat paths (`/heartbeat` and Tomcat's
 * `/HeartbeatListener` unless told otherwise) takes a heartbeat as mod_heartmonitor's `SetHandler
 * heartbeat` does, keyed by the TCP peer, and answers `OK`; GET / (the status page, src/monitor/page.ts),
 * /healthz, /servers and /metrics.
 * Anything else is refused with the status that says why, counted and logged.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { MAX_MESSAGE_BYTES } from "../codec.ts";
import {
  type ConnectionBounds,
  ConnectionLimits,
  hostOf,
  HTTP_BOUNDS,
  limitConnections,
} from "../connection-limits.ts";
import { listen, reply } from "../listen.ts";
import { type Logger, ProblemLog } from "../log.ts";
import type { Clock } from "../scheduler.ts";
import { DEFAULT_HTTP_PATHS } from "./defaults.ts";
import { monitorMetrics } from "./metrics.ts";
import { monitorPage } from "./page.ts";
import { PAGE_PATHS } from "../page.ts";
import type { Monitor } from "./monitor.ts";
import type { HttpRefusal } from "./rejections.ts";

/** A POST's body must be whole within this of its headers. */
export const HTTP_REQUEST_TIMEOUT_MS = 5_000;

export interface MonitorHttpOptions {
  /** Where heartbeats are POSTed (default: DEFAULT_HTTP_PATHS). */
  paths?: string[];
  /** A POST's body must be whole within this of its headers (default: HTTP_REQUEST_TIMEOUT_MS). */
  requestMs?: number;
  logger: Logger;
  clock: Clock;
}

export class MonitorHttp {
  /** Requests and connections refused, by reason. */
  readonly refused = new Map<HttpRefusal, number>();
  readonly #monitor: Monitor;
  readonly #paths: string[];
  readonly #requestMs: number;
  readonly #problems: ProblemLog;

  constructor(monitor: Monitor, options: MonitorHttpOptions) {
    this.#monitor = monitor;
    this.#paths = options.paths ?? DEFAULT_HTTP_PATHS;
    this.#requestMs = options.requestMs ?? HTTP_REQUEST_TIMEOUT_MS;
    this.#problems = new ProblemLog(options.logger, { now: () => options.clock.now() });
  }

  /** Counts and logs (rate-limited) an HTTP request or connection refused for `reason`. */
  refuse(reason: HttpRefusal, what: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    this.#problems.fail(`http ${reason}`, `refused ${what}: ${reason}`);
  }

  /** Whether a new connection from `ip` may stay open: --allow, checked before anything is read. */
  allowsConnection(ip: string | undefined): boolean {
    const sender = hostOf(ip);
    if (!ip || !this.#monitor.allows(sender)) {
      this.refuse("not-allowed", `a connection from ${sender}`);
      return false;
    }
    return true;
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    const monitor = this.#monitor;
    const answer = (status: number, body: string, headers?: Record<string, string>) =>
      reply(response, status, body, headers);
    const path = (request.url ?? "/").split("?")[0];
    const paths = this.#paths;
    const from = request.socket.remoteAddress ?? "?";
    const refuse = (
      status: number,
      reason: HttpRefusal,
      body: string,
      headers?: Record<string, string>,
    ) => {
      this.refuse(reason, `${request.method} ${JSON.stringify(path)} from ${from}`);
      answer(status, body, headers);
    };
    if (paths.includes(path)) {
      if (request.method !== "POST") {
        return refuse(405, "method-not-allowed", "Method Not Allowed: POST a heartbeat here\n", {
          Allow: "POST",
        });
      }
      // A heartbeat is under 1000 bytes, and comes at once: anything larger is refused at its
      // first bytes, anything slower when the request's time is up, and the connection closed,
      // so that neither holds memory or a file descriptor.
      const hangUp = () => response.once("finish", () => request.socket.destroy());
      const oversize = (size: number) => {
        clearTimeout(timer);
        monitor.accept("", from, "http", size);
        hangUp();
        answer(413, `oversize: more than ${MAX_MESSAGE_BYTES} bytes\n`, { Connection: "close" });
      };
      const timer = setTimeout(() => {
        hangUp();
        refuse(408, "timeout", "Request Timeout: send the heartbeat at once\n", {
          Connection: "close",
        });
      }, this.#requestMs);
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
        // Tomcat's CRLF at the end is trimmed by accept, as for a datagram.
        const rejection = monitor.accept(Buffer.concat(chunks), from, "http");
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
      const { healthy, reason } = monitor.health();
      return answer(healthy ? 200 : 503, `${reason}\n`);
    }
    if (path === "/servers" || path === "/metrics" || PAGE_PATHS.includes(path)) {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return refuse(405, "method-not-allowed", "Method Not Allowed: GET it\n", {
          Allow: "GET, HEAD",
        });
      }
      if (PAGE_PATHS.includes(path)) {
        const { status, body, headers } = monitorPage(path, () => monitor.pageView());
        return answer(status, body, headers);
      }
      return path === "/servers"
        ? answer(200, `${JSON.stringify(monitor.servers(), null, 2)}\n`, {
          "Content-Type": "application/json",
        })
        : answer(200, monitorMetrics(monitor, this.refused), {
          "Content-Type": "text/plain; version=0.0.4",
        });
    }
    refuse(
      404,
      "not-found",
      `Not Found: POST heartbeats to ${
        paths.join(" or ")
      }; GET / (the status page), /healthz, /servers, /metrics\n`,
    );
  }
}

/** The HTTP side, listening. */
export interface OpenMonitorHttp {
  side: MonitorHttp;
  /** The port bound: the one asked for, or the system's choice for 0. */
  port: number;
  close(): Promise<void>;
}

/**
 * The HTTP side listening on `host`:`port`, its connections bounded (ConnectionLimits) and checked
 * against --allow as they open. Rejects if it cannot listen.
 */
export async function openMonitorHttp(
  monitor: Monitor,
  options: MonitorHttpOptions & { host: string; port: number; bounds?: ConnectionBounds },
): Promise<OpenMonitorHttp> {
  const { createServer } = await import("node:http");
  const side = new MonitorHttp(monitor, options);
  const server = createServer((request, response) => side.handle(request, response));
  const limits = new ConnectionLimits(
    options.bounds ?? HTTP_BOUNDS,
    (reason, address, detail) => side.refuse(reason, `a connection from ${address} (${detail})`),
  );
  limitConnections(server, limits, (address) => side.allowsConnection(address));
  const close = () => closeServer(server);
  try {
    return { side, port: await listen(server, options), close };
  } catch (error) {
    await close();
    throw error;
  }
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.(); // keep-alive clients would hold close() open
  return new Promise<void>((resolve) => server.close(() => resolve()));
}
