/**
 * Signed heartbeats: `&ts=UNIX&sig=HEX` appended, the signature an HMAC-SHA256 over everything
 * before `&sig=`. mod_heartmonitor ignores both keys, so Apache still takes signed heartbeats;
 * `heartbeat monitor --key-file` rejects unsigned, forged and replayed ones. The key is never
 * logged.
 */
import { describeError } from "./errors.ts";
import { readFileSync, statSync } from "node:fs";
import process from "node:process";

/** node:crypto loads on first use: it would add about 7 MB to every agent, signing or not. */
const crypto = () => process.getBuiltinModule("node:crypto");

/** Shorter keys can be guessed. */
const MIN_KEY_BYTES = 16;

/** The key in `path`, trimmed; throws an Error saying what is wrong (never what the key is). */
export function readKeyFile(path: string): { key: Buffer; warning?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read the key file ${path}: ${describeError(error)}`);
  }
  const key = Buffer.from(text.trim(), "utf8");
  if (key.length < MIN_KEY_BYTES) {
    throw new Error(
      `the key in ${path} is shorter than ${MIN_KEY_BYTES} bytes; make one with: head -c 32 /dev/urandom | base64 > ${path}`,
    );
  }
  const mode = statSync(path).mode & 0o077;
  return {
    key,
    warning: mode ? `${path} can be read by other users: chmod 600 ${path}` : undefined,
  };
}

/** The message with `&ts=` and `&sig=` appended. */
export function sign(message: string, key: Buffer, unixSeconds: number): string {
  const signed = `${message}&ts=${unixSeconds}`;
  return `${signed}&sig=${hmac(key, signed)}`;
}

function hmac(key: Buffer, text: string): string {
  return crypto().createHmac("sha256", key).update(text, "latin1").digest("hex");
}

export type SignatureProblem = "unsigned" | "forged" | "replayed" | "future";

/** Checks a message's signature and timestamp against the last one accepted from its sender. */
export class SignatureCheck {
  readonly #key: Buffer;
  readonly #windowSeconds: number;
  readonly #lastAccepted = new Map<string, number>();

  constructor(key: Buffer, windowSeconds: number) {
    this.#key = key;
    this.#windowSeconds = windowSeconds;
  }

  /** Undefined when `text` from `from` is signed, genuine and fresh; else why not. */
  check(
    text: string,
    from: string,
    nowSeconds: number,
  ): { reason: SignatureProblem; detail: string } | undefined {
    const at = text.lastIndexOf("&sig=");
    const ts = /&ts=(\d{1,12})(?:&|$)/.exec(text.slice(0, Math.max(0, at)))?.[1];
    if (at < 0 || ts === undefined) return { reason: "unsigned", detail: "no ts and sig" };
    const expected = Buffer.from(hmac(this.#key, text.slice(0, at)), "latin1");
    const given = Buffer.from(text.slice(at + 5), "latin1");
    if (given.length !== expected.length || !crypto().timingSafeEqual(given, expected)) {
      return { reason: "forged", detail: "the signature does not match" };
    }
    const seconds = Number(ts);
    if (seconds > nowSeconds + this.#windowSeconds) {
      return {
        reason: "future",
        detail: `ts is ${seconds - nowSeconds} s ahead: are the clocks in step?`,
      };
    }
    if (seconds < nowSeconds - this.#windowSeconds) {
      return {
        reason: "replayed",
        detail: `ts is ${
          nowSeconds - seconds
        } s old, more than the ${this.#windowSeconds} s window`,
      };
    }
    const last = this.#lastAccepted.get(from);
    if (last !== undefined && seconds < last) {
      return {
        reason: "replayed",
        detail: `ts ${seconds} is older than the last one accepted, ${last}`,
      };
    }
    this.#lastAccepted.set(from, seconds);
    return undefined;
  }

  /** Forgets senders not heard from for a window, so the table stays as small as the servers'. */
  forget(nowSeconds: number): void {
    for (const [from, last] of this.#lastAccepted) {
      if (last < nowSeconds - 2 * this.#windowSeconds) this.#lastAccepted.delete(from);
    }
  }
}
