/**
 * heartbeat: mod_heartbeat outside Apache. Entry point for `deno run -A src/main.ts`,
 * `bun src/main.ts` and the compiled binary.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import process from "node:process";
import { type Destination, familyOf, formatDestination, lookupAll } from "./address.ts";
import type { Load } from "./codec.ts";
import { type Agent, type AgentOptions, createAgent } from "./agent.ts";
import { type Invocation, parseCommandLine, USAGE, UsageError } from "./cli.ts";
import { configFileOf, loadSettings } from "./config/load.ts";
import { createLogger, type Logger } from "./log.ts";
import { runMonitor } from "./monitor/monitor.ts";
import { BALANCER_MAX_LASTSEEN, balancerShares, parseStorage } from "./monitor/storage.ts";
import { formatColumns } from "./columns.ts";
import { allowOptimizingJit, runtimeVersion } from "./runtime.ts";
import { systemClock } from "./scheduler.ts";
import { VERSION, versionLine } from "./version.ts";
import { type AddressSetting, describeSettings, type Resolved, type Settings } from "./settings.ts";
import { Drain, shapeLoad } from "./shaping.ts";
import { drainSignals, processSignals, type SignalName } from "./signals.ts";
import { readKeyFile, sign, SignatureCheck } from "./signing.ts";
import { createSource } from "./sources/index.ts";
import { SourceConfigError } from "./sources/source.ts";
import { adapterUnavailable, defaultAdapter, loadAdapter } from "./transport/index.ts";
import { createHttpSender } from "./transport/http.ts";
import { createResolvingSender } from "./transport/resolving.ts";
import { createPrintSender } from "./transport/print.ts";
import type { AdapterName, Sender, UdpTransport } from "./transport/transport.ts";

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

const HINT = "Try 'heartbeat --help' for the options.";

/** Runs the command line `argv`; resolves to the exit status. */
export async function main(
  argv: string[],
  io: MainIO = processIO,
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  try {
    const command = parseCommandLine(argv);
    switch (command.kind) {
      case "help":
        io.stdout(USAGE.trimEnd());
        return EXIT_OK;
      case "version":
        io.stdout(versionLine());
        return EXIT_OK;
      case "servers":
        return showServers(command.file, io);
    }
    const { invocation } = command;
    const configFile = configFileOf(invocation.configFile, env);
    const load = () => loadSettings({ flags: invocation.flags, env, configFile });
    const resolved = load();
    if (invocation.testConfig) {
      resolved.problems.forEach((problem) => io.stderr(problem));
      if (resolved.problems.length) return EXIT_USAGE;
      io.stdout("Syntax OK");
      return EXIT_OK;
    }
    if (resolved.problems.length) {
      resolved.problems.forEach((problem) => io.stderr(`heartbeat: ${problem}`));
      io.stderr(HINT);
      return EXIT_USAGE;
    }
    if (invocation.printConfig) {
      io.stdout(describeSettings(resolved));
      return EXIT_OK;
    }
    return command.mode === "monitor"
      ? await monitor(resolved.settings, invocation, io)
      : await run(resolved, invocation, io, load);
  } catch (error) {
    if (error instanceof UsageError || error instanceof SourceConfigError) {
      io.stderr(`heartbeat: ${error.message}`);
      io.stderr(HINT);
      return EXIT_USAGE;
    }
    if (error instanceof RuntimeFailure) {
      io.stderr(`heartbeat: ${error.message}`);
      return EXIT_FAILURE;
    }
    throw error;
  }
}

/** What one configuration runs with. */
interface Prepared {
  settings: Settings;
  logger: Logger;
  lasting: Lasting;
  options: Omit<AgentOptions, "signal">;
  /** How heartbeats go out, for the startup line. */
  via: string;
  /** Closes the sockets it opened. */
  close(): Promise<void>;
}

/** What outlives a reload: the drain state, and when the agent started (for --ramp-up). */
interface Lasting {
  drain: Drain;
  startedAt: number;
}

