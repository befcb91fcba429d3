/** `nginx[:URL]`: nginx's stub_status page, against the capacity the admin gives. */
import type { Load } from "../codec.ts";
import { httpGet, statusUrl } from "./status-page.ts";
import { requireCapacity, type SourceDefinition, spareCapacity } from "./source.ts";

export const NGINX_DEFAULT_URL = "http://127.0.0.1/nginx_status";

export interface StubStatus {
  active: number;
  reading: number;
  writing: number;
  waiting: number;
}

const STUB_STATUS =
  /^Active connections:\s*(\d+)\s*\n.*\n\s*\d+\s+\d+\s+\d+\s*\nReading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)\s*$/;

/** stub_status's four counters; throws when the text is not a stub_status page. */
export function parseStubStatus(text: string): StubStatus {
  const match = STUB_STATUS.exec(text.trim());
  if (!match) throw new Error("not an nginx stub_status page");
  const [active, reading, writing, waiting] = match.slice(1).map(Number);
  if (reading + writing + waiting > active) {
    throw new Error(
      `stub_status counts do not add up: reading ${reading} + writing ${writing} + waiting ${waiting} > active ${active}`,
    );
  }
  return { active, reading, writing, waiting };
}

/**
 * busy = connections reading a request or writing a reply; ready = capacity - active
 * connections. Our own scrape (one active connection, writing) is left out.
 */
export function nginxLoad(status: StubStatus, capacity: number): Load {
  const own = status.writing > 0 ? 1 : 0;
  return {
    ready: spareCapacity(capacity, status.active - own),
    busy: status.reading + status.writing - own,
  };
}

export const nginxSource: SourceDefinition = {
  summary: `nginx's stub_status (default URL ${NGINX_DEFAULT_URL}); needs --capacity`,
  create(argument, settings) {
    const url = statusUrl("nginx", argument, NGINX_DEFAULT_URL, settings.names);
    const capacity = requireCapacity("nginx", settings);
    return {
      description: `nginx ${url.href} capacity ${capacity}`,
      read: async (signal) => nginxLoad(parseStubStatus(await httpGet(url, signal)), capacity),
    };
  },
};
