/**
 * What every command is given rather than reaching for: its output, environment, clock, the
 * process's signals and the UDP adapters. main.ts passes the real ones; tests pass fakes, so
 * reload, drain and farewell are tested without a process of their own.
 */
import type { Logger } from "../log.ts";
import type { Clock } from "../scheduler.ts";
import type { SignalName, SignalSource } from "../signals.ts";
import type { AdapterName, UdpAdapter } from "../transport/transport.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface CommandIO {
  stdout(line: string): void;
  stderr(line: string): void;
}

export interface CommandContext {
  io: CommandIO;
  env: Record<string, string | undefined>;
  clock: Clock;
  /** Starts listening to the process's signals `names`. */
  signals(names: readonly SignalName[], logger: Logger): SignalSource;
  /** The UDP adapter called `name`. */
  adapter(name: AdapterName): Promise<UdpAdapter>;
}