/** Everything a configuration needs, built before anything is stopped: reloads can fail safely. */
async function prepare(
  settings: Settings,
  invocation: Invocation,
  io: MainIO,
  lasting?: Lasting,
): Promise<Prepared> {
  if (settings.addresses.length === 0) {
    throw new UsageError(
      "no destination: give --address HOST:PORT (or HeartbeatAddress in a config file, or HEARTBEAT_ADDRESS)",
    );
  }
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const source = await createSource(settings.source, settings);
  const adapter = chooseAdapter(settings);
  const udp = await resolveDestinations(
    settings.addresses.filter((address) => address.kind === "udp"),
  );
  const resolveIntervalMs = (settings.resolveIntervalSeconds ?? DEFAULT_RESOLVE_INTERVAL) * 1000;
  const http = settings.addresses.flatMap((address) =>
    address.kind === "http" ? [address.url] : []
  );
  const intervalMs = settings.intervalSeconds * 1000;
  const { drain, startedAt } = lasting ??= {
    drain: new Drain(logger),
    startedAt: systemClock.now(),
  };
  const base = { settings, logger, lasting };
  const shaping = {
    minBusy: settings.minBusy,
    rampUpSeconds: settings.rampUpSeconds,
    startedAt,
    now: () => systemClock.now(),
  };
  const shape = (load: Load) =>
    shapeLoad(load, { ...shaping, draining: () => drain.draining(settings.drainFile) });
  const agent = {
    source,
    port: settings.port,
    intervalMs,
    logger,
    clock: systemClock,
    shape,
    seal: sealer(settings, logger),
  };

  if (invocation.dryRun) {
    const senders = [
      ...udp.flatMap(({ port, zone, addresses }) =>
        addresses.map((address) => formatDestination({ host: address, port, zone }))
      ),
      ...http.map((url) => url.href),
    ]
      .map((name) => createPrintSender(name, io.stdout));
    return {
      ...base,
      options: { ...agent, senders },
      via: "dry run: printing, not sending",
      close: () => Promise.resolve(),
    };
  }
  const transports = transportPool((family) => openTransport(settings, adapter, family));
  // Open at start the sockets the addresses known now need, so that mistakes show at once.
  await Promise.all(
    [...new Set(udp.flatMap(({ addresses }) => addresses.map(familyOf)))].map(transports.get),
  );
  const httpSenders = http.map((url) =>
    createHttpSender(url, {
      timeoutMs: Math.min(HTTP_TIMEOUT_MS, intervalMs),
      now: () => systemClock.now(),
    })
  );
  const senders: Sender[] = [
    ...udp.map((destination) =>
      isIP(destination.host)
        ? {
          name: formatDestination(destination),
          send: async (payload: Uint8Array) =>
            (await transports.get(familyOf(destination.host))).send(payload, destination),
        }
        : createResolvingSender(destination.host, destination.port, transports.get, {
          addresses: destination.addresses,
          resolveIntervalMs,
          now: () => systemClock.now(),
          logger,
        })
    ),
    ...httpSenders,
  ];
  const via = [
    udp.length
      ? `udp: ${adapter} adapter, ttl ${settings.ttl}${
        settings.interfaceAddress ? `, interface ${settings.interfaceAddress}` : ""
      }`
      : undefined,
    httpSenders.length ? "http: POST" : undefined,
  ].filter(Boolean).join("; ");
  return {
    ...base,
    options: { ...agent, senders },
    via,
    close: async () => {
      httpSenders.forEach((sender) => sender.close());
      await transports.close();
    },
  };
}

/** Signs messages with --key-file's key, if there is one. */
function sealer(settings: Settings, logger: Logger): ((message: string) => string) | undefined {
  if (!settings.keyFile) return undefined;
  const key = keyFrom(settings.keyFile, logger);
  return (message) => sign(message, key, Math.floor(Date.now() / 1000));
}

/** The key in --key-file; a key file others can read is logged as a warning. */
function keyFrom(path: string, logger: Logger): Buffer {
  let read: ReturnType<typeof readKeyFile>;
  try {
    read = readKeyFile(path);
  } catch (error) {
    throw new UsageError(`--key-file: ${(error as Error).message}`);
  }
  if (read.warning) logger.warn(read.warning);
  return read.key;
}

/** --runtime-adapter, or the runtime's own; a usage error where it cannot run. */
function chooseAdapter(settings: Settings): AdapterName {
  const adapter = settings.runtimeAdapter ?? defaultAdapter();
  const unavailable = adapterUnavailable(adapter);
  if (unavailable) throw new UsageError(`--runtime-adapter ${adapter}: ${unavailable}`);
  return adapter;
}

/** How long a proxy may take to answer a POSTed heartbeat (at most the interval). */
const HTTP_TIMEOUT_MS = 2000;

async function run(
  resolved: Resolved,
  invocation: Invocation,
  io: MainIO,
  load: () => Resolved,
): Promise<number> {
  let active = await prepare(resolved.settings, invocation, io);
  if (invocation.once) {
    try {
      return await createAgent({ ...active.options, signal: new AbortController().signal }).beat()
        ? EXIT_OK
        : EXIT_FAILURE;
    } finally {
      await active.close();
    }
  }
  const { drain, undrain } = drainSignals();
  const signals = processSignals(
    ["SIGINT", "SIGTERM", "SIGHUP", ...drain, ...undrain],
    active.logger,
  );
  try {
    let running = start(active);
    for (;;) {
      const signal = await signals.next();
      if (drain.includes(signal) || undrain.includes(signal)) {
        active.lasting.drain.set(drain.includes(signal), signal);
        continue;
      }
      if (signal !== "SIGHUP") {
        active.logger.info(`stopping on ${signal}: telling the proxies ready=0`);
        await running.stop();
        await running.agent.farewell();
        break;
      }
      const next = await reload(load, invocation, io, active);
      if (next) {
        await running.stop();
        await active.close();
        active = next;
        running = start(active);
      }
    }
    active.logger.info("stopped");
    return EXIT_OK;
  } finally {
    signals.close();
    await active.close();
  }
}

