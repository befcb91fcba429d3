/**
 * `php-fpm[:URI]`: a PHP-FPM pool's status page (`pm.status_path`), asked over FastCGI straight
 * from the pool's socket, as a web server would ask it, or over HTTP through a web server.
 */
import type { Load } from "../codec.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
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
  /** Processes waiting for a request. */
  idle: number;
  /** Processes serving one. */
  active: number;
  /**
   * Of the active, those serving a page php-fpm answers itself (its status and ping pages)
   * rather than a PHP script: our own request among them.
   */
  ownPages: number;
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/** The stages of a request in which php-fpm knows the script it runs, or that it runs none. */
const SCRIPT_KNOWN = new Set(["Running", "Finishing", "Ending"]);

/**
 * The figures of a `?json&full` status page; throws when the text is not one. idle and active
 * are counted in the list of processes, the reading that says which of them answer status pages:
 * php-fpm copies its totals at another moment, and they disagreed with the list now and then.
 */
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
  const listenQueue = page["listen queue"];
  if (!isCount(listenQueue)) throw new Error("php-fpm's status page has no 'listen queue' count");
  const processes = page.processes;
  if (
    !Array.isArray(processes) ||
    !processes.every((process) =>
      typeof process?.state === "string" && typeof process?.script === "string"
    )
  ) {
    throw new Error("php-fpm's status page lists no processes: is this the ?json&full page?");
  }
  let [idle, active, ownPages] = [0, 0, 0];
  for (const { state, script } of processes) {
    if (state === "Idle") idle++;
    // A process php-fpm has forked shows "(null)" until it first waits for a request.
    else if (state !== "(null)") {
      active++;
      // A request php-fpm answers itself runs no script: php-fpm shows "-" for it.
      if (script === "-" && SCRIPT_KNOWN.has(state)) ownPages++;
    }
  }
  return { pool: page.pool, listenQueue, idle, active, ownPages };
}

/**
 * ready = idle processes, busy = active ones, with the processes answering status pages (our own
 * request among them) counted as idle: they are free again at once. A connection waiting in the
 * listen queue means there is no free process: ready = 0, and every process is busy.
 */
export function poolLoad(status: PoolStatus): Load {
  const idle = status.idle + status.ownPages;
  const active = status.active - status.ownPages;
  return status.listenQueue > 0 ? { ready: 0, busy: idle + active } : { ready: idle, busy: active };
}

/** Where the status page is: a FastCGI socket and the status path, or an HTTP URL. */
export type StatusLocation = { address: FastCgiAddress; path: string } | { url: URL };

const USAGE =
  "tcp://HOST:PORT/PATH (default tcp://127.0.0.1:9000/status), unix:///SOCKET;/PATH or http://HOST/PATH";

/** The location `php-fpm:URI` names; throws a SourceConfigError saying how to write it. */
export function parseStatusLocation(
  argument: string | undefined,
  names: SettingNames,
): StatusLocation {
  const text = argument ?? PHP_FPM_DEFAULT_URI;
  const wrong = (why: string) =>
    new SourceConfigError(`${names("source")} php-fpm:URI: '${text}' ${why}; write ${USAGE}`);
  if (/^https?:/i.test(text)) {
    const url = statusUrl("php-fpm", text, "http://127.0.0.1/status", names);
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
    // php-fpm's "File not found.": the path is not the pool's status page, so it looked for a script.
    throw new Error(
      status[1] === "404"
        ? `${answered}: set pm.status_path = ${path} in the pool's configuration`
        : answered,
    );
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
  return cgiBody(new TextDecoder().decode(answer.stdout), path);
}

async function readOverHttp(url: URL, signal: AbortSignal): Promise<string> {
  try {
    return await httpGet(url, signal, MAX_ANSWER_BYTES);
  } catch (error) {
    if (error instanceof HttpStatusError && error.status === 404) {
      throw new Error(
        `${error.message}: pass this URL to the pool with SCRIPT_NAME set to its pm.status_path, ` +
          "or set pm.status_path in the pool's configuration",
      );
    }
    throw error;
  }
}

export const phpFpmSource: SourceDefinition = {
  summary: `a PHP-FPM pool's status page, over FastCGI or HTTP (default ${PHP_FPM_DEFAULT_URI})`,
  create(argument, settings) {
    const location = parseStatusLocation(argument, settings.names);
    const read = "url" in location
      ? (signal: AbortSignal) => readOverHttp(location.url, signal)
      : (signal: AbortSignal) => readOverFastCgi(location.address, location.path, signal);
    return {
      description: `php-fpm ${describeLocation(location)}`,
      read: async (signal) => poolLoad(parsePoolStatus(await read(signal))),
    };
  },
};
