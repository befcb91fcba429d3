/**
 * A FastCGI client for one request at a time, as a web server speaks to PHP-FPM: BEGIN_REQUEST,
 * the CGI parameters, an empty STDIN, then the application's STDOUT and STDERR records until its
 * END_REQUEST. One connection per request, closed on every path, bounded in size and time.
 */
import { connect, type Socket } from "node:net";
import { describeError, systemError } from "../errors.ts";

/** Where the application listens: `host:port`, or a unix socket's path. */
export type FastCgiAddress = { host: string; port: number } | { path: string };

/** What the application answered. */
export interface FastCgiAnswer {
  /** The CGI response: headers, a blank line, the body. */
  stdout: Uint8Array;
  /** What it logged about the request ("Primary script unknown"). */
  stderr: Uint8Array;
  /** The application's exit status, from END_REQUEST. */
  appStatus: number;
}

const VERSION = 1;
const HEADER_BYTES = 8;
const REQUEST_ID = 1;
const RESPONDER = 1;

/** The record types this client sends or reads. */
const RecordType = {
  BeginRequest: 1,
  EndRequest: 3,
  Params: 4,
  Stdin: 5,
  Stdout: 6,
  Stderr: 7,
} as const;

/** END_REQUEST's protocolStatus values other than 0, REQUEST_COMPLETE. */
const REFUSALS: Record<number, string> = {
  1: "it cannot multiplex connections",
  2: "it is overloaded",
  3: "it does not take the responder role",
};

/** A record's largest body: the header's content length is 16 bits. */
const MAX_CONTENT_BYTES = 0xffff;

function record(type: number, content: Uint8Array = new Uint8Array()): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + content.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, VERSION);
  view.setUint8(1, type);
  view.setUint16(2, REQUEST_ID);
  view.setUint16(4, content.length);
  bytes.set(content, HEADER_BYTES);
  return bytes;
}

/** A name or value's length: one byte below 128, else four with the top bit set. */
function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, (length | 0x80000000) >>> 0);
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

/**
 * The bytes of a whole request: BEGIN_REQUEST (responder, connection closed after it), `params`
 * in PARAMS records and the empty one that ends them, and the empty STDIN of a request without a
 * body.
 */
export function encodeRequest(params: Record<string, string>): Uint8Array {
  const encoder = new TextEncoder();
  const pairs = concat(
    Object.entries(params).flatMap(([name, value]) => {
      const [n, v] = [encoder.encode(name), encoder.encode(value)];
      return [encodeLength(n.length), encodeLength(v.length), n, v];
    }),
  );
  const begin = new Uint8Array(8);
  new DataView(begin.buffer).setUint16(0, RESPONDER);
  const parts = [record(RecordType.BeginRequest, begin)];
  for (let offset = 0; offset < pairs.length; offset += MAX_CONTENT_BYTES) {
    parts.push(record(RecordType.Params, pairs.subarray(offset, offset + MAX_CONTENT_BYTES)));
  }
  parts.push(record(RecordType.Params), record(RecordType.Stdin));
  return concat(parts);
}

/**
 * Reads an application's records as they arrive, in pieces of any size: `push` each piece; once
 * END_REQUEST has come, `answer` holds the result. Throws on bytes that are not FastCGI, an
 * answer larger than `maxBytes`, or a refused request.
 */
