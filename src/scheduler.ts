/**
 * Runs a task once per interval on absolute deadlines: tick n is due at start + n × interval,
 * whatever earlier ticks cost, so there is no cumulative drift (mod_heartbeat sleeps a second
 * after each send, and drifts by its own work every tick). A tick that overruns its slot makes
 * the next ones be skipped, never run back to back.
 */

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener("abort", done, { once: true });
    }),
};

export interface ScheduleOptions {
  intervalMs: number;
  clock: Clock;
  signal: AbortSignal;
  /** Told how many ticks were dropped because the one before ran past their deadlines. */
  onSkipped?: (count: number) => void;
}

/** Calls `tick(n, deadline)` for n = 0, 1, 2 … until `signal` aborts. */
export async function runEvery(
  tick: (n: number, deadline: number) => Promise<void>,
  options: ScheduleOptions,
): Promise<void> {
  const { intervalMs, clock, signal } = options;
  const start = clock.now();
  let n = 0;
  while (!signal.aborted) {
    await tick(n, start + (n + 1) * intervalMs);
    const now = clock.now();
    let next = n + 1;
    // Deadlines already passed are dropped: their heartbeats would follow this one at once.
    if (start + next * intervalMs < now) {
      const firstAhead = Math.floor((now - start) / intervalMs) + 1;
      options.onSkipped?.(firstAhead - next);
      next = firstAhead;
    }
    n = next;
    // Timers may wake a little early; sleep again until the deadline has really come.
    for (let left = start + n * intervalMs - clock.now(); left > 0 && !signal.aborted;) {
      await clock.sleep(left, signal);
      left = start + n * intervalMs - clock.now();
    }
  }
}
