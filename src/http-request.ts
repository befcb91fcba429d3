/**
 * One HTTP request over node:http or node:https, as every runtime here provides them. Both load
 * on first use: in a compiled binary they would otherwise add about 10 MB to every agent,
 * including the many that never speak HTTP.
 */
import type { Agent as HttpAgent } from "node:http";
import { systemError } from "./errors.ts";
import type { Agent as HttpsAgent } from "node:https";

function httpModule(url: URL): Promise<typeof import("node:http") | typeof import("node:https")> {
  return url.protocol === "https:" ? import("node:https") : import("node:http");
}

/** A connection pool of one kept-alive connection to `url`'s host. */
export async function keepAliveAgent(url: URL): Promise<HttpAgent | HttpsAgent> {
  const { Agent } = await httpModule(url);
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

export interface HttpResponse {
  status: number;
  statusText: string;
  body: string;
}

export interface HttpRequestOptions {
  method: "GET" | "POST";
  body?: Uint8Array;
  headers?: Record<string, string | number>;
  /** false: a connection of its own, closed after the request. */
  agent: HttpAgent | HttpsAgent | false;
  signal: AbortSignal;
  /** A longer answer is an error: whatever sent it is not what we asked. */
  maxBodyBytes: number;
}

/**
 * The response, or a rejection that says what went wrong (refused, too large, no answer in time)
 * in one wording on every runtime, without the URL, which the caller names.
 */
export async function request(url: URL, options: HttpRequestOptions): Promise<HttpResponse> {
  const { request: send } = await httpModule(url);
  return new Promise((resolve, reject) => {
    const outgoing = send(url, {
      method: options.method,
      agent: options.agent as HttpAgent,
      headers: { "User-Agent": "heartbeat", ...options.headers },
      signal: options.signal,
    }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBodyBytes) {
          outgoing.destroy(new Error(`sent more than ${options.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          statusText: response.statusMessage ?? "",
          body: Buffer.concat(chunks).toString("utf8"),
        }));
      response.on("error", reject);
    });
    // Without the URL: whoever asked names it (`send http://…`, `apache http://…`), once.
    outgoing.on(
      "error",
      (error: Error) =>
        reject(options.signal.aborted ? new Error("did not answer in time") : systemError(error)),
    );
    outgoing.end(options.body);
  });
}
