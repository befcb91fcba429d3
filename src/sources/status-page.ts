/** Status pages for the apache and nginx sources: one connection per scrape, bounded in size and time. */
import { request } from "../http-request.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
import { SourceConfigError } from "./source.ts";

/** Status pages are a few kilobytes; anything much larger is not one. */
const MAX_BODY_BYTES = 256 * 1024;

/** A status page that answered, but not with 200: `status` says what it answered. */
export class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * The body of `url`, or a rejection saying why not (refused, not 200, too large, aborted).
 * The connection is closed after each request: a kept-alive connection would hold one of a
 * prefork server's workers between scrapes and show it as busy.
 */
export async function httpGet(
  url: URL,
  signal: AbortSignal,
  maxBodyBytes = MAX_BODY_BYTES,
): Promise<string> {
  const response = await request(url, {
    method: "GET",
    agent: false,
    headers: { Connection: "close" },
    signal,
    maxBodyBytes,
  });
  if (response.status !== 200) {
    throw new HttpStatusError(
      response.status,
      `answered ${response.status} ${response.statusText}`.trim(),
    );
  }
  return response.body;
}

/** The URL a source was given, or its default; throws a message naming the source. */
export function statusUrl(
  source: string,
  argument: string | undefined,
  fallback: string,
  names: SettingNames,
): URL {
  const text = argument ?? fallback;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SourceConfigError(
      `${names("source")} ${source}:URL: '${text}' is not a URL, e.g. ${fallback}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SourceConfigError(
      `${names("source")} ${source}:URL: '${text}' is not an http or https URL`,
    );
  }
  return url;
}
