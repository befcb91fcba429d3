/**
 * The agent's parts, made from its settings: the source it reads, the shaping of each reading
 * (drain, ramp-up, minimum busy), the signer, one UDP socket per address family and a sender per
 * destination. Wiring only: src/commands/agent.ts starts, reloads and stops what this builds.
 */
import { isIP } from "node:net";
import { familyOf, formatDestination } from "../address.ts";
import type { AgentOptions } from "../agent/heartbeat.ts";
import { Drain, shapeLoad } from "../agent/shaping.ts";
import { UsageError } from "../cli.ts";
import type { Load } from "../codec.ts";
import { describeError, errorCode } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { runtimeVersion } from "../runtime.ts";
import { type Resolved, rowOf, type SettingNames, type Settings } from "../settings.ts";
import { sign } from "../signing.ts";
import { type CombinedSource, combineSources } from "../sources/combined.ts";
import { createListedSource, createSources } from "../sources/index.ts";
import {
  type AdapterName,
  HopLimitUnsupported,
  type UdpTransport,
} from "../transport/transport.ts";
import { VERSION } from "../version.ts";
import type { CommandContext } from "../commands/context.ts";
import {
  type Check,
  chooseAdapter,
  keyFrom,
  requireBindablePort,
  resolveDestinations,
  RuntimeFailure,
} from "../prerequisites.ts";
import { createHttpSender } from "./http-post.ts";
import { createPrintSender } from "./print.ts";
import { createResolvingSender } from "./resolving.ts";
import type { Sender } from "./sender.ts";
import { SourceAddresses } from "./source-address.ts";

/** What outlives a reload: the drain state, and when the agent started (for --ramp-up). */
export interface Lasting {
  drain: Drain;
  startedAt: number;
}

/** What one configuration of the agent runs with. */
export interface AgentParts {
  settings: Settings;
  /** How messages name its settings (Resolved.names). */
  names: SettingNames;
  logger: Logger;
  lasting: Lasting;
  options: Omit<AgentOptions, "signal">;
  /** The source the agent reads, with each of the sources it combines. */
  sources: CombinedSource;
  /** What the agent says as it starts: what it reads, where it sends it, and how. */
  startup: string;
  /** Closes the sockets it opened. */
  close(): Promise<void>;
}

/** --address's UDP destinations (the others are HTTP). */
export function udpAddresses(settings: Settings) {
  return settings.addresses.flatMap((address) => address.kind === "udp" ? [address] : []);
}

/**
 * What a start of the agent checks before it opens anything; `-t` runs them all. buildAgent()
 * makes the same calls, in the same order.
 */
export function agentChecks(settings: Settings, names: SettingNames, logger: Logger): Check[] {
  return [
    { key: "addresses", run: () => requireDestination(settings, names) },
    ...settings.source.map((_, item): Check => ({
      key: "source",
      item,
      run: () => createListedSource(settings.source, item, { ...settings, names }),
    })),
    { key: "runtimeAdapter", run: () => chooseAdapter(settings, names) },
    {
      key: "addresses",
      run: () => resolveDestinations(udpAddresses(settings), names("addresses")),
    },
    { key: "keyFile", run: () => settings.keyFile && keyFrom(settings.keyFile, names, logger) },
    {
      key: "http",
      run: () => settings.http && requireBindablePort(settings.http, names("http")),
    },
    {
      key: "agentCheck",
      run: () =>
        settings.agentCheck && requireBindablePort(settings.agentCheck, names("agentCheck")),
    },
  ];
}

function requireDestination(settings: Settings, names: SettingNames): void {
  // An agent may serve HAProxy's agent-check only.
  if (settings.addresses.length === 0 && !settings.agentCheck) {
    const { directive, env } = rowOf("addresses");
    throw new UsageError(
      `no destination: give ${
        names("addresses")
      } HOST:PORT (or ${directive} in a config file, or ${env})`,
    );
  }
}

/**
 * The agent's parts for `resolved`, with `lasting` from the configuration it replaces (a new one
 * at the first start); with `dryRun`, senders that print each heartbeat to stdout. Built before
 * anything running is stopped, so that a reload can fail safely; checks in the order agentChecks
 * lists them.
 */
export async function buildAgent(
  { settings, names }: Pick<Resolved, "settings" | "names">,
  { dryRun, lasting }: { dryRun: boolean; lasting?: Lasting },
  context: CommandContext,
): Promise<AgentParts> {
  const { io, clock } = context;
  requireDestination(settings, names);
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const source = combineSources(await createSources(settings.source, { ...settings, names }), {
    smoothSeconds: settings.smoothSeconds,
    now: () => clock.now(),
  });
  // Only static reads them (auto chooses static when --ready is given): elsewhere a mistake.
  const fixedCounts = settings.ready !== undefined || settings.busy !== undefined;
  if (fixedCounts && !settings.source.some((spec) => spec === "static" || spec === "auto")) {
    logger.warn(
      `${names("ready")} and ${names("busy")} are ignored: only ${
        names("source")
      } static reads them, and the source is ${settings.source.join(", ")}`,
    );
  }
  const adapter = chooseAdapter(settings, names);
  const udp = await resolveDestinations(udpAddresses(settings), names("addresses"));
  const resolveIntervalMs = settings.resolveIntervalSeconds * 1000;
  const http = settings.addresses.flatMap((address) =>
    address.kind === "http" ? [address.url] : []
  );
  const intervalMs = settings.intervalSeconds * 1000;
  const { drain, startedAt } = lasting ??= {
    drain: new Drain(logger, () => clock.now()),
    startedAt: clock.now(),
  };
  const base = { settings, names, logger, lasting, sources: source };
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
  const signer = sealer(settings, names, logger, () => clock.now());

  if (dryRun) {
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
      startup: startupLine(settings, source, senders, "dry run: printing, not sending"),
      close: () => Promise.resolve(),
    };
  }
  const transports = transportPool(async (family) => {
    const transport = await openTransport(settings, names, adapter, family, context);
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
    startup: startupLine(settings, source, senders, via),
    close: async () => {
      httpSenders.forEach((sender) => sender.close());
      await transports.close();
    },
  };
}

function startupLine(
  settings: Settings,
  source: CombinedSource,
  senders: Sender[],
  via: string,
): string {
  const chosen = source.chosenBecause ? ` (chosen because ${source.chosenBecause})` : "";
  return `heartbeat ${VERSION} on ${runtimeVersion()}: ` +
    (senders.length
      ? `sending ${source.description}${chosen} to ${
        senders.map((sender) => sender.name).join(", ")
      } ` +
        `every ${settings.intervalSeconds} s (${via})`
      : `reading ${source.description}${chosen} every ${settings.intervalSeconds} s, for those who ask`);
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

function sealer(
  settings: Settings,
  names: SettingNames,
  logger: Logger,
  now: () => number,
): Sealer | undefined {
  if (!settings.keyFile) return undefined;
  const key = keyFrom(settings.keyFile, names, logger);
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
  names: SettingNames,
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
    if (error instanceof HopLimitUnsupported) {
      throw new RuntimeFailure(`${names("ttl")} ${settings.ttl}: ${error.message}`);
    }
    if (
      settings.interfaceAddress &&
      (errorCode(error) === "EADDRNOTAVAIL" || /cannot assign/i.test(String(error)))
    ) {
      throw new UsageError(
        `${
          names("interfaceAddress")
        } '${settings.interfaceAddress}': no local interface has this address`,
      );
    }
    throw new RuntimeFailure(
      `cannot open a UDP socket (${adapter} adapter): ${describeError(error)}`,
    );
  }
}
