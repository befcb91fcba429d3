/**
 * The agent (`heartbeat` with no command word): sends a heartbeat every interval until SIGTERM
 * or SIGINT, then a farewell ready=0; rereads its configuration on SIGHUP, keeping the running
 * one when the new one is broken; drains and undrains on the signals signals.ts names.
 */
import { isIP } from "node:net";
import { familyOf, formatDestination } from "../address.ts";
import { type Agent, type AgentOptions, createAgent } from "../agent.ts";
import { type Invocation, UsageError } from "../cli.ts";
import type { Load } from "../codec.ts";
import { describeError, listenFailure } from "../errors.ts";
import { createLogger, type Logger, ProblemLog } from "../log.ts";
import { runtimeVersion } from "../runtime.ts";
import type { AddressSetting, Resolved, Settings } from "../settings.ts";
import {
  Drain,
  DRAIN_FILE_POLL_MS,
  DRAIN_REPEAT_MS,
  drainFileExists,
  rampShare,
  shapeLoad,
} from "../shaping.ts";
import { drainSignals } from "../signals.ts";
import { sign } from "../signing.ts";
import { type CombinedSource, combineSources, type SourceReading } from "../sources/combined.ts";
import { createListedSource, createSources } from "../sources/index.ts";
import { createHttpSender } from "../senders/http-post.ts";
import { createPrintSender } from "../senders/print.ts";
import { createResolvingSender } from "../senders/resolving.ts";
import { SourceAddresses } from "../senders/source-address.ts";
import type { Sender } from "../senders/sender.ts";
import type { AdapterName, UdpTransport } from "../transport/transport.ts";
import { serveAgentHttp } from "../agent-http.ts";
import { serveAgentCheck } from "../haproxy/agent-check.ts";
import { AgentStatus, type Listener } from "../status.ts";
import {
  AGENT_CHECK_BOUNDS,
  type ConnectionBounds,
  ConnectionLimits,
  HTTP_BOUNDS,
} from "../connection-limits.ts";
import { bakedBuild, VERSION } from "../version.ts";
import {
  type Check,
  chooseAdapter,
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  keyFrom,
  requireBindablePort,
  resolveDestinations,
  RuntimeFailure,
} from "./context.ts";