/** Starts the agent; `stop` stops it after the heartbeat under way. */
function start(
  { settings, logger, options, via }: Prepared,
): { agent: Agent; stop(): Promise<void> } {
  const { source, senders } = options;
  if (settings.intervalSeconds >= 10) {
    logger.warn(
      `interval ${settings.intervalSeconds} s: mod_lbmethod_heartbeat ignores servers ` +
        "silent for 10 s, so this server will drop out of the balancer between heartbeats",
    );
  }
  const chosen = source.chosenBecause ? ` (chosen because ${source.chosenBecause})` : "";
  logger.info(
    `heartbeat ${VERSION} on ${runtimeVersion()}: sending ${source.description}${chosen} to ` +
      `${
        senders.map((sender) => sender.name).join(", ")
      } every ${settings.intervalSeconds} s (${via})`,
  );
  const abort = new AbortController();
  const agent = createAgent({ ...options, signal: abort.signal });
  const running = agent.run();
  return {
    agent,
    stop: async () => {
      abort.abort();
      await running;
    },
  };
}

/** The configuration read again, ready to run; undefined, with the reason logged, if it is broken. */
async function reload(
  load: () => Resolved,
  invocation: Invocation,
  io: MainIO,
  running: Prepared,
): Promise<Prepared | undefined> {
  const { logger } = running;
  logger.info("SIGHUP: reading the configuration again");
  const resolved = load();
  const keeping = "the running configuration is kept";
  if (resolved.problems.length) {
    resolved.problems.forEach((problem) => logger.error(`reload: ${problem}`));
    logger.error(`reload failed: ${keeping}`);
    return undefined;
  }
  try {
    return await prepare(resolved.settings, invocation, io, running.lasting);
  } catch (error) {
    logger.error(`reload failed: ${(error as Error).message}; ${keeping}`);
    return undefined;
  }
}

/** Servers the monitor holds at most, when HeartbeatMaxServers is 0 or not given. */
export const DEFAULT_MAX_SERVERS = 1000;
/** How old a signed heartbeat may be, in seconds. */
const DEFAULT_SIGNATURE_WINDOW = 30;

/** Signals the monitor has no use for: logged, so that a stray one does not stop it. */
const UNUSED_BY_MONITOR: SignalName[] = ["SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN"];

/** `heartbeat monitor`: runs until SIGINT or SIGTERM. */
async function monitor(settings: Settings, invocation: Invocation, io: MainIO): Promise<number> {
  if (!settings.listen && !settings.http) {
    throw new UsageError(
      "heartbeat monitor needs --listen ADDR:PORT (HeartbeatListen) or --http ADDR:PORT, or both",
    );
  }
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const adapter = chooseAdapter(settings);
  const maxServers = settings.maxServers || DEFAULT_MAX_SERVERS;
  const signatures = settings.keyFile
    ? new SignatureCheck(
      keyFrom(settings.keyFile, logger),
      settings.signatureWindowSeconds ?? DEFAULT_SIGNATURE_WINDOW,
    )
    : undefined;
  const udp = settings.listen
    ? {
      address: (await resolveDestinations([settings.listen], "--listen"))[0].addresses[0],
      port: settings.listen.port,
      interfaceAddress: settings.interfaceAddress,
      zone: settings.listen.zone,
    }
    : undefined;
  const where = [
    udp ? `udp ${udp.address}:${udp.port} (${adapter} adapter)` : undefined,
    settings.http ? `http ${settings.http.text}` : undefined,
  ].filter(Boolean).join(", ");
  const signals = processSignals(["SIGINT", "SIGTERM", "SIGHUP", ...UNUSED_BY_MONITOR], logger);
  const stop = new AbortController();
  allowOptimizingJit();
  const running = runMonitor({
    udp,
    http: settings.http,
    openUdpListener: (await loadAdapter(adapter)).openUdpListener,
    storage: settings.storage,
    maxServers,
    allow: settings.allow ?? [],
    signatures,
    print: invocation.print ? io.stdout : undefined,
    logger,
    clock: systemClock,
    signal: stop.signal,
  });
  running.catch(() => stop.abort());
  logger.info(
    `heartbeat ${VERSION} monitor on ${runtimeVersion()}: listening on ${where}; ` +
      `${
        settings.storage ? `storage ${settings.storage}` : "no storage file"
      }; up to ${maxServers} servers` +
      `${signatures ? "; signed heartbeats only" : ""}`,
  );
  try {
    const stopped = running.then(() => undefined);
    for (;;) {
      const signal = await Promise.race([signals.next(), stopped]);
      if (signal === "SIGHUP") {
        logger.warn(
          "SIGHUP: the monitor does not reload its configuration; restart it to apply changes",
        );
        continue;
      }
      if (signal && UNUSED_BY_MONITOR.includes(signal)) {
        logger.warn(`${signal}: the monitor does not drain; ignored`);
        continue;
      }
      if (signal) logger.info(`stopping on ${signal}`);
      stop.abort();
      break;
    }
    await running;
    logger.info("stopped");
    return EXIT_OK;
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new RuntimeFailure(
      `cannot listen on ${where}: ${
        code === "EADDRINUSE" ? "the address is in use" : (error as Error).message
      }`,
    );
  } finally {
    signals.close();
  }
}

