/**
 * The heartbeat message: ASCII `v=1&ready=N&busy=M[&port=P]`, as Apache's mod_heartbeat sends
 * and mod_heartmonitor reads (apache/httpd modules/cluster/).
 */

export const PROTOCOL_VERSION = 1;

/** mod_heartmonitor reads at most this many bytes of a message (MAX_MSG_LEN). */
export const MAX_MESSAGE_BYTES = 1000;

/** mod_heartbeat counts slots in an apr_uint32_t and prints them with %u. */
export const MAX_COUNT = 0xffff_ffff;

/** What a server reports: idle worker slots and slots serving a request. */
export interface Load {
  ready: number;
  busy: number;
}

export interface Heartbeat extends Load {
  /** The port the proxy should use for this server; mod_heartmonitor assumes 80 when absent. */
  port?: number;
}

export interface ParsedHeartbeat extends Heartbeat {
  version: string;
  /**
   * A `port=` that is no port (`0`, `65536`, `8080x`), left out: the server is taken as if the
   * message named no port. Apache takes it with atoi, and its balancer ignores ports anyway.
   */
  ignoredPort?: string;
  /** Every field of the message, keys lower-cased (Apache's tables ignore case), last one wins. */
  fields: Map<string, string>;
}

export type ParseResult =
  | { ok: true; heartbeat: ParsedHeartbeat }
  | { ok: false; reason: RejectReason; detail: string };

export type RejectReason = "oversize" | "missing-field" | "bad-number";

/** Why a count cannot go on the wire, or undefined when it can; `shown` is what was given. */
export function invalidCount(name: string, value: unknown, shown?: string): string | undefined {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_COUNT) {
    return `${name} must be a whole number from 0 to ${MAX_COUNT}, got ${shown ?? String(value)}`;
  }
  return undefined;
}

export function invalidPort(value: unknown, shown?: string): string | undefined {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    return `port must be a whole number from 1 to 65535, got ${shown ?? String(value)}`;
  }
  return undefined;
}

/**
 * The message for a heartbeat. Throws RangeError for values that would be a lie on the wire
 * (negative, fractional, NaN, over 32 bits), so that nothing untruthful is ever sent.
 */
export function formatHeartbeat(heartbeat: Heartbeat): string {
  const problem = invalidCount("ready", heartbeat.ready) ?? invalidCount("busy", heartbeat.busy) ??
    (heartbeat.port === undefined ? undefined : invalidPort(heartbeat.port));
  if (problem) throw new RangeError(problem);
  const message = `v=${PROTOCOL_VERSION}&ready=${heartbeat.ready}&busy=${heartbeat.busy}`;
  return heartbeat.port === undefined ? message : `${message}&port=${heartbeat.port}`;
}

/**
 * Reads a message with mod_heartmonitor's rules: fields as parseFields reads them, unknown keys
 * kept, `v`, `ready` and `busy` required.
 *
 * Stricter than Apache where Apache would store a wrong number: Apache's atoi turns `busy=x`
 * into 0 and `ready=-1` into 4294967295; here they are rejected as `bad-number`. A bad `port=`
 * alone costs only the port (`ignoredPort`): mod_lbmethod_heartbeat never reads it.
 */
