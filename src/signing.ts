/**
 * Signed heartbeats: `&ts=UNIX&sig=HEX` appended, the signature an HMAC-SHA256 over everything
 * before `&sig=`. mod_heartmonitor ignores both keys, so Apache still takes signed heartbeats;
 * `heartbeat monitor --key-file` rejects unsigned, forged and replayed ones. The key is never
 * logged.
 */
import { describeError } from "./errors.ts";
import process from "node:process";
import { readRegularFile } from "./regular-file.ts";

/** node:crypto loads on first use: it would add about 7 MB to every agent, signing or not. */
const crypto = () => process.getBuiltinModule("node:crypto");

/** Shorter keys can be guessed. */
const MIN_KEY_BYTES = 16;
/** A key file is a regular file of at most this size: a key is tens of bytes. */
export const MAX_KEY_FILE_BYTES = 4096;

/** The key in `path`, trimmed; throws an Error saying what is wrong (never what the key is). */
export function readKeyFile(path: string): { key: Buffer; warning?: string } {
  let text: string;
  let mode: number;
  try {
    ({ text, mode } = readRegularFile(path, MAX_KEY_FILE_BYTES));
  } catch (error) {
    throw new Error(`cannot read the key file ${path}: ${describeError(error)}`);
  }
  const key = Buffer.from(text.trim(), "utf8");
  if (key.length < MIN_KEY_BYTES) {
    throw new Error(
      `the key in ${path} is shorter than ${MIN_KEY_BYTES} bytes; make one with: head -c 32 /dev/urandom | base64 > ${path}`,
    );
  }
  return {
    key,
    warning: mode & 0o077 ? `${path} can be read by other users: chmod 600 ${path}` : undefined,
  };
}

/** Who signs: the address it sends from, where known, and its running count of heartbeats. */
export interface Signer {
  /** The sender's own address, as the monitor will see it: bound into the signature. */
  from?: string;
  /** Makes every signed heartbeat unique, so that each can be taken once only. */
  seq: number;
}

/** The message with `&from=` (where known), `&seq=`, `&ts=` and `&sig=` appended. */
export function sign(message: string, key: Buffer, unixSeconds: number, signer?: Signer): string {
  const from = signer?.from ? `&from=${signer.from}` : "";
  const seq = signer ? `&seq=${signer.seq}` : "";
  const signed = `${message}${from}${seq}&ts=${unixSeconds}`;
  return `${signed}&sig=${hmac(key, signed)}`;
}

function hmac(key: Buffer, text: string): string {
  return crypto().createHmac("sha256", key).update(text, "latin1").digest("hex");
}

export type SignatureProblem = "unsigned" | "forged" | "replayed" | "future" | "wrong-sender";

/**
 * Checks a message's signature, its sender and its freshness. A signed heartbeat is taken once:
 * its signature is remembered for the window, whoever sends it again; it must come from the
 * address it names (`from=`), when it names one; and it must be newer than the last one taken
 * from that address.
 */
export class SignatureCheck {
  readonly #key: Buffer;
  readonly #windowSeconds: number;
  readonly #startedSeconds: number;
  readonly #lastAccepted = new Map<string, { ts: number; seq: number }>();
  /** Signatures taken within the window, with their ts. */
  readonly #taken = new Map<string, number>();

  /**
   * `startedSeconds`: when this monitor started (UNIX seconds). What the monitor took before then
   * is forgotten, so a heartbeat signed at or before its start may have been taken already: it is
   * refused (for one window at most: after that the window refuses it anyway).
   */
  constructor(key: Buffer, windowSeconds: number, startedSeconds: number) {
    this.#key = key;
    this.#windowSeconds = windowSeconds;
    this.#startedSeconds = startedSeconds;
  }

  /** Undefined when `text` from `from` is signed, genuine, its own sender's and fresh; else why not. */
  check(
    text: string,
    from: string,
    nowSeconds: number,
  ): { reason: SignatureProblem; detail: string } | undefined {
    const at = text.lastIndexOf("&sig=");
    const signed = text.slice(0, Math.max(0, at));
    const field = (name: string) => new RegExp(`&${name}=([^&]*)(?:&|$)`).exec(signed)?.[1];
    const ts = /^\d{1,12}$/.test(field("ts") ?? "") ? Number(field("ts")) : undefined;
    if (at < 0 || ts === undefined) return { reason: "unsigned", detail: "no ts and sig" };
    const expected = Buffer.from(hmac(this.#key, signed), "latin1");
    const given = Buffer.from(text.slice(at + 5), "latin1");
    if (given.length !== expected.length || !crypto().timingSafeEqual(given, expected)) {
      return { reason: "forged", detail: "the signature does not match" };
    }
    const signer = field("from");
    if (signer !== undefined && signer !== from) {
      return { reason: "wrong-sender", detail: `signed by ${signer}, sent from ${from}` };
    }
    if (ts > nowSeconds + this.#windowSeconds) {
      return {
        reason: "future",
        detail: `ts is ${ts - nowSeconds} s ahead: are the clocks in step?`,
      };
    }
    if (ts < nowSeconds - this.#windowSeconds) {
      return {
        reason: "replayed",
        detail: `ts is ${nowSeconds - ts} s old, more than the ${this.#windowSeconds} s window`,
      };
    }
    if (ts <= this.#startedSeconds) {
      return {
        reason: "replayed",
        detail: "signed before this monitor started, which cannot know whether it was taken",
      };
    }
    const sig = text.slice(at + 5);
    if (this.#taken.has(sig)) {
      return { reason: "replayed", detail: "this very heartbeat was taken already" };
    }
    const seq = Number(field("seq") ?? 0);
    const last = this.#lastAccepted.get(from);
    if (
      last && (ts < last.ts || (ts === last.ts && seq <= last.seq && field("seq") !== undefined))
    ) {
      return { reason: "replayed", detail: `older than the last one taken from ${from}` };
    }
    this.#lastAccepted.set(from, { ts, seq });
    this.#taken.set(sig, ts);
    return undefined;
  }

  /** Forgets what is older than the window, so that memory stays as small as the traffic. */
  forget(nowSeconds: number): void {
    for (const [from, last] of this.#lastAccepted) {
      if (last.ts < nowSeconds - 2 * this.#windowSeconds) this.#lastAccepted.delete(from);
    }
    for (const [sig, ts] of this.#taken) {
      if (ts < nowSeconds - this.#windowSeconds) this.#taken.delete(sig);
    }
  }
}
