/** Log lines on stderr: `TIME LEVEL message`, one event a line. */

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface LoggerOptions {
  /** The least severe level that is written. */
  level: LogLevel;
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(options: LoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const least = LOG_LEVELS.indexOf(options.level);
  const at = (level: LogLevel) => (message: string) => {
    if (LOG_LEVELS.indexOf(level) >= least) {
      write(`${now().toISOString()} ${level.padEnd(5)} ${printable(message)}`);
    }
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * Logs a recurring problem once when it starts, a reminder with a count at most once per
 * `repeatMs` while it lasts, and once when it ends, so that a fault that repeats every tick
 * cannot flood the log.
 */
export class ProblemLog {
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #repeatMs: number;
  readonly #active = new Map<string, { count: number; lastLogged: number; since: number }>();

  constructor(logger: Logger, options: { now: () => number; repeatMs?: number }) {
    this.#logger = logger;
    this.#now = options.now;
    this.#repeatMs = options.repeatMs ?? 60_000;
  }

  /** Records one occurrence of the problem `key`. */
  fail(key: string, message: string): void {
    const now = this.#now();
    const problem = this.#active.get(key);
    if (!problem) {
      this.#active.set(key, { count: 1, lastLogged: now, since: now });
      this.#logger.warn(message);
      return;
    }
    problem.count++;
    if (now - problem.lastLogged >= this.#repeatMs) {
      problem.lastLogged = now;
      const seconds = Math.round((now - problem.since) / 1000);
      this.#logger.warn(`${message} (${problem.count} times in ${seconds} s)`);
    }
  }

  /** Records that `key` is fine; logs `message` only if it was a problem until now. */
  ok(key: string, message: string): void {
    const problem = this.#active.get(key);
    if (!problem) return;
    this.#active.delete(key);
    const seconds = Math.round((this.#now() - problem.since) / 1000);
    this.#logger.info(`${message} (after ${problem.count} failures in ${seconds} s)`);
  }
}

/**
 * `text` with every control character (C0, DEL, C1) written as `\xNN`: whatever a datagram, a
 * status page or a command carries into a message can neither start a log line of its own nor
 * send a terminal escape sequence.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
