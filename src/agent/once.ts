/**
 * `--once`: one heartbeat, and what went where: --once is run by hand, or by scripts that log
 * what they did. With --dry-run and several sources, each source's reading too.
 */
import type { Logger } from "../log.ts";
import type { CombinedSource, SourceReading } from "../sources/combined.ts";
import { type AgentOptions, createAgent } from "./heartbeat.ts";

/** Sends one heartbeat; true only if it reached every destination. */
export async function beatOnce(
  { options, sources, logger }: {
    options: Omit<AgentOptions, "signal">;
    sources: CombinedSource;
    logger: Logger;
  },
  dryRun: boolean,
  stdout: (line: string) => void,
): Promise<boolean> {
  const sent: string[] = [];
  let payload = "";
  const senders = options.senders.map((sender) => ({
    name: sender.name,
    send: async (bytes: Uint8Array) => {
      await sender.send(bytes);
      payload = new TextDecoder().decode(bytes);
      sent.push(sender.name);
    },
  }));
  const reached = await createAgent({
    ...options,
    senders,
    signal: new AbortController().signal,
  }).beat();
  if (sent.length && !dryRun) {
    logger.info(`sent ${payload} to ${sent.join(", ")}`);
  }
  const readings = sources.readings();
  if (dryRun && readings.length > 1) {
    readingLines(readings).forEach(stdout);
  }
  return reached;
}

/**
 * Each source's reading, for `--once --dry-run` with several: `source apache: ready=3 busy=7, 30.0 %
 * free (the tightest)`, or why it gave none.
 */
function readingLines(readings: readonly SourceReading[]): string[] {
  const shares = readings.map((reading) => reading.problem ? NaN : reading.share ?? NaN);
  const tightest = shares.some(Number.isNaN) ? -1 : shares.indexOf(Math.min(...shares));
  return readings.map(({ name, load, share, problem }, index) =>
    `source ${name}: ${
      problem || !load
        ? `no answer: ${problem ?? "not read"}`
        : `ready=${load.ready} busy=${load.busy}, ${(100 * share!).toFixed(1)} % free${
          index === tightest ? " (the tightest)" : ""
        }`
    }`
  );
}
