/** A small HTTP GET for status pages: one connection per scrape, bounded in size and time. */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { SourceConfigError } from "./source.ts";

/** Status pages are a few kilobytes; anything much larger is not one. */
const MAX_BODY_BYTES = 256 * 1024;

/**
 * The body of `url`, or a rejection saying why not (refused, not 200, too large, aborted).
 * The connection is closed after each request: a kept-alive connection would hold one of a
 * prefork server's workers between scrapes and show it as busy.
 */
export function httpGet(url: URL, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, {
      agent: false,
      headers: { Connection: "close", "User-Agent": "heartbeat" },
      signal,
    }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`${url.href} answered ${response.statusCode} ${response.statusMessage ?? ""}`.trim()));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          request.destroy(new Error(`${url.href} sent more than ${MAX_BODY_BYTES} bytes: not a status page`));
          return;
        }
        chunks.push(chunk);
      });
      response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      response.on("error", reject);
    });
    request.on("error", (error: Error & { code?: string }) =>
      reject(signal.aborted ? new Error(`${url.href} did not answer in time`) : new Error(`${url.href}: ${error.message}`)));
    request.end();
  });
}

/** The URL a source was given, or its default; throws a message naming the source. */
export function statusUrl(source: string, argument: string | undefined, fallback: string): URL {
  const text = argument ?? fallback;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SourceConfigError(`--source ${source}:URL: '${text}' is not a URL, e.g. ${fallback}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SourceConfigError(`--source ${source}:URL: '${text}' is not an http or https URL`);
  }
  return url;
}