/** What one configuration runs with. */
interface Prepared {
  settings: Settings;
  logger: Logger;
  lasting: Lasting;
  options: Omit<AgentOptions, "signal">;
  /** The source the agent reads, with each of the sources it combines. */
  sources: CombinedSource;
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

/**
 * What a start of the agent checks before it opens anything; `-t` runs them all. prepare()
 * makes the same calls, in the same order.
 */
export function agentChecks(settings: Settings, logger: Logger): Check[] {
  return [
    { key: "addresses", run: () => requireDestination(settings) },
    ...settings.source.map((_, item): Check => ({
      key: "source",
      item,
      run: () => createListedSource(settings.source, item, settings),
    })),
    { key: "runtimeAdapter", run: () => chooseAdapter(settings) },
    { key: "addresses", run: () => resolveDestinations(udpAddresses(settings)) },
    { key: "keyFile", run: () => settings.keyFile && keyFrom(settings.keyFile, logger) },
    { key: "http", run: () => settings.http && requireBindablePort(settings.http, "--http") },
    {
      key: "agentCheck",
      run: () => settings.agentCheck && requireBindablePort(settings.agentCheck, "--agent-check"),
    },
  ];
}

function requireDestination(settings: Settings): void {
  // An agent may serve HAProxy's agent-check only.
  if (settings.addresses.length === 0 && !settings.agentCheck) {
    throw new UsageError(
      "no destination: give --address HOST:PORT (or HeartbeatAddress in a config file, or HEARTBEAT_ADDRESS)",
    );
  }
}

function udpAddresses(settings: Settings) {
  return settings.addresses.flatMap((address) => address.kind === "udp" ? [address] : []);
}

/** Everything a configuration needs, built before anything is stopped: reloads can fail safely. */
async function prepare(
  settings: Settings,
  invocation: Invocation,
  context: CommandContext,
  lasting?: Lasting,
): Promise<Prepared> {
  const { io, clock } = context;
  requireDestination(settings);
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const source = combineSources(await createSources(settings.source, settings), {
    smoothSeconds: settings.smoothSeconds,
    now: () => clock.now(),
  });
  // Only static reads them (auto chooses static when --ready is given): elsewhere a mistake.
  const fixedCounts = settings.ready !== undefined || settings.busy !== undefined;
  if (fixedCounts && !settings.source.some((spec) => spec === "static" || spec === "auto")) {
    logger.warn(
      `--ready and --busy are ignored: only --source static reads them, and the source is ${
        settings.source.join(", ")
      }`,
    );
  }
  const adapter = chooseAdapter(settings);
  const udp = await resolveDestinations(udpAddresses(settings));
  const resolveIntervalMs = settings.resolveIntervalSeconds * 1000;
  const http = settings.addresses.flatMap((address) =>
    address.kind === "http" ? [address.url] : []
  );
  const intervalMs = settings.intervalSeconds * 1000;
  const { drain, startedAt } = lasting ??= {
    drain: new Drain(logger, () => clock.now()),
    startedAt: clock.now(),
  };
  const base = { settings, logger, lasting, sources: source };
  const shaping = {
    minBusy: settings.minBusy,
    rampUpSeconds: settings.rampUpSeconds,
    startedAt,
    now: () => clock.now(),
  };
  const shape = (load: Load) =>
    shapeLoad(load, {
      ...shaping,
      draining: () => drain.draining(settings.drainFile),
      announce: () => drain.announce(),
      resumedAt: () => drain.resumedAt(),
    });
  const agent = {
    source,
    port: settings.port,
    intervalMs,
    logger,
    clock,
    shape,
  };
  const signer = sealer(settings, logger, () => clock.now());

  if (invocation.dryRun) {
    const senders = [
      ...udp.flatMap(({ port, zone, addresses }) =>
        addresses.map((address) =>
          sealed(
            createPrintSender(formatDestination({ host: address, port, zone }), io.stdout),
            signer,
            { host: address, zone },
          )
        )
      ),
      ...http.map((url) => sealed(createPrintSender(url.href, io.stdout), signer, httpHost(url))),
    ];
    return {
      ...base,
      options: { ...agent, senders },
      via: "dry run: printing, not sending",
      close: () => Promise.resolve(),
    };
  }
  const transports = transportPool(async (family) => {
    const transport = await openTransport(settings, adapter, family, context);
    return signer ? sealing(transport, signer) : transport;
  });
  // Open at start the sockets the addresses known now need, so that mistakes show at once.
  await Promise.all(
    [...new Set(udp.flatMap(({ addresses }) => addresses.map(familyOf)))].map(transports.get),
  );
  const httpSenders = http.map((url) =>
    createHttpSender(url, {
      timeoutMs: Math.min(HTTP_TIMEOUT_MS, intervalMs),
      now: () => clock.now(),
    })
  );
  const senders: Sender[] = [
    ...udp.map((destination): Sender => {
      if (!isIP(destination.host)) {
        return createResolvingSender(destination.host, destination.port, transports.get, {
          addresses: destination.addresses,
          resolveIntervalMs,
          now: () => clock.now(),
          logger,
        });
      }
      const family = familyOf(destination.host); // once, not an address regex every heartbeat
      return {
        name: formatDestination(destination),
        send: async (payload) => (await transports.get(family)).send(payload, destination),
      };
    }),
    ...httpSenders.map((sender, i) => sealed(sender, signer, httpHost(http[i]))),
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

/**
 * Signs heartbeats with --key-file's key, if there is one, each bound to the address its
 * destination will see it come from (SourceAddresses: by route, learned per destination, and
 * again now and then) and numbered, so that the monitor takes each once and only from there.
 */
interface Sealer {
  /** `payload` signed for `to` (no `from=` where the source address is not known). */
  seal(payload: Uint8Array, to?: { host: string; zone?: string }): Promise<Uint8Array>;
  /** A send to `to` failed: its source address is learned again. */
  failed(to: { host: string; zone?: string }): void;
}

function sealer(settings: Settings, logger: Logger, now: () => number): Sealer | undefined {
  if (!settings.keyFile) return undefined;
  const key = keyFrom(settings.keyFile, logger);
  const sources = new SourceAddresses({ now, boundIPv4: settings.interfaceAddress });
  let seq = Math.floor(Math.random() * 2 ** 31);
  return {
    async seal(payload, to) {
      const from = to && await sources.toward(to);
      const message = Buffer.from(payload).toString("latin1");
      return Buffer.from(
        sign(message, key, Math.floor(Date.now() / 1000), { from, seq: seq++ }),
        "latin1",
      );
    },
    failed: (to) => sources.forget(to),
  };
}

/** `transport`, each datagram signed for its destination by `sealer`. */
function sealing(transport: UdpTransport, sealer: Sealer): UdpTransport {
  return {
    adapter: transport.adapter,
    close: () => transport.close(),
    send: async (payload, to) => {
      try {
        await transport.send(await sealer.seal(payload, to), to);
      } catch (error) {
        sealer.failed(to);
        throw error;
      }
    },
  };
}

/** `sender`, each heartbeat signed for `to` by `sealer`, if there is one. */
function sealed(
  sender: Sender,
  sealer: Sealer | undefined,
  to?: { host: string; zone?: string },
): Sender {
  return sealer
    ? { name: sender.name, send: async (payload) => sender.send(await sealer.seal(payload, to)) }
    : sender;
}

/** An HTTP destination's address, when its URL names one: a host name's is not known here. */
function httpHost(url: URL): { host: string } | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return isIP(host) ? { host } : undefined;
}

/** How long a proxy may take to answer a POSTed heartbeat (at most the interval). */
const HTTP_TIMEOUT_MS = 2000;

/**
 * Runs the agent with `resolved` until a signal stops it, with what `load` reads on SIGHUP;
 * resolves to the exit status.
 */
export async function runAgent(
  resolved: Resolved,
  load: () => Resolved,
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { drain, undrain } = drainSignals();
  // Listened for before the start's slow part (a source that probes, a name to look up): a drain
  // or a stop then waits for the agent to act on it, where on Bun its default action would kill
  // the process. --once acts on none.
  const signals = invocation.once ? undefined : context.signals(
    ["SIGINT", "SIGTERM", "SIGHUP", ...drain, ...undrain],
    createLogger({ level: resolved.settings.logLevel, write: context.io.stderr }),
  );
  let active: Prepared;
  try {
    active = await prepare(resolved.settings, invocation, context);
  } catch (error) {
    signals?.close();
    throw error;
  }
  if (!signals) {
    // Say what went where: --once is run by hand, or by scripts that log what they did.
    const sent: string[] = [];
    let payload = "";
    const senders = active.options.senders.map((sender) => ({
      name: sender.name,
      send: async (bytes: Uint8Array) => {
        await sender.send(bytes);
        payload = new TextDecoder().decode(bytes);
        sent.push(sender.name);
      },
    }));
    try {
      const reached = await createAgent({
        ...active.options,
        senders,
        signal: new AbortController().signal,
      }).beat();
      if (sent.length && !invocation.dryRun) {
        active.logger.info(`sent ${payload} to ${sent.join(", ")}`);
      }
      const readings = active.sources.readings();
      if (invocation.dryRun && readings.length > 1) {
        readingLines(readings).forEach(context.io.stdout);
      }
      return reached ? EXIT_OK : EXIT_FAILURE;
    } finally {
      await active.close();
    }
  }
  // For those who ask (HAProxy's agent-check, /healthz, /metrics), across reloads.
  const status = new AgentStatus({
    now: () => context.clock.now(),
    intervalMs: () => active.settings.intervalSeconds * 1000,
    draining: () => active.lasting.drain.draining(active.settings.drainFile),
    sources: () => active.sources.readings(),
    ramp: () =>
      rampShare({
        rampUpSeconds: active.settings.rampUpSeconds,
        startedAt: active.lasting.startedAt,
        resumedAt: () => active.lasting.drain.resumedAt(),
        now: () => context.clock.now(),
      }),
  });
  const services = await serve(active.settings, status, active.logger, () => context.clock.now());
  // Ends every drain-file watch at once, whatever happens (a start's watch ends with its run).
  const watching = new AbortController();
  let watchingDrainFile = Promise.resolve();
  try {
    let running = start(active, status);
    // A drain or its end is said at once, not at the next tick: every second counts while the
    // proxies drop it. A drain's second announcement follows soon too, so that the balancer's
    // 10 s of silence start counting almost at once (the next tick, if it comes first, makes it
    // the second).
    const sayAtOnce = (draining: boolean) => {
      const { agent, stopped } = running;
      void agent.beat().then(async () => {
        if (!draining) return;
        await context.clock.sleep(DRAIN_REPEAT_MS, stopped);
        if (!stopped.aborted) await agent.beat();
      });
    };
    // The drain file is looked for between ticks too (a stat), for as long as a run has one:
    // without one, waking five times a second for nothing nearly doubled an idle agent's CPU.
    const watchDrainFile = (file: string | undefined, stopped: AbortSignal) =>
      file === undefined ? Promise.resolve() : (async () => {
        const ended = AbortSignal.any([stopped, watching.signal]);
        let present = drainFileExists(file);
        while (!ended.aborted) {
          await context.clock.sleep(DRAIN_FILE_POLL_MS, ended);
          const now = drainFileExists(file);
          if (now !== present && !ended.aborted) sayAtOnce(now);
          present = now;
        }
      })();
    watchingDrainFile = watchDrainFile(active.settings.drainFile, running.stopped);
    for (;;) {
      const signal = await signals.next();
      if (drain.includes(signal) || undrain.includes(signal)) {
        const draining = drain.includes(signal);
        active.lasting.drain.set(draining, signal);
        sayAtOnce(draining);
        continue;
      }
      if (signal !== "SIGHUP") {
        active.logger.info(`stopping on ${signal}: telling the proxies ready=0`);
        watching.abort(); // nothing after the farewell
        await running.stop();
        await running.agent.farewell();
        break;
      }
      const next = await reload(load, invocation, context, active);
      if (next) {
        for (const key of ["agentCheck", "http"] as const) {
          if (next.settings[key]?.text !== active.settings[key]?.text) {
            next.logger.warn(
              `reload: ${key === "http" ? "--http" : "--agent-check"} changes at a restart only`,
            );
          }
        }
        await running.stop();
        await watchingDrainFile;
        await active.close();
        active = next;
        running = start(active, status);
        watchingDrainFile = watchDrainFile(active.settings.drainFile, running.stopped);
      }
    }
    active.logger.info("stopped");
    return EXIT_OK;
  } finally {
    watching.abort();
    await watchingDrainFile;
    signals.close();
    await Promise.all(services.map((service) => service.close()));
    await active.close();
  }
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

/** The agent-check and HTTP servers the settings ask for, open. */
async function serve(
  settings: Settings,
  status: AgentStatus,
  logger: Logger,
  now: () => number,
): Promise<{ close(): Promise<void> }[]> {
  const problems = new ProblemLog(logger, { now });
  const limits = (listener: Listener, bounds: ConnectionBounds) =>
    new ConnectionLimits(bounds, (reason, address, detail) => {
      status.connectionsRefused[listener][reason]++;
      problems.fail(
        `${listener} ${reason}`,
        `${listener}: refused a connection from ${address} (${detail}): ${reason}`,
      );
    });
  const services: { close(): Promise<void> }[] = [];
  const open = async (
    what: string,
    address: AddressSetting,
    opening: () => Promise<{ port: number; close(): Promise<void> }>,
  ) => {
    try {
      const service = await opening();
      services.push(service);
      logger.info(`${what} on ${address.host}:${service.port}`);
    } catch (error) {
      await Promise.all(services.map((service) => service.close()));
      throw new RuntimeFailure(
        `cannot listen on ${address.text} for ${what}: ${
          listenFailure(error, { port: address.port, multicast: false })
        }`,
      );
    }
  };
  if (settings.agentCheck) {
    await open(
      "HAProxy agent-check",
      settings.agentCheck,
      () =>
        serveAgentCheck(settings.agentCheck!, status, limits("agent-check", AGENT_CHECK_BOUNDS)),
    );
  }
  if (settings.http) {
    const build = Object.fromEntries(
      Object.entries({ version: VERSION, ...bakedBuild(), runtime: runtimeVersion() })
        .filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    await open(
      "/healthz and /metrics",
      settings.http,
      () => serveAgentHttp(settings.http!, status, build, limits("http", HTTP_BOUNDS)),
    );
  }
  return services;
}

/** Starts the agent; `stop` stops it after the heartbeat under way. */
function start(
  { settings, logger, options, via }: Prepared,
  status: AgentStatus,
): { agent: Agent; stopped: AbortSignal; stop(): Promise<void> } {
  const { source, senders } = options;
  if (settings.intervalSeconds >= 10) {
    logger.warn(
      `interval ${settings.intervalSeconds} s: mod_lbmethod_heartbeat ignores servers ` +
        "silent for 10 s, so this server will drop out of the balancer between heartbeats",
    );
  }
  const chosen = source.chosenBecause ? ` (chosen because ${source.chosenBecause})` : "";
  logger.info(
    `heartbeat ${VERSION} on ${runtimeVersion()}: ` +
      (senders.length
        ? `sending ${source.description}${chosen} to ${
          senders.map((sender) => sender.name).join(", ")
        } ` +
          `every ${settings.intervalSeconds} s (${via})`
        : `reading ${source.description}${chosen} every ${settings.intervalSeconds} s, for those who ask`),
  );
  const abort = new AbortController();
  const agent = createAgent({ ...options, status, signal: abort.signal });
  const running = agent.run();
  return {
    agent,
    stopped: abort.signal,
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
  context: CommandContext,
  running: Prepared,
): Promise<Prepared | undefined> {
  const { logger } = running;
  logger.info("SIGHUP: reading the configuration again");
  const keeping = "the running configuration is kept";
  // Whatever goes wrong while reading or preparing, the running agent goes on.
  try {
    const resolved = load();
    if (resolved.problems.length) {
      resolved.problems.forEach((problem) => logger.error(`reload: ${problem}`));
      logger.error(`reload failed: ${keeping}`);
      return undefined;
    }
    return await prepare(resolved.settings, invocation, context, running.lasting);
  } catch (error) {
    logger.error(`reload failed: ${describeError(error)}; ${keeping}`);
    return undefined;
  }
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
  context: CommandContext,
): Promise<UdpTransport> {
  const { openUdpTransport } = await context.adapter(adapter);
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
      `cannot open a UDP socket (${adapter} adapter): ${describeError(error)}`,
    );
  }
}
