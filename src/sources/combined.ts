/**
 * The sources `--source` names, as the one the agent reads: each source's free share, smoothed
 * over `--smooth` seconds where that is on, and the tightest of them. The first source sets the
 * size (its ready + busy); each source's free share is ready / (ready + busy); the heartbeat says
 * ready = floor(size × the smallest share), busy = size − ready. So `--source apache --source
 * file:…` advertises Apache's free workers unless the application's file says it is fuller. (The
 * cpu source's share never falls below 3/4, its weight being in its size: after another source it
 * trims that one's ready by a quarter at most; first, its weight sets the size.) A source with no
 * slots at all (ready + busy = 0) has a share of 0: it can take nothing. If any source has no
 * truthful answer, neither has the combination.
 */
import { invalidCount, type Load } from "../codec.ts";
import { describeError } from "../errors.ts";
import type { Source } from "./source.ts";

/** What one source last said, for /metrics and `--once --dry-run`. */
export interface SourceReading {
  /** As `--source` named it: `apache`, `file:/run/myapp/load`. */
  name: string;
  /** Its last answer; undefined before the first. */
  load?: Load;
  /** Its free share, 0 to 1, averaged where smoothing is on: the lowest sets the heartbeat. */
  share?: number;
  /** Why its last read gave no answer; undefined when it answered. */
  problem?: string;
}

export interface CombinedSource extends Source {
  /** Each source's last reading, in `--source` order. */
  readings(): readonly SourceReading[];
}

export interface CombineOptions {
  /** `--smooth`: the time constant for every source; undefined: each source's own default. */
  smoothSeconds?: number;
  /** The clock the moving average's elapsed time is measured on, in ms. */
  now: () => number;
}

/**
 * Below this distance the average is the reading itself: a float that creeps toward a steady
 * share by ever smaller steps would otherwise keep ready one slot short of it for ever.
 */
const SETTLED = 1e-9;

/** One of the sources, with its last reading and its moving average. */
interface Tracked {
  source: Source;
  reading: SourceReading;
  /** τ of its moving average; 0: none. */
  timeConstantMs: number;
  /** When `reading.share` was last updated (clock ms). */
  at: number;
  /** The share is exactly ready / (ready + busy) of the last reading, not an average. */
  exact: boolean;
}

export function combineSources(
  sources: readonly { name: string; source: Source }[],
  options: CombineOptions,
): CombinedSource {
  const tracked = sources.map(({ name, source }): Tracked => ({
    source,
    reading: { name },
    timeConstantMs: 1000 * (options.smoothSeconds ?? source.defaultSmoothSeconds ?? 0),
    at: 0,
    exact: false,
  }));
  const several = tracked.length > 1;
  const smoothing = ({ timeConstantMs }: Tracked) =>
    timeConstantMs ? `, smoothed over ${timeConstantMs / 1000} s` : "";
  // One source's choice is said by the startup line, as before; several say theirs each.
  const describe = (entry: Tracked) => {
    const chosen = entry.source.chosenBecause;
    return `${entry.source.description}${chosen ? ` (chosen because ${chosen})` : ""}${
      smoothing(entry)
    }`;
  };

  const readOne = async (entry: Tracked, signal: AbortSignal): Promise<Load> => {
    const { reading } = entry;
    try {
      const load = await entry.source.read(signal);
      const problem = invalidCount("ready", load.ready) ?? invalidCount("busy", load.busy);
      if (problem) throw new Error(problem);
      const size = load.ready + load.busy;
      const share = size === 0 ? 0 : load.ready / size;
      const now = options.now();
      if (reading.share === undefined || entry.timeConstantMs === 0) reading.share = share;
      else {
        // Weighted by the time that actually passed: a late or skipped read counts for more.
        const elapsed = Math.max(0, now - entry.at);
        reading.share += (1 - Math.exp(-elapsed / entry.timeConstantMs)) * (share - reading.share);
        if (Math.abs(share - reading.share) < SETTLED) reading.share = share;
      }
      entry.exact = reading.share === share;
      entry.at = now;
      reading.load = { ready: load.ready, busy: load.busy };
      reading.problem = undefined;
      return load;
    } catch (error) {
      reading.problem = describeError(error);
      throw several ? new Error(`${reading.name}: ${reading.problem}`) : error;
    }
  };

  return {
    description: several
      ? `the tightest of ${tracked.map((entry) => `(${describe(entry)})`).join(" and ")}`
      : `${tracked[0].source.description}${smoothing(tracked[0])}`,
    chosenBecause: several ? undefined : tracked[0].source.chosenBecause,
    readings: () => tracked.map((entry) => ({ ...entry.reading })),
    async read(signal) {
      const loads = await Promise.all(tracked.map((entry) => readOne(entry, signal)));
      const size = loads[0].ready + loads[0].busy;
      const ready = Math.min(...tracked.map((entry) => readyAt(size, entry)));
      return { ready, busy: size - ready };
    },
  };
}

/**
 * floor(size × the source's share): exact, in integers, for a share that is a reading's own
 * ready / (ready + busy), so that a single source's heartbeat is its reading to the slot.
 */
function readyAt(size: number, { reading, exact }: Tracked): number {
  const { ready, busy } = reading.load!;
  if (!exact) return Math.min(size, Math.floor(size * reading.share!));
  if (ready + busy === 0) return 0;
  return Number((BigInt(size) * BigInt(ready)) / BigInt(ready + busy));
}
