/** The contract every load source implements; sources/index.ts registers them by name. */
import type { Load } from "../codec.ts";
import type { Clock } from "../scheduler.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";

export interface Source {
  /** What is being read, for the startup log: `static ready=10 busy=0`. */
  readonly description: string;
  /** Why the auto source chose this one, for the startup log. */
  readonly chosenBecause?: string;
  /**
   * The time constant, in seconds, of the moving average `--smooth` applies to this source's
   * free share when the operator does not set one: 0 (none) for exact slot counts, more for
   * noisy readings such as CPU use.
   */
  readonly defaultSmoothSeconds?: number;
  /**
   * The current load. Rejects when there is no truthful answer (server down, unreadable,
   * garbage): the agent then sends nothing for that tick. `signal` aborts at the tick's
   * deadline; the agent stops waiting then whether or not the source notices.
   */
  read(signal: AbortSignal): Promise<Load>;
}

/** Everything a source may be configured with, besides the argument after `NAME:`. */
export interface SourceSettings {
  /** How its messages name a setting (settings.ts FLAG_NAMES, without a configuration). */
  names: SettingNames;
  ready?: number;
  busy?: number;
  /**
   * nginx and tcp: connections the server can serve at once (ready = capacity - busy); pressure:
   * ready when idle; cpu: what one CPU is worth (ready + busy = capacity × CPUs^1.5).
   */
  capacity?: number;
  /** Where /proc is, for the tcp source (tests point it at fixtures). */
  procRoot?: string;
  /** How old the file source's file may be, in seconds, before it counts as no data. */
  maxAgeSeconds?: number;
  /**
   * The directory the cpu and pressure sources read the machine's /proc and /sys under (`/`;
   * tests point it at a fixture tree).
   */
  fsRoot?: string;
  /** The clock the cpu source times its readings by (the system's; tests give a fake). */
  clock?: Clock;
}

export interface SourceDefinition {
  /** One line for `--help`. */
  summary: string;
  /** Builds the source; throws SourceConfigError when its settings are wrong. */
  create(argument: string | undefined, settings: SourceSettings): Source | Promise<Source>;
}

/** A mistake in how a source is configured: a usage error, not a runtime one. */
export class SourceConfigError extends Error {}

/** The capacity a source needs, or a SourceConfigError saying how to give it. */
export function requireCapacity(
  source: string,
  settings: SourceSettings,
  meaning = "how many connections this server can serve at once",
): number {
  if (settings.capacity === undefined) {
    throw new SourceConfigError(
      `${settings.names("source")} ${source} needs ${settings.names("capacity")} N: ${meaning}`,
    );
  }
  return settings.capacity;
}

/** ready = capacity - in use, never below 0. */
export function spareCapacity(capacity: number, inUse: number): number {
  return Math.max(0, capacity - inUse);
}
