/**
 * What the agent knows about itself, for those who ask rather than listen: HAProxy's
 * agent-check (one line), /healthz (is it getting its heartbeats out?) and /metrics. The agent
 * records each reading and each send here; nothing here reads a source or sends anything, so a
 * question is answered at once, from the last heartbeat, whoever asks and however often.
 */
import type { Load } from "../codec.ts";
import type { ConnectionRefusal } from "../connection-limits.ts";
import type { SourceReading } from "../sources/combined.ts";
import { family, label } from "../prometheus.ts";
import { Ring } from "../page.ts";

/** The status page's sparkline: ready and busy of the last this many heartbeats. */
export const HISTORY_HEARTBEATS = 300;

/** The agent's TCP sides, as /metrics labels them. */
export type Listener = "agent-check" | "http";

export interface DestinationCounts {
  sent: number;
  failed: number;
  /** When a heartbeat last reached it (clock ms). */
  lastSent?: number;
}

export class AgentStatus {
  /** What the last heartbeat advertised (after drain, ramp and --min-busy). */
  advertised?: Load;
  /** Why the last reading gave no data; undefined when it did. */
  sourceProblem?: string;
  sourceErrors = 0;
  /** When the last heartbeat reached every destination (clock ms). */
  lastDelivered?: number;
  /** When the source last answered (clock ms). */
  lastRead?: number;
  /** What the last HISTORY_HEARTBEATS heartbeats advertised, for the status page. */
  readonly history = { ready: new Ring(HISTORY_HEARTBEATS), busy: new Ring(HISTORY_HEARTBEATS) };
  readonly destinations = new Map<string, DestinationCounts>();
  /** Connections turned away at a bound (src/connection-limits.ts), by side and reason. */
  readonly connectionsRefused: Record<Listener, Record<ConnectionRefusal, number>> = {
    "agent-check": { "too-many-connections": 0, "too-many-from-address": 0 },
    http: { "too-many-connections": 0, "too-many-from-address": 0 },
  };
  readonly #now: () => number;
  readonly #intervalMs: () => number;
  readonly #draining: () => boolean;
  /** The share of ready advertised while ramping up (shaping.ts rampShare); 1 when not. */
  readonly ramp: () => number;
  /** Each source's last reading, before they are combined and shaped. */
  readonly sources: () => readonly SourceReading[];

  constructor(options: {
    now: () => number;
    intervalMs: () => number;
    draining: () => boolean;
    sources?: () => readonly SourceReading[];
    ramp?: () => number;
  }) {
    this.#now = options.now;
    this.#intervalMs = options.intervalMs;
    this.#draining = options.draining;
    this.sources = options.sources ?? (() => []);
    this.ramp = options.ramp ?? (() => 1);
  }

  /** The source answered, and this is what is advertised (undefined: a drain gone silent). */
  read(advertised: Load | undefined): void {
    this.sourceProblem = undefined;
    this.lastRead = this.#now();
    if (!advertised) return;
    this.advertised = advertised;
    this.history.ready.push(advertised.ready);
    this.history.busy.push(advertised.busy);
  }

  sourceFailed(problem: string): void {
    this.sourceProblem = problem;
    this.sourceErrors++;
  }

  sent(destination: string, ok: boolean): void {
    const counts = this.destinations.get(destination) ?? { sent: 0, failed: 0 };
    if (ok) {
      counts.sent++;
      counts.lastSent = this.#now();
    } else counts.failed++;
    this.destinations.set(destination, counts);
  }

  /** Every destination got this heartbeat. */
  delivered(): void {
    this.lastDelivered = this.#now();
  }

  /** The agent's clock (ms), which the times here are on. */
  now(): number {
    return this.#now();
  }

  /** Whether heartbeats reach a destination: one did within two intervals. */
  reached(counts: DestinationCounts): boolean {
    return counts.lastSent !== undefined && this.#now() - counts.lastSent <= 2 * this.#intervalMs();
  }

  draining(): boolean {
    return this.#draining();
  }

