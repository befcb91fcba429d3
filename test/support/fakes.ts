/**
 * Plain fakes for unit tests: a clock that only moves when told, recording senders and UDP
 * adapters, and signals sent by hand.
 */
import { formatDestination } from "../../src/address.ts";
import type { Invocation } from "../../src/cli.ts";
import type { CommandContext } from "../../src/commands/context.ts";
import { type Clock, systemClock } from "../../src/scheduler.ts";
import type { SignalName, SignalSource } from "../../src/signals.ts";
import type { Sender } from "../../src/senders/sender.ts";
import type { UdpAdapter } from "../../src/transport/transport.ts";

/**
 * A clock on virtual time. Sleeps are timers that fire in deadline order, each once nothing
 * else is left to run (every pending promise chain has settled), moving time to its deadline;
 * an aborted sleep ends at once without moving time. `advance` moves time by hand, for work
 * that takes time inside a tick.
 */
export class FakeClock implements Clock {
  time = 0;
  readonly #timers: { at: number; fire: () => void }[] = [];
  #firing = false;

  now(): number {
    return this.time;
  }

  advance(ms: number): void {
    this.time += ms;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = {
        at: this.time + Math.max(0, ms),
        fire: () => {
          signal.removeEventListener("abort", cancel);
          resolve();
        },
      };
      const cancel = () => {
        this.#timers.splice(this.#timers.indexOf(timer), 1);
        resolve();
      };
      signal.addEventListener("abort", cancel, { once: true });
      this.#timers.push(timer);
      void this.#fireWhenIdle();
    });
  }

  /** Promise chains in these tests settle within this many microtask turns. */
  static readonly IDLE_TURNS = 100;

  async #fireWhenIdle(): Promise<void> {
    if (this.#firing) return;
    this.#firing = true;
    while (this.#timers.length > 0) {
      for (let turn = 0; turn < FakeClock.IDLE_TURNS; turn++) await Promise.resolve();
      const next = this.#timers.reduce(
        (earliest, timer) => timer.at < earliest.at ? timer : earliest,
        this.#timers[0],
      );
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.time = Math.max(this.time, next.at);
      next.fire();
    }
    this.#firing = false;
  }
}

export interface SentHeartbeat {
  to: string;
  payload: string;
  at: number;
}

/** Records what its senders send; destinations named in `failing` fail with their error. */
export class Recorder {
  readonly sent: SentHeartbeat[] = [];
  readonly failing = new Map<string, Error>();

  constructor(private readonly clock: { now(): number } = { now: () => 0 }) {}

  sender(name: string): Sender {
    return {
      name,
      send: (payload) => {
        const failure = this.failing.get(name);
        if (failure) return Promise.reject(failure);
        this.sent.push({
          to: name,
          payload: new TextDecoder().decode(payload),
          at: this.clock.now(),
        });
        return Promise.resolve();
      },
    };
  }
}

/** Log lines kept in memory. */
export function recordingLog(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line) => lines.push(line) };
}

/** The most receive buffer recordingAdapter's listeners grant. */
export const FAKE_RMEM_MAX = 4 * 1024 * 1024;

/** A UDP adapter whose transports record what they send in `recorder`, named by destination. */
export function recordingAdapter(recorder: Recorder): UdpAdapter {
  return {
    openUdpTransport: () =>
      Promise.resolve({
        adapter: "node",
        send: (payload, to) => recorder.sender(formatDestination(to)).send(payload),
        close: () => Promise.resolve(),
      }),
    // A listener that hears nothing, for commands that need one open; it grants a receive buffer
    // of up to FAKE_RMEM_MAX, as a kernel whose net.core.rmem_max is that.
    openUdpListener: (options) =>
      Promise.resolve({
        adapter: "node",
        receiveBuffer: options.receiveBuffer && Math.min(options.receiveBuffer, FAKE_RMEM_MAX),
        close: () => Promise.resolve(),
      }),
  };
}

/** Signals a test sends by hand; `closed` tells whether the command stopped listening. */
export class FakeSignals implements SignalSource {
  readonly listened: SignalName[] = [];
  closed = false;
  readonly #arrived: SignalName[] = [];
  #waiting?: (signal: SignalName) => void;

  /** As the commands open their signal source. */
  readonly open = (names: readonly SignalName[]): SignalSource => {
    this.listened.push(...names);
    return this;
  };

  send(signal: SignalName): void {
    if (!this.listened.includes(signal)) throw new Error(`${signal} is not listened to`);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting) waiting(signal);
    else this.#arrived.push(signal);
  }

  next(): Promise<SignalName> {
    const signal = this.#arrived.shift();
    return signal ? Promise.resolve(signal) : new Promise((resolve) => this.#waiting = resolve);
  }

  close(): void {
    this.closed = true;
  }
}

/** A command line that asks for nothing but the run. */
export const INVOCATION: Invocation = {
  flags: {},
  testConfig: false,
  printConfig: false,
  once: false,
  dryRun: false,
  print: false,
};

/**
 * A CommandContext of fakes: output recorded in `log`, signals sent by hand through `signals`,
 * heartbeats recorded in `recorder` instead of sent; the real clock, or `clock` (a FakeClock).
 */
export function fakeContext(clock: Clock = systemClock) {
  const recorder = new Recorder(clock);
  const signals = new FakeSignals();
  const log = recordingLog();
  const context: CommandContext = {
    io: { stdout: log.write, stderr: log.write },
    env: {},
    clock,
    signals: signals.open,
    adapter: () => Promise.resolve(recordingAdapter(recorder)),
  };
  const payloads = () => recorder.sent.map((sent) => sent.payload);
  return { recorder, signals, log, context, payloads };
}
