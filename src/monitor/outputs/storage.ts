/**
 * mod_heartmonitor's storage file as an output: rewritten whole each tick, never per heartbeat (a
 * storm of new senders must not take the time that keeps known servers fresh), for
 * mod_lbmethod_heartbeat to read on every request.
 */
import { readFileSync } from "node:fs";
import { describeError } from "../../errors.ts";
import { type Logger, ProblemLog } from "../../log.ts";
import {
  formatStorage,
  parseStorage,
  removeStaleTemporaries,
  type StoredServer,
  writeFileAtomic,
} from "../storage.ts";
import type { ServerEntry } from "../table.ts";
import type { MonitorOutput } from "./output.ts";

export class StorageOutput implements MonitorOutput {
  readonly name = "storage";
  readonly path: string;
  readonly #logger: Logger;
  readonly #problems: ProblemLog;
  #problem: string | undefined;
  #writes = { done: 0, failed: 0 };

  constructor(options: { path: string; logger: Logger; now: () => number }) {
    this.path = options.path;
    this.#logger = options.logger;
    this.#problems = new ProblemLog(options.logger, { now: options.now });
  }

  /**
   * At start: removes the temporary files of a monitor killed while writing, and returns the
   * servers an earlier run (or mod_heartmonitor) left in the file, for the monitor to restore.
   */
  start(): StoredServer[] {
    for (const removed of removeStaleTemporaries(this.path)) {
      this.#logger.info(`removed ${removed}, left by a monitor that was killed while writing`);
    }
    try {
      return parseStorage(readFileSync(this.path, "latin1"));
    } catch {
      return []; // no such file yet
    }
  }

  update(entries: readonly ServerEntry[], now: number): void {
    try {
      writeFileAtomic(this.path, formatStorage(entries, now));
      this.#writes.done++;
      this.#problem = undefined;
      this.#problems.ok("storage", `writing ${this.path} works again`);
    } catch (error) {
      this.#writes.failed++;
      this.#problem = `cannot write ${this.path}: ${describeError(error)}`;
      this.#problems.fail("storage", this.#problem);
    }
  }

  problem(): string | undefined {
    return this.#problem;
  }

  counters(): Record<string, number | string> {
    return {
      "storage file": this.path,
      "storage writes": this.#writes.done,
      "storage failures": this.#writes.failed,
    };
  }

  metrics(): string[] {
    return [];
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