  /**
   * HAProxy's agent-check answer. `drain` while draining; `down` when the source gives no data
   * (truthful or nothing); else `ready up N%`, N the share of the server's slots that are free,
   * ready / (ready + busy), never 0 % while any is free. HAProxy gives the server N % of its
   * configured weight: give servers weights in proportion to their size, and the traffic each
   * gets follows its free slots, as mod_lbmethod_heartbeat's does.
   */
  agentCheckLine(): string {
    if (this.#draining()) return "drain";
    if (this.sourceProblem || !this.advertised) {
      return `down #${(this.sourceProblem ?? "no reading yet").replace(/[\r\n#]/g, " ")}`;
    }
    return `ready up ${agentCheckPercent(this.advertised)}%`;
  }

  /** /healthz: healthy while heartbeats reach every destination within two intervals. */
  health(): { healthy: boolean; reason: string } {
    if (this.sourceProblem) return { healthy: false, reason: `no data: ${this.sourceProblem}` };
    if (this.#draining()) return { healthy: true, reason: "draining" };
    const failing = [...this.destinations].filter(([, counts]) => !this.reached(counts))
      .map(([name]) => name);
    if (failing.length) {
      return { healthy: false, reason: `no heartbeat reached ${failing.join(", ")} lately` };
    }
    if (this.destinations.size === 0 && !this.advertised) {
      return { healthy: false, reason: "no reading yet" };
    }
    return { healthy: true, reason: "ok" };
  }
}

/** ready / (ready + busy) in percent, 1 at the least while ready is above 0. */
export function agentCheckPercent(load: Load): number {
  if (load.ready <= 0) return 0;
  return Math.max(1, Math.round((100 * load.ready) / (load.ready + load.busy)));
}

/** /metrics, in Prometheus' text format. */
export function agentMetrics(status: AgentStatus, build: Record<string, string>): string {
  const labels = Object.entries(build).map(([key, value]) => `${key}="${label(value)}"`).join(",");
  const perDestination = (
    name: string,
    help: string,
    pick: (counts: DestinationCounts) => number,
  ) =>
    family(
      name,
      help,
      "counter",
      [...status.destinations].map(([destination, counts]) =>
        `${name}{destination="${label(destination)}"} ${pick(counts)}`
      ),
    );
  const sources = status.sources();
  const perSource = (name: string, help: string, pick: (reading: SourceReading) => number) =>
    family(
      name,
      help,
      "gauge",
      sources.flatMap((reading) =>
        reading.load ? [`${name}{source="${label(reading.name)}"} ${pick(reading)}`] : []
      ),
    );
  return [
    family(
      "heartbeat_build_info",
      "What this heartbeat is: version, commit, runtime, target.",
      "gauge",
      [
        `heartbeat_build_info{${labels}} 1`,
      ],
    ),
    perDestination(
      "heartbeat_heartbeats_sent_total",
      "Heartbeats that reached the destination.",
      (c) => c.sent,
    ),
    perDestination(
      "heartbeat_heartbeats_failed_total",
      "Heartbeats that did not.",
      (c) => c.failed,
    ),
    family(
      "heartbeat_source_errors_total",
      "Readings of the load source that gave no data.",
      "counter",
      [
        `heartbeat_source_errors_total ${status.sourceErrors}`,
      ],
    ),
    family(
      "heartbeat_source_up",
      "1 while the source's last read answered, 0 when it gave no data.",
      "gauge",
      sources.flatMap((reading) =>
        reading.load || reading.problem
          ? [`heartbeat_source_up{source="${label(reading.name)}"} ${reading.problem ? 0 : 1}`]
          : []
      ),
    ),
    perSource(
      "heartbeat_source_ready",
      "Idle slots the source last reported, before sources are combined and shaped.",
      (reading) => reading.load!.ready,
    ),
    perSource(
      "heartbeat_source_busy",
      "Busy slots the source last reported, before sources are combined and shaped.",
      (reading) => reading.load!.busy,
    ),
    perSource(
      "heartbeat_source_free_ratio",
      "The source's free share, ready / (ready + busy), smoothed by --smooth: the lowest sets ready.",
      (reading) => reading.share!,
    ),
    family("heartbeat_ready", "Idle slots the last heartbeat advertised.", "gauge", [
      `heartbeat_ready ${status.advertised?.ready ?? 0}`,
    ]),
    family("heartbeat_busy", "Busy slots the last heartbeat advertised.", "gauge", [
      `heartbeat_busy ${status.advertised?.busy ?? 0}`,
    ]),
    family("heartbeat_draining", "1 while the server is draining.", "gauge", [
      `heartbeat_draining ${status.draining() ? 1 : 0}`,
    ]),
    family(
      "heartbeat_connections_refused_total",
      "Connections to the agent-check or --http closed at once, past a bound, by reason.",
      "counter",
      Object.entries(status.connectionsRefused).flatMap(([listener, counts]) =>
        Object.entries(counts).map(([reason, count]) =>
          `heartbeat_connections_refused_total{listener="${listener}",reason="${reason}"} ${count}`
        )
      ),
    ),
  ].join("\n") + "\n";
}
