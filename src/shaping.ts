/**
 * What the agent advertises, as the operator shapes it: draining (ready=0, so the proxies send
 * nothing new), a ramp-up after start, and a minimum busy count.
 */
import { existsSync } from "node:fs";
import type { Load } from "./codec.ts";
import type { Logger } from "./log.ts";

/**
 * Draining, by signal (signals.ts: drainSignals) or while a drain file exists. It outlives
 * reloads; the file is the current configuration's.
 */
export class Drain {
  #bySignal = false;
  #was = false;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  set(on: boolean, why: string): void {
    this.#bySignal = on;
    this.#logger.info(`${why}: ${on ? "drain requested" : "drain by signal lifted"}`);
  }

  /** Whether to advertise ready=0 now; says so in the log when that changes. */
  draining(file: string | undefined): boolean {
    const byFile = file !== undefined && existsSync(file);
    const now = this.#bySignal || byFile;
    if (now !== this.#was) {
      this.#was = now;
      this.#logger.info(
        now
          ? `draining: advertising ready=0 (${this.#bySignal ? "signal" : `${file} exists`})`
          : "drain over: advertising the real ready count again",
      );
    }
    return now;
  }
}

export interface Shaping {
  draining: () => boolean;
  /** Busy is reported as at least this, so that lbmethod_heartbeat never divides ready by 4. */
  minBusy?: number;
  /** Over this many seconds after start, ready grows from 0 to its real value. */
  rampUpSeconds?: number;
  startedAt: number;
  now: () => number;
}

export function shapeLoad(load: Load, shaping: Shaping): Load {
  const busy = Math.max(load.busy, shaping.minBusy ?? 0);
  if (shaping.draining()) return { ready: 0, busy };
  const rampMs = (shaping.rampUpSeconds ?? 0) * 1000;
  const share = rampMs > 0
    ? Math.min(1, Math.max(0, shaping.now() - shaping.startedAt) / rampMs)
    : 1;
  return { ready: Math.floor(load.ready * share), busy };
}
