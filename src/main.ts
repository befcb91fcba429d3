/**
 * heartbeat: mod_heartbeat outside Apache. Entry point for `deno run -A src/main.ts`,
 * `bun src/main.ts` and the compiled binary.
 */
import process from "node:process";
import denoConfig from "../deno.json" with { type: "json" };
import { type Destination, formatDestination, resolveIPv4 } from "./address.ts";
import { type AgentOptions, runAgent, sendOnce } from "./agent.ts";
import { type AgentSettings, parseCommandLine, USAGE, UsageError } from "./cli.ts";
import { createLogger } from "./log.ts";
import { runtimeVersion } from "./runtime.ts";
import { systemClock } from "./scheduler.ts";
import { createSource } from "./sources/index.ts";
import { SourceConfigError } from "./sources/source.ts";
import { adapterUnavailable, defaultAdapter, loadAdapter } from "./transport/index.ts";
import { createPrintTransport } from "./transport/print.ts";
import type { UdpTransport } from "./transport/transport.ts";

export const VERSION: string = denoConfig.version;

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface MainIO {
  stdout(line: string): void;
  stderr(line: string): void;
}

const processIO: MainIO = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

/** Runs the command line `argv`; resolves to the exit status. */
export async function main(argv: string[], io: MainIO = processIO): Promise<number> {
  try {
    const command = parseCommandLine(argv);
    switch (command.kind) {
      case "help":
        io.stdout(USAGE.trimEnd());
        return EXIT_OK;
      case "version":
        io.stdout(`heartbeat ${VERSION} (${runtimeVersion()}, ${process.platform}-${process.arch})`);
        return EXIT_OK;
      case "run":
        return await run(command.settings, io);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof SourceConfigError) {
      io.stderr(`heartbeat: ${error.message}`);
      io.stderr("Try 'heartbeat --help' for the options.");
      return EXIT_USAGE;
    }
    if (error instanceof RuntimeFailure) {
      io.stderr(`heartbeat: ${error.message}`);
      return EXIT_FAILURE;
    }
    throw error;
  }
}

async function run(settings: AgentSettings, io: MainIO): Promise<number> {
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const source = await createSource(settings.source, {
    ready: settings.ready,
    busy: settings.busy,
    capacity: settings.capacity,
    maxAgeSeconds: settings.maxAgeSeconds,
    procRoot: settings.procRoot,
  });
  const adapter = settings.runtimeAdapter ?? defaultAdapter();
  const unavailable = adapterUnavailable(adapter);
  if (unavailable) throw new UsageError(`--runtime-adapter ${adapter}: ${unavailable}`);
  const destinations = await resolveDestinations(settings);
  if (settings.intervalSeconds >= 10) {
    logger.warn(`--interval ${settings.intervalSeconds}: mod_lbmethod_heartbeat ignores servers ` +
      "silent for 10 s, so this server will drop out of the balancer between heartbeats");
  }

  const transport = settings.dryRun ? createPrintTransport(io.stdout) : await openTransport(settings, adapter);
  const stop = new AbortController();
  const stopOn = (signal: NodeJS.Signals) => {
    logger.info(`stopping on ${signal}`);
    stop.abort();
  };
  process.on("SIGINT", stopOn);
  process.on("SIGTERM", stopOn);
  const options: AgentOptions = {
    destinations,
    source,
    transport,
    port: settings.port,
    intervalMs: settings.intervalSeconds * 1000,
    logger,
    clock: systemClock,
    signal: stop.signal,
  };
  try {
    if (settings.once) return await sendOnce(options) ? EXIT_OK : EXIT_FAILURE;
    const chosen = source.chosenBecause ? ` (chosen because ${source.chosenBecause})` : "";
    logger.info(`heartbeat ${VERSION} on ${runtimeVersion()}: sending ${source.description}${chosen} to ` +
      `${destinations.map(formatDestination).join(", ")} every ${settings.intervalSeconds} s ` +
      `(${describeTransport(transport, settings)})`);
    await runAgent(options);
    logger.info("stopped");
    return EXIT_OK;
  } finally {
    process.off("SIGINT", stopOn);
    process.off("SIGTERM", stopOn);
    await transport.close();
  }
}

async function resolveDestinations(settings: AgentSettings): Promise<Destination[]> {
  return await Promise.all(settings.addresses.map(async ({ text, host, port }) => {
    try {
      return { host: await resolveIPv4(host), port };
    } catch (error) {
      throw new UsageError(`--address '${text}': ${(error as Error).message}`);
    }
  }));
}

async function openTransport(settings: AgentSettings, adapter: ReturnType<typeof defaultAdapter>): Promise<UdpTransport> {
  const open = await loadAdapter(adapter);
  try {
    return await open({ ttl: settings.ttl, loopback: true, interfaceAddress: settings.interfaceAddress });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (settings.interfaceAddress && (code === "EADDRNOTAVAIL" || /cannot assign/i.test(String(error)))) {
      throw new UsageError(`--interface '${settings.interfaceAddress}': no local interface has this address`);
    }
    throw new RuntimeFailure(`cannot open a UDP socket (${adapter} adapter): ${(error as Error).message}`);
  }
}

function describeTransport(transport: UdpTransport, settings: AgentSettings): string {
  if (transport.adapter === "print") return "dry run: printing, not sending";
  const via = settings.interfaceAddress ? `, interface ${settings.interfaceAddress}` : "";
  return `${transport.adapter} adapter, ttl ${settings.ttl}${via}`;
}

/** A failure at run time that the user should see as one line, with exit status 1. */
class RuntimeFailure extends Error {}

async function runFromCommandLine(): Promise<never> {
  let status: number;
  try {
    status = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`heartbeat: internal error, please report it: ${(error as Error)?.stack ?? error}\n`);
    status = EXIT_FAILURE;
  }
  process.exit(status);
}

if (import.meta.main) await runFromCommandLine();
