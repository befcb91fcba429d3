/** The contract every load source implements; sources/index.ts registers them by name. */
import type { Load } from "../codec.ts";

export interface Source {
  /** What is being read, for the startup log: `static ready=10 busy=0`. */
  readonly description: string;
  /**
   * The current load. Rejects when there is no truthful answer (server down, unreadable,
   * garbage): the agent then sends nothing for that tick. `signal` aborts at the tick's
   * deadline; the agent stops waiting then whether or not the source notices.
   */
  read(signal: AbortSignal): Promise<Load>;
}

/** Everything a source may be configured with, besides the argument after `NAME:`. */
export interface SourceSettings {
  ready?: number;
  busy?: number;
}

export interface SourceDefinition {
  /** One line for `--help`. */
  summary: string;
  /** Builds the source; throws SourceConfigError when its settings are wrong. */
  create(argument: string | undefined, settings: SourceSettings): Source;
}

/** A mistake in how a source is configured: a usage error, not a runtime one. */
export class SourceConfigError extends Error {}
