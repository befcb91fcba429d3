/**
 * What the agent advertises, as the operator shapes it: draining (ready=0, so the proxies send
 * nothing new), a ramp-up after start, and a minimum busy count.
 */
import { existsSync } from "node:fs";
import type { Load } from "../codec.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../scheduler.ts";

/**
 * How many heartbeats announce a drain (ready=0) before the agent falls silent: one is sent at
 * once, one more in case a datagram is lost.
 */
export const DRAIN_ANNOUNCEMENTS = 2;
/**
 * A drain (by signal or by file) sends its second announcement this soon after the first (or at
 * the next tick if that comes sooner): the balancer drops the server 10 s after the last one.
 */
export const DRAIN_REPEAT_MS = 250;
/**
 * How often the agent looks for the drain file between ticks (one stat): a drain by file is then
 * announced within this much of the file appearing, not at the next tick, nearly as soon as a
 * drain by signal.
 */
export const DRAIN_FILE_POLL_MS = 200;
/** After a drain, ready climbs back from 0 over --ramp-up seconds, or this many. */
export const UNDRAIN_RAMP_SECONDS = 10;

/**
 * Draining, by signal (signals.ts: drainSignals) or while a drain file exists. It outlives
 * reloads; the file is the current configuration's.
 *
 * A drained server first says ready=0, which stops mod_lbmethod_heartbeat sending it new
 * requests, unless it is the balancer's last member: the balancer's draw includes its top
 * number, and the last member up wins it, at ready=0 too. So after DRAIN_ANNOUNCEMENTS
 * heartbeats the agent sends nothing at all, and the balancer drops the server 10 s after the
 * last one, last member or not.
 */
export class Drain {
  #bySignal = false;
  #was = false;
  #announced = 0;
  #resumedAt: number | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;

  constructor(logger: Logger, now: () => number = Date.now) {
    this.#logger = logger;
    this.#now = now;
  }

  set(on: boolean, why: string): void {
    this.#bySignal = on;
    this.#logger.info(`${why}: ${on ? "drain requested" : "drain by signal lifted"}`);
  }

  /** Whether the server is draining now; says so in the log when that changes. */
  draining(file: string | undefined): boolean {
    const now = this.#bySignal || drainFileExists(file);
    if (now !== this.#was) {
      this.#was = now;
      this.#announced = 0;
      if (!now) this.#resumedAt = this.#now();
      this.#logger.info(
        now
          ? `draining: advertising ready=0 (${
            this.#bySignal ? "signal" : `${file} exists`
          }), then nothing`
          : "drain over: advertising the real ready count again, ramping up",
      );
    }
    return now;
  }

  /** While draining: whether this heartbeat still announces ready=0, rather than being withheld. */
  announce(): boolean {
    if (this.#announced < DRAIN_ANNOUNCEMENTS) {
      this.#announced++;
      return true;
    }
    if (this.#announced++ === DRAIN_ANNOUNCEMENTS) {
      this.#logger.info(
        "draining: sending nothing now; the proxies drop this server 10 s after its last heartbeat",
      );
    }
    return false;
  }

  /** When the last drain ended, if one did. */
  resumedAt(): number | undefined {
    return this.#resumedAt;
  }
}

/** Whether `file`, the drain file if there is one, exists now. */
export function drainFileExists(file: string | undefined): boolean {
  return file !== undefined && existsSync(file);
}

/**
 * Looks for the drain file `file` (a stat) every DRAIN_FILE_POLL_MS until `ended`, and tells
 * `changed` each time it appears or goes. Without a file, nothing: waking five times a second
 * for nothing nearly doubled an idle agent's CPU.
 */
export async function watchDrainFile(
  file: string | undefined,
  clock: Pick<Clock, "sleep">,
  ended: AbortSignal,
  changed: (present: boolean) => void,
): Promise<void> {
  if (file === undefined) return;
  let present = drainFileExists(file);
  while (!ended.aborted) {
    await clock.sleep(DRAIN_FILE_POLL_MS, ended);
    const now = drainFileExists(file);
    if (now !== present && !ended.aborted) changed(now);
    present = now;
  }
}

export interface Shaping {
  draining: () => boolean;
  /** While draining: whether to announce ready=0 (true) or send nothing (false). Default: announce. */
  announce?: () => boolean;
  /** When the last drain ended: ready ramps up again from then. */
  resumedAt?: () => number | undefined;
  /** Busy is reported as at least this, so that lbmethod_heartbeat never divides ready by 4. */
  minBusy?: number;
  /** Over this many seconds after start, ready grows from 0 to its real value. */
  rampUpSeconds?: number;
  startedAt: number;
  now: () => number;
}

/** What to advertise for `load`; undefined: send nothing this time (a drain gone silent). */
export function shapeLoad(load: Load, shaping: Shaping): Load | undefined {
  const busy = Math.max(load.busy, shaping.minBusy ?? 0);
  if (shaping.draining()) return shaping.announce?.() === false ? undefined : { ready: 0, busy };
  return { ready: Math.floor(load.ready * rampShare(shaping)), busy };
}

/** The share of ready advertised now, 0 to 1: below 1 while ramping up after a start or a drain. */
export function rampShare(
  shaping: Pick<Shaping, "resumedAt" | "rampUpSeconds" | "startedAt" | "now">,
): number {
  const now = shaping.now();
  const resumedAt = shaping.resumedAt?.();
  const ramps = [
    { from: shaping.startedAt, seconds: shaping.rampUpSeconds ?? 0 },
    ...(resumedAt === undefined
      ? []
      : [{ from: resumedAt, seconds: shaping.rampUpSeconds ?? UNDRAIN_RAMP_SECONDS }]),
  ];
  return Math.min(
    ...ramps.map(({ from, seconds }) =>
      seconds > 0 ? Math.min(1, Math.max(0, now - from) / (seconds * 1000)) : 1
    ),
  );
}
