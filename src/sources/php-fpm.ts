/**
 * `php-fpm[:URI]`: a PHP-FPM pool's status page (`pm.status_path`), asked over FastCGI straight
 * from the pool's socket, as a web server would ask it, or over HTTP through a web server.
 */
import type { Load } from "../codec.ts";
import { describeAddress, type FastCgiAddress, fastCgiRequest } from "./fastcgi.ts";
import { SourceConfigError, type SourceDefinition } from "./source.ts";
import { httpGet, HttpStatusError, statusUrl } from "./status-page.ts";

export const PHP_FPM_DEFAULT_URI = "tcp://127.0.0.1:9000/status";
const DEFAULT_PORT = 9000;
const DEFAULT_STATUS_PATH = "/status";

/** The pool's figures and every process's state: `full`, so our own request can be told apart. */
const QUERY = "json&full";

/**
 * A pool's page is about 330 bytes a process: this is room for some 3000, more than any pool
 * runs.
 */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** What the status page says about the pool. */
export interface PoolStatus {
  pool: string;
  /** Connections waiting for a free process. */
  listenQueue: number;
  idle: number;
  active: number;
  /**
   * Processes running a request php-fpm answers itself (its status and ping pages) rather than a
   * PHP script: our own request among them.
   */
  ownPages: number;
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/** The figures of a `?json&full` status page; throws when the text is not one. */
export function parsePoolStatus(text: string): PoolStatus {
  let page: Record<string, unknown>;
  try {
    page = JSON.parse(text);
  } catch {
    throw new Error("not a php-fpm ?json&full status page: not JSON");
  }
  if (typeof page !== "object" || page === null || typeof page.pool !== "string") {
    throw new Error("not a php-fpm ?json&full status page: no pool name");
  }
  const counts = ["listen queue", "idle processes", "active processes"].map((key) => {
    if (!isCount(page[key])) throw new Error(`php-fpm's status page has no count '${key}'`);
    return page[key];
  });
  const processes = page.processes;
  if (
    !Array.isArray(processes) ||
    !processes.every((process) =>
      typeof process?.state === "string" && typeof process?.script === "string"
    )
  ) {
    throw new Error("php-fpm's status page lists no processes: is this the ?json&full page?");
  }
  // A request php-fpm answers itself runs no script: php-fpm shows "-" for it.
  const ownPages =
    processes.filter((process) => process.state === "Running" && process.script === "-").length;
  return { pool: page.pool, listenQueue: counts[0], idle: counts[1], active: counts[2], ownPages };
}

/**
 * ready = idle processes, busy = active ones, with the processes answering status pages (our own
 * request among them) counted as idle: they are free again at once. A connection waiting in the
 * listen queue means there is no free process: ready = 0, and every process is busy.
 */
export function poolLoad(status: PoolStatus): Load {
  const own = Math.min(status.ownPages, status.active);
  const idle = status.idle + own;
  const active = status.active - own;
  return status.listenQueue > 0 ? { ready: 0, busy: idle + active } : { ready: idle, busy: active };
}

/** Where the status page is: a FastCGI socket and the status path, or an HTTP URL. */
export type StatusLocation = { address: FastCgiAddress; path: string } | { url: URL };

const USAGE =
  "tcp://HOST:PORT/PATH (default tcp://127.0.0.1:9000/status), unix:///SOCKET;/PATH or http://HOST/PATH";

/** The location `php-fpm:URI` names; throws a SourceConfigError saying how to write it. */
export function parseStatusLocation(argument: string | undefined): StatusLocation {
  const text = argument ?? PHP_FPM_DEFAULT_URI;
  const wrong = (why: string) =>
    new SourceConfigError(`--source php-fpm:URI: '${text}' ${why}; write ${USAGE}`);
  if (/^https?:/i.test(text)) {
    const url = statusUrl("php-fpm", text, "http://127.0.0.1/status");
    url.search = QUERY;
    return { url };
  }
  if (text.startsWith("unix://")) {
    const [socket, path = DEFAULT_STATUS_PATH] = text.slice("unix://".length).split(";");
    if (!socket.startsWith("/")) throw wrong("does not name a socket by its absolute path");
    if (!path.startsWith("/")) throw wrong("has a status path that does not start with /");
    return { address: { path: socket }, path };
  }
  if (!text.startsWith("tcp://")) throw wrong("is not a tcp, unix or http URI");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw wrong("is not a URI");
  }
  if (!url.hostname || url.search || url.hash || url.username) {
    throw wrong("is not tcp://HOST:PORT/PATH");
  }
  return {
    address: {
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port ? Number(url.port) : DEFAULT_PORT,
    },
    path: url.pathname === "" || url.pathname === "/" ? DEFAULT_STATUS_PATH : url.pathname,
  };
}

export function describeLocation(location: StatusLocation): string {
  if ("url" in location) return location.url.href;
  return "path" in location.address
    ? `${describeAddress(location.address)};${location.path}`
    : `${describeAddress(location.address)}${location.path}`;
}

/** What to do when the pool answers its status path with "File not found.". */
const enableStatus = (path: string) => `set pm.status_path = ${path} in the pool's configuration`;

/**
 * The body of a CGI response (headers, a blank line, the body); throws when its `Status:` header
 * is not 200.
 */
export function cgiBody(response: string, path: string): string {
  const match = /\r?\n\r?\n/.exec(response);
  if (!match) throw new Error("answered without CGI headers: is this a php-fpm pool?");
  const headers = response.slice(0, match.index);
  const status = /^Status:\s*(\d{3})[^\S\r\n]*(.*)$/im.exec(headers);
  if (status && status[1] !== "200") {
    const answered = `answered ${status[1]} ${status[2]}`.trim();
    throw new Error(status[1] === "404" ? `${answered}: ${enableStatus(path)}` : answered);
  }
  return response.slice(match.index + match[0].length);
}

async function readOverFastCgi(
  address: FastCgiAddress,
  path: string,
  signal: AbortSignal,
): Promise<string> {
  const answer = await fastCgiRequest(address, {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_SOFTWARE: "heartbeat",
    REQUEST_METHOD: "GET",
    SCRIPT_NAME: path,
    SCRIPT_FILENAME: path,
    REQUEST_URI: `${path}?${QUERY}`,
    QUERY_STRING: QUERY,
  }, { signal, maxBytes: MAX_ANSWER_BYTES });
  try {
    return cgiBody(new TextDecoder().decode(answer.stdout), path);
  } catch (error) {
    throw new Error(`${describeAddress(address)} ${(error as Error).message}`);
  }
}

async function readOverHttp(url: URL, signal: AbortSignal): Promise<string> {
  try {
    return await httpGet(url, signal, MAX_ANSWER_BYTES);
  } catch (error) {
    if (error instanceof HttpStatusError && error.status === 404) {
      throw new Error(
        `${error.message}: if the URL reaches php-fpm, ${
          enableStatus("/PATH")
        } (the path php-fpm receives)`,
      );
    }
    throw error;
  }
}

export const phpFpmSource: SourceDefinition = {
  summary: `a PHP-FPM pool's status page, over FastCGI or HTTP (default ${PHP_FPM_DEFAULT_URI})`,
  create(argument) {
    const location = parseStatusLocation(argument);
    const read = "url" in location
      ? (signal: AbortSignal) => readOverHttp(location.url, signal)
      : (signal: AbortSignal) => readOverFastCgi(location.address, location.path, signal);
    return {
      description: `php-fpm ${describeLocation(location)}`,
      read: async (signal) => poolLoad(parsePoolStatus(await read(signal))),
    };
  },
};