export function parseHeartbeat(message: string | Uint8Array): ParseResult {
  const byteLength = typeof message === "string"
    ? new TextEncoder().encode(message).length
    : message.length;
  if (byteLength > MAX_MESSAGE_BYTES) {
    return {
      ok: false,
      reason: "oversize",
      detail: `${byteLength} bytes, more than ${MAX_MESSAGE_BYTES}`,
    };
  }
  const fields = parseFields(typeof message === "string" ? message : latin1(message));
  const version = fields.get("v");
  const ready = fields.get("ready");
  const busy = fields.get("busy");
  if (version === undefined || ready === undefined || busy === undefined) {
    const missing = [["v", version], ["ready", ready], ["busy", busy]]
      .filter(([, value]) => value === undefined).map(([key]) => key);
    return { ok: false, reason: "missing-field", detail: `no ${missing.join(", ")}` };
  }
  const readyCount = decimal(ready);
  const busyCount = decimal(busy);
  const problem = invalidCount("ready", readyCount, `'${ready}'`) ??
    invalidCount("busy", busyCount, `'${busy}'`);
  if (problem) return { ok: false, reason: "bad-number", detail: problem };
  const portText = fields.get("port");
  const port = portText === undefined ? undefined : decimal(portText);
  const heartbeat = { version, ready: readyCount, busy: busyCount, fields };
  return {
    ok: true,
    heartbeat: port === undefined || invalidPort(port)
      ? { ...heartbeat, ignoredPort: portText }
      : { ...heartbeat, port },
  };
}

/** The bytes of `v=1&ready=`, `&busy=` and `&port=`. */
const V1_READY = [...new TextEncoder().encode("v=1&ready=")];
const BUSY = [...new TextEncoder().encode("&busy=")];
const PORT = [...new TextEncoder().encode("&port=")];

/**
 * The heartbeat in the form nearly every sender sends, `v=1&ready=N&busy=M[&port=P]`, read
 * straight from the bytes: no string, no table of fields, for a monitor taking hundreds of
 * thousands a second. Undefined for anything else, which parseHeartbeat then reads: for what
 * it takes, the result is the one parseHeartbeat gives.
 */
export function readCommonHeartbeat(bytes: Uint8Array): Heartbeat | undefined {
  let at = 0;
  const literal = (expected: number[]) => {
    for (const byte of expected) if (bytes[at++] !== byte) return false;
    return true;
  };
  const digits = () => {
    const start = at;
    let value = 0;
    while (at < bytes.length && bytes[at] >= 0x30 && bytes[at] <= 0x39 && at - start < 10) {
      value = value * 10 + bytes[at++] - 0x30;
    }
    return at > start ? value : -1;
  };
  if (bytes.length > MAX_MESSAGE_BYTES || !literal(V1_READY)) return undefined;
  const ready = digits();
  if (ready < 0 || ready > MAX_COUNT || !literal(BUSY)) return undefined;
  const busy = digits();
  if (busy < 0 || busy > MAX_COUNT) return undefined;
  if (at === bytes.length) return { ready, busy };
  if (!literal(PORT)) return undefined;
  const port = digits();
  return at === bytes.length && port >= 1 && port <= 65535 ? { ready, busy, port } : undefined;
}

/**
 * `key=value&...` fields as Apache's qs_to_table reads them: empty fields skipped, split at the
 * first `=`, a key alone means `1`, both URL-unescaped, keys lower-cased (Apache's tables ignore
 * case), the last of a repeated key wins, nothing past a NUL.
 */
export function parseFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const field of text.split("\0", 1)[0].split("&")) {
    if (field === "") continue;
    const equals = field.indexOf("=");
    const key = equals < 0 ? field : field.slice(0, equals);
    const value = equals < 0 ? "1" : field.slice(equals + 1);
    fields.set(unescapeUrl(key).toLowerCase(), unescapeUrl(value));
  }
  return fields;
}

/** A plain decimal number, or NaN: no sign, no spaces, no exponent, no hex. */
export function decimal(text: string): number {
  return /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
}

/** Bytes as characters one for one, so that binary junk cannot fail decoding. */
export function latin1(bytes: Uint8Array): string {
  // Buffer's latin1 is ISO-8859-1; TextDecoder's "latin1" is windows-1252, which maps 0x80-0x9f elsewhere.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** `%XX` escapes decoded as Apache's ap_unescape_url does: `+` stays `+`, bad escapes stay. */
function unescapeUrl(text: string): string {
  if (!text.includes("%")) return text; // nearly always, and a monitor parses thousands a second
  return text.replace(
    /%([0-9a-fA-F]{2})/g,
    (_, hex: string) => String.fromCharCode(parseInt(hex, 16)),
  );
}
