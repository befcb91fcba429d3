// src/monitor/outputs/output.ts
import type { ServerEntry } from "../table.ts";
/** What the monitor keeps up to date from its table: a file, a balancer. */
export interface MonitorOutput {
  /** For logs and /healthz: "storage", "haproxy", "nginx". */
  readonly name: string;
  /** Once a second, after silent servers are dropped: the table's servers, and the clock's now (ms).
   *  Never throws; slow work (a socket, a child process) runs in the background, not awaited. */
  update(entries: readonly ServerEntry[], now: number): void;
  /** Why it is not working now, for /healthz (503); undefined while it works. */
  problem(): string | undefined;
  /** Its Prometheus families (src/prometheus.ts `family`), for the monitor's /metrics. */
  metrics(): string[];
  /** At stop: finish or abandon background work. */
  close(): Promise<void>;
}