export class FastCgiReader {
  answer: FastCgiAnswer | undefined;
  readonly #maxBytes: number;
  #pending = new Uint8Array();
  readonly #stdout: Uint8Array[] = [];
  readonly #stderr: Uint8Array[] = [];
  #received = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Uint8Array): void {
    if (this.answer) throw new Error("sent more after the end of the request");
    this.#received += chunk.length;
    if (this.#received > this.#maxBytes) {
      throw new Error(`sent more than ${this.#maxBytes} bytes`);
    }
    let bytes = this.#pending.length ? concat([this.#pending, chunk]) : chunk;
    while (bytes.length >= HEADER_BYTES) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const [version, type] = [view.getUint8(0), view.getUint8(1)];
      const [id, contentLength, padding] = [view.getUint16(2), view.getUint16(4), view.getUint8(6)];
      if (version !== VERSION) throw new Error("did not answer in FastCGI");
      const end = HEADER_BYTES + contentLength + padding;
      if (bytes.length < end) break;
      const content = bytes.slice(HEADER_BYTES, HEADER_BYTES + contentLength);
      bytes = bytes.subarray(end);
      if (id !== REQUEST_ID) throw new Error(`answered request ${id}, not ours`);
      if (type === RecordType.Stdout) this.#stdout.push(content);
      else if (type === RecordType.Stderr) this.#stderr.push(content);
      else if (type === RecordType.EndRequest) {
        this.#end(content);
        if (bytes.length) throw new Error("sent more after the end of the request");
      } else throw new Error(`sent a FastCGI record of type ${type}, not an answer`);
    }
    this.#pending = bytes.slice();
  }

  #end(content: Uint8Array): void {
    if (content.length < 8) throw new Error("sent a truncated END_REQUEST record");
    const view = new DataView(content.buffer, content.byteOffset, content.byteLength);
    const protocolStatus = view.getUint8(4);
    if (protocolStatus !== 0) {
      throw new Error(
        `refused the request: ${REFUSALS[protocolStatus] ?? `protocol status ${protocolStatus}`}`,
      );
    }
    this.answer = {
      stdout: concat(this.#stdout),
      stderr: concat(this.#stderr),
      appStatus: view.getUint32(0),
    };
  }
}

/** The address as a user writes it: `tcp://127.0.0.1:9000`, `unix:///run/php/fpm.sock`. */
export function describeAddress(address: FastCgiAddress): string {
  if ("path" in address) return `unix://${address.path}`;
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `tcp://${host}:${address.port}`;
}

/**
 * What a failed connection means, for someone about to fix it, in the one wording of every
 * system error; without the address, which the source's description names.
 */
export function connectionError(error: NodeJS.ErrnoException): Error {
  switch (error.code) {
    case "ECONNREFUSED":
    case "ENOENT":
      return new Error(
        `${describeError(error)}: is php-fpm running, with a pool that listens there?`,
      );
    case "EACCES":
    case "EPERM":
      return new Error(
        `${describeError(error)}: run the agent as the socket's owner or group, or allow it ` +
          "with listen.owner, listen.group or listen.mode in the pool",
      );
    default:
      return systemError(error);
  }
}

/**
 * Sends one request with `params` to the application at `address` and resolves to its answer;
 * rejects, having closed the connection, when it refuses, fails, sends more than `maxBytes` or
 * has not finished when `signal` aborts.
 */
export function fastCgiRequest(
  address: FastCgiAddress,
  params: Record<string, string>,
  options: { signal: AbortSignal; maxBytes: number },
): Promise<FastCgiAnswer> {
  return new Promise((resolve, reject) => {
    if (options.signal.aborted) {
      reject(new Error("did not answer in time"));
      return;
    }
    const reader = new FastCgiReader(options.maxBytes);
    let connected = false;
    const socket: Socket = "path" in address
      ? connect({ path: address.path })
      : connect({ host: address.host, port: address.port });
    const finish = (error: Error | undefined) => {
      options.signal.removeEventListener("abort", onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve(reader.answer!);
    };
    const onAbort = () => finish(new Error("did not answer in time"));
    options.signal.addEventListener("abort", onAbort, { once: true });
    socket.on("connect", () => {
      connected = true;
      socket.write(encodeRequest(params));
    });
    socket.on("data", (chunk: Uint8Array) => {
      try {
        reader.push(chunk);
      } catch (error) {
        finish(error as Error);
        return;
      }
      if (reader.answer) finish(undefined);
    });
    socket.on("end", () => finish(new Error("closed the connection before answering")));
    socket.on(
      "error",
      (error: NodeJS.ErrnoException) =>
        finish(
          connected ? systemError(error) : connectionError(error),
        ),
    );
  });
}
