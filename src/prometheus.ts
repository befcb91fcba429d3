/** Prometheus' text exposition format, as both the agent's and the monitor's /metrics write it. */

/** One metric family: its HELP and TYPE lines, then its samples. */
export function family(name: string, help: string, type: string, samples: string[]): string {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples].join("\n");
}

/** A label value, escaped as the text format wants it. */
export function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
