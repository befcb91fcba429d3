/** Command-line flags: one parseArgs spec, built from the settings table, and the usage text. */
import { parseArgs } from "node:util";
import { type Mode, SETTINGS } from "./settings.ts";
import { SOURCES } from "./sources/index.ts";

export const USAGE =
  `heartbeat: tells Apache load balancers how much spare capacity this server has.

Usage:
  heartbeat --address HOST:PORT [options]          send heartbeats (the agent)
  heartbeat -f /etc/apache2/apache2.conf [options]
  heartbeat monitor --listen ADDR:PORT [options]   collect them, as mod_heartmonitor does
  heartbeat servers FILE                           show a storage file as the balancer sees it

It sends "v=1&ready=N&busy=M" by UDP every second, as Apache's mod_heartbeat does, to
proxies running mod_heartmonitor and mod_lbmethod_heartbeat (ProxyPass ... lbmethod=heartbeat).

Where to send:
  -a, --address HOST:PORT   multicast group or host to send to, e.g. 239.0.0.1:27999, or IPv6
                            [ff02::1234%eth0]:27999 (required; repeat it to send every
                            heartbeat to several destinations)
  -a, --address URL         or POST each heartbeat to mod_heartmonitor's "SetHandler heartbeat"
                            location or to 'heartbeat monitor --http', e.g. http://proxy/heartbeat
      --resolve-interval S  look host names in --address up again this often (default 30 s);
                            every address a name resolves to gets each heartbeat
      --interface ADDR      IPv4 address of the interface multicast leaves by (default: the
                            route to the group); also the source address of the heartbeats
      --ttl N               multicast time-to-live, 0-255 (default 1: this network only, as
                            mod_heartbeat)
      --port N              add "port=N": the port the proxy should use for this server
                            (mod_heartmonitor assumes 80 without it)

What to send:
      --source NAME[:ARG]   where ready/busy come from (default: auto). Sources:
${
    Object.entries(SOURCES).map(([name, source]) =>
      `                              ${name}: ${source.summary}`
    ).join("\n")
  }
      --ready N             idle worker slots, for --source static
      --busy N              slots serving a request, for --source static (default 0)
      --capacity N          connections the server can serve at once, for nginx and tcp:
                            they report ready = capacity - connections in use
      --max-age SECONDS     for --source file: older than this, the file is no data (default 10)
      --proc-root DIR       where /proc is, for --source tcp (default /proc)

Shaping what is sent:
      --drain-file PATH     while PATH exists, send ready=0 (so does SIGTTOU, until SIGTTIN;
                            SIGUSR1/SIGUSR2 too on Bun and the binary, not on Deno);
                            on SIGTERM a last ready=0 goes out before the agent exits
      --min-busy N          report busy as at least N (1: no ready/4 cold-start penalty)
      --ramp-up SECONDS     after start, grow the advertised ready from 0 over this time

When to send:
      --interval SECONDS    time between heartbeats, fractions allowed (default 1)
      --once                send one heartbeat and exit: 0 if it reached every destination

Configuration:
  -f, --config FILE         read HeartbeatAddress and the other Heartbeat* directives from an
                            Apache-style config file, Includes and all (also HEARTBEAT_CONFIG)
  -t, --test-config         check the configuration: "Syntax OK", or each error as FILE:LINE
      --print-config        show the effective settings and where each came from
                            Every flag is also a HEARTBEAT_* variable (--max-age:
                            HEARTBEAT_MAX_AGE) and a directive (HeartbeatMaxAge); flags win over
                            variables, variables over the file. SIGHUP rereads the file.

Monitor (heartbeat monitor):
      --listen ADDR:PORT    multicast group to join, or local address to listen on, for UDP
                            heartbeats, e.g. 239.0.0.1:27999 (HeartbeatListen)
      --http ADDR:PORT      also take heartbeats POSTed to /heartbeat, as mod_heartmonitor's
                            "SetHandler heartbeat" does; serves GET /servers and GET /metrics
      --storage FILE        write mod_heartmonitor's storage file, for mod_lbmethod_heartbeat
                            (HeartbeatStorage); rewritten every second
      --max-servers N       servers kept at most; new ones are turned away at the bound
                            (0: the default, 1000; otherwise more than 10, as Apache)
      --allow CIDR          accept heartbeats only from these senders (repeatable)
      --print               print one line per heartbeat received
      --interface ADDR      join the group on this interface

Signing (agent and monitor):
      --key-file FILE       the agent appends "&ts=UNIX&sig=HMAC-SHA256"; the monitor then takes
                            only heartbeats signed with this key, fresh and not replayed
      --signature-window S  monitor: how old a signed heartbeat may be (default 30 s)

Other:
      --dry-run             print "DEST PAYLOAD" for each heartbeat instead of sending it
      --runtime-adapter A   UDP implementation: deno, bun or node (default: the runtime's own)
      --log-level LEVEL     debug, info, warn or error (default info)
  -v, --verbose             log every heartbeat (--log-level debug)
  -q, --quiet               log only errors (--log-level error)
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

/** Flags that say what to do, rather than set a setting. */
const COMMAND_OPTIONS = {
  config: { type: "string", short: "f" },
  "test-config": { type: "boolean", short: "t" },
  "print-config": { type: "boolean" },
  once: { type: "boolean" },
  "dry-run": { type: "boolean" },
  print: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

type OptionSpec = { type: "string" | "boolean"; short?: string; multiple?: boolean };

/** Command flags that belong to one command only. */
const COMMAND_MODES: Record<string, Mode> = { once: "agent", "dry-run": "agent", print: "monitor" };

const OPTIONS: Record<string, OptionSpec> = {
  ...Object.fromEntries(SETTINGS.map((spec) => [
    spec.flag,
    {
      type: "string",
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    },
  ])),
  ...COMMAND_OPTIONS,
};

/** A mistake in how the agent was invoked: exit status 2, message and a pointer to --help. */
export class UsageError extends Error {}

export interface Invocation {
  /** The settings' flags, by long name, not yet checked (settings.ts does that). */
  flags: Record<string, string | string[] | undefined>;
  configFile?: string;
  testConfig: boolean;
  printConfig: boolean;
  once: boolean;
  dryRun: boolean;
  print: boolean;
}

export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; mode: Mode; invocation: Invocation }
  | { kind: "servers"; file: string };

/** What the command line asks for; throws UsageError with a message saying what to fix. */
export function parseCommandLine(argv: string[]): Command {
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    throw new UsageError(parseArgsMessage(error));
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const [command, ...rest] = positionals;
  if (command === "servers") {
    if (rest.length !== 1) {
      throw new UsageError(
        "'heartbeat servers FILE' takes one storage file, e.g. /var/log/apache2/hb.dat",
      );
    }
    return { kind: "servers", file: rest[0] };
  }
  if (command !== undefined && command !== "monitor") {
    throw new UsageError(
      `unexpected argument '${command}': the commands are 'monitor' and 'servers FILE'; every setting is a --flag`,
    );
  }
  if (rest.length) {
    throw new UsageError(`unexpected argument '${rest[0]}': every setting is a --flag`);
  }
  const mode: Mode = command === "monitor" ? "monitor" : "agent";
  const modeOf = (flag: string) =>
    COMMAND_MODES[flag] ?? SETTINGS.find((spec) => spec.flag === flag)?.mode;
  for (const flag of Object.keys(values)) {
    const belongs = modeOf(flag);
    if (belongs && belongs !== mode) {
      throw new UsageError(
        belongs === "monitor"
          ? `--${flag} is for 'heartbeat monitor'`
          : `--${flag} is for the agent, not 'heartbeat monitor'`,
      );
    }
  }
  if (values.verbose && values.quiet) {
    throw new UsageError("--verbose and --quiet cannot be used together");
  }
  const flags: Invocation["flags"] = {};
  for (const spec of SETTINGS) {
    if (spec.flag && values[spec.flag] !== undefined) {
      flags[spec.flag] = values[spec.flag] as string | string[];
    }
  }
  if (values.verbose || values.quiet) {
    if (flags["log-level"] !== undefined) {
      throw new UsageError("--log-level cannot be used with --verbose or --quiet");
    }
    flags["log-level"] = values.verbose ? "debug" : "error";
  }
  return {
    kind: "run",
    mode,
    invocation: {
      flags,
      configFile: values.config as string | undefined,
      testConfig: values["test-config"] === true,
      printConfig: values["print-config"] === true,
      once: values.once === true,
      dryRun: values["dry-run"] === true,
      print: values.print === true,
    },
  };
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
    default:
      return message;
  }
}
