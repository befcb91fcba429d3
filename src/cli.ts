/** Command-line flags: one parseArgs spec, the usage text, and their checks. */
import { isIPv4 } from "node:net";
import { parseArgs } from "node:util";
import { parseAddress } from "./address.ts";
import type { LogLevel } from "./log.ts";
import { SOURCES } from "./sources/index.ts";
import { ADAPTERS, type AdapterName } from "./transport/transport.ts";

export const USAGE = `heartbeat: tells Apache load balancers how much spare capacity this server has.

Usage:
  heartbeat --address HOST:PORT [options]

It sends "v=1&ready=N&busy=M" by UDP every second, as Apache's mod_heartbeat does, to
proxies running mod_heartmonitor and mod_lbmethod_heartbeat (ProxyPass ... lbmethod=heartbeat).

Where to send:
  -a, --address HOST:PORT   multicast group or host to send to, e.g. 239.0.0.1:27999 (required;
                            repeat it to send every heartbeat to several destinations)
      --interface ADDR      IPv4 address of the interface multicast leaves by (default: the
                            route to the group); also the source address of the heartbeats
      --ttl N               multicast time-to-live, 0-255 (default 1: this network only, as
                            mod_heartbeat)
      --port N              add "port=N": the port the proxy should use for this server
                            (mod_heartmonitor assumes 80 without it)

What to send:
      --source NAME[:ARG]   where ready/busy come from (default: auto). Sources:
${Object.entries(SOURCES).map(([name, source]) => `                              ${name}: ${source.summary}`).join("\n")}
      --ready N             idle worker slots, for --source static
      --busy N              slots serving a request, for --source static (default 0)
      --capacity N          connections the server can serve at once, for nginx and tcp:
                            they report ready = capacity - connections in use
      --max-age SECONDS     for --source file: older than this, the file is no data (default 10)
      --proc-root DIR       where /proc is, for --source tcp (default /proc)

When to send:
      --interval SECONDS    time between heartbeats, fractions allowed (default 1)
      --once                send one heartbeat and exit: 0 if it reached every destination

Other:
      --dry-run             print "DEST PAYLOAD" for each heartbeat instead of sending it
      --runtime-adapter A   UDP implementation: deno, bun or node (default: the runtime's own)
  -v, --verbose             log every heartbeat
  -q, --quiet               log only errors
  -h, --help                show this text
  -V, --version             show the version, runtime and platform

Examples:
  heartbeat --address 239.0.0.1:27999 --source static --ready 10
  heartbeat --address 239.0.0.1:27999 --source apache:http://127.0.0.1:8080/server-status?auto
  heartbeat --address 239.0.0.1:27999 --source nginx --capacity 512
  heartbeat -a 239.0.0.1:27999 -a 10.0.0.5:27999 --ttl 2 --port 8080 --ready 50 --busy 3
  heartbeat --address 239.0.0.1:27999 --ready 10 --dry-run --once

Exit status: 0 stopped cleanly (or --once sent), 1 runtime failure, 2 usage or config error.
`;

const OPTIONS = {
  address: { type: "string", short: "a", multiple: true },
  interface: { type: "string" },
  ttl: { type: "string" },
  port: { type: "string" },
  source: { type: "string" },
  ready: { type: "string" },
  busy: { type: "string" },
  capacity: { type: "string" },
  "max-age": { type: "string" },
  "proc-root": { type: "string" },
  interval: { type: "string" },
  once: { type: "boolean" },
  "dry-run": { type: "boolean" },
  "runtime-adapter": { type: "string" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** A mistake in how the agent was invoked: exit status 2, message and a pointer to --help. */
export class UsageError extends Error {}

export interface AgentSettings {
  /** Destinations as given (HOST may still be a name to look up). */
  addresses: { text: string; host: string; port: number }[];
  interfaceAddress?: string;
  ttl: number;
  port?: number;
  source: string;
  ready?: number;
  busy?: number;
  capacity?: number;
  maxAgeSeconds?: number;
  procRoot?: string;
  intervalSeconds: number;
  once: boolean;
  dryRun: boolean;
  runtimeAdapter?: AdapterName;
  logLevel: LogLevel;
}

export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; settings: AgentSettings };

/** What the command line asks for; throws UsageError with a message saying what to fix. */
export function parseCommandLine(argv: string[]): Command {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(parseArgsMessage(error));
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (values.verbose && values.quiet) throw new UsageError("--verbose and --quiet cannot be used together");

  const texts = values.address ?? [];
  if (texts.length === 0) throw new UsageError("--address is required, e.g. --address 239.0.0.1:27999");
  const addresses = texts.map((text) => {
    const parsed = parseAddress(text);
    if (!parsed.ok) throw new UsageError(`--address '${text}': ${parsed.error}`);
    return { text, host: parsed.host, port: parsed.port };
  });

  if (values.interface !== undefined && !isIPv4(values.interface)) {
    throw new UsageError(`--interface '${values.interface}': give the IPv4 address of a local interface`);
  }
  const runtimeAdapter = values["runtime-adapter"];
  if (runtimeAdapter !== undefined && !(ADAPTERS as readonly string[]).includes(runtimeAdapter)) {
    throw new UsageError(`--runtime-adapter '${runtimeAdapter}': choose one of ${ADAPTERS.join(", ")}`);
  }

  return {
    kind: "run",
    settings: {
      addresses,
      interfaceAddress: values.interface,
      ttl: optionalInteger("--ttl", values.ttl, 0, 255) ?? 1,
      port: optionalInteger("--port", values.port, 1, 65535),
      source: values.source ?? "auto",
      ready: optionalInteger("--ready", values.ready, 0, 0xffff_ffff),
      busy: optionalInteger("--busy", values.busy, 0, 0xffff_ffff),
      capacity: optionalInteger("--capacity", values.capacity, 0, 0xffff_ffff),
      maxAgeSeconds: values["max-age"] === undefined ? undefined : seconds("--max-age", values["max-age"], 0.01, 86400),
      procRoot: values["proc-root"],
      intervalSeconds: values.interval === undefined ? 1 : seconds("--interval", values.interval, 0.01, 3600),
      once: values.once ?? false,
      dryRun: values["dry-run"] ?? false,
      runtimeAdapter: runtimeAdapter as AdapterName | undefined,
      logLevel: values.verbose ? "debug" : values.quiet ? "error" : "info",
    },
  };
}

function optionalInteger(flag: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new UsageError(`${flag} '${text}': give a whole number from ${min} to ${max}`);
  }
  return value;
}

function seconds(flag: string, text: string, min: number, max: number): number {
  const value = /^[0-9]*\.?[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new UsageError(`${flag} '${text}': give seconds from ${min} to ${max}, e.g. 1 or 0.5`);
  }
  return value;
}

/** parseArgs' errors differ between runtimes; this says the same thing on all of them. */
function parseArgsMessage(error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^' ]+)/.exec(message)?.[1] ?? /(--?[\w-]+)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${option ?? message}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `${/(--[\w-]+)/.exec(message)?.[1] ?? option ?? "an option"} needs a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${/'([^']*)'/.exec(message)?.[0] ?? message}: every setting is a --flag`;
    default:
      return message;
  }
}