/** `heartbeat servers FILE`: a storage file as the balancer sees it. */
function showServers(file: string, io: MainIO): number {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    io.stderr(`heartbeat: cannot read ${file}: ${(error as Error).message}`);
    return EXIT_FAILURE;
  }
  const shares = balancerShares(parseStorage(text));
  const rows = [
    ["server", "port", "ready", "busy", "age", "weight", "share"],
    ...shares.map((server) => [
      server.ip,
      String(server.port),
      String(server.ready),
      String(server.busy),
      server.lastseen < 0
        ? "?"
        : `${server.lastseen} s${server.lastseen >= BALANCER_MAX_LASTSEEN ? " (too old)" : ""}`,
      `${server.weight}${
        server.busy === 0 && server.ready !== 0 && server.lastseen < BALANCER_MAX_LASTSEEN
          ? " (ready/4)"
          : ""
      }`,
      `${(server.share * 100).toFixed(1)}%`,
    ]),
  ];
  io.stdout(formatColumns(rows));
  if (shares.length === 0) io.stdout(`(no servers in ${file})`);
  return EXIT_OK;
}

/** How often host names in --address are looked up again, in seconds. */
const DEFAULT_RESOLVE_INTERVAL = 30;

/** Each destination with the addresses its host stands for now; a name that resolves to nothing is a usage error. */
async function resolveDestinations(
  destinations: AddressSetting[],
  flag = "--address",
): Promise<(Destination & { addresses: string[] })[]> {
  return await Promise.all(destinations.map(async ({ text, host, port, zone }) => {
    try {
      return { host, port, zone, addresses: await lookupAll(host) };
    } catch (error) {
      throw new UsageError(
        `${flag} '${text}': cannot find an address for '${host}' (${
          (error as { code?: string }).code ?? (error as Error).message
        })`,
      );
    }
  }));
}

/** One UDP socket per address family, each opened when first needed; a failed open is tried again next time. */
function transportPool(open: (family: 4 | 6) => Promise<UdpTransport>) {
  const opened = new Map<4 | 6, Promise<UdpTransport>>();
  return {
    get: (family: 4 | 6): Promise<UdpTransport> => {
      let transport = opened.get(family);
      if (!transport) {
        transport = open(family);
        opened.set(family, transport);
        transport.catch(() => opened.delete(family));
      }
      return transport;
    },
    close: async () => {
      for (const transport of opened.values()) {
        await (await transport.catch(() => undefined))?.close();
      }
    },
  };
}

async function openTransport(
  settings: Settings,
  adapter: AdapterName,
  family: 4 | 6,
): Promise<UdpTransport> {
  const { openUdpTransport } = await loadAdapter(adapter);
  try {
    return await openUdpTransport({
      family,
      ttl: settings.ttl,
      loopback: true,
      interfaceAddress: settings.interfaceAddress,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (
      settings.interfaceAddress &&
      (code === "EADDRNOTAVAIL" || /cannot assign/i.test(String(error)))
    ) {
      throw new UsageError(
        `--interface '${settings.interfaceAddress}': no local interface has this address`,
      );
    }
    throw new RuntimeFailure(
      `cannot open a UDP socket (${adapter} adapter): ${(error as Error).message}`,
    );
  }
}

/** A failure at run time that the user should see as one line, with exit status 1. */
class RuntimeFailure extends Error {}

async function runFromCommandLine(): Promise<never> {
  let status: number;
  try {
    status = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(
      `heartbeat: internal error, please report it: ${(error as Error)?.stack ?? error}\n`,
    );
    status = EXIT_FAILURE;
  }
  process.exit(status);
}

if (import.meta.main) await runFromCommandLine();
