/**
 * The command line: one parseArgs spec, made from the settings table (settings.ts) and the command
 * flags below, and what it asks for. Each command's --help is made from the same rows (help.ts),
 * so that a flag, its help and its checks cannot drift apart.
 */
import { parseArgs } from "node:util";
import { type Command as SettingsCommand, SETTINGS } from "./settings.ts";
import { closest } from "./spelling.ts";

/** What can be asked for: the agent (no command word), `monitor` or `servers`. */
export type CommandName = SettingsCommand | "servers";

/** A flag that says what to do, rather than set a setting. */
interface CommandFlag {
  flag: string;
  short?: string;
  /** With a value: what it looks like. */
  value?: string;
  commands: readonly CommandName[];
  /** For --help (help.ts): the section it is listed in, and its line there. */
  group: string;
  help: string;
}

export const COMMAND_FLAGS: readonly CommandFlag[] = [
  {
    flag: "once",
    commands: ["agent"],
    group: "Shaping what is sent",
    help: "send one heartbeat and exit: 0 if it reached every destination",
  },
  {
    flag: "dry-run",
    commands: ["agent"],
    group: "Other",
    help: 'print "DEST PAYLOAD" for each heartbeat instead of sending it',
  },
  {
    flag: "print",
    commands: ["monitor"],
    group: "What is kept",
    help: "print one line per heartbeat received",
  },
  {
    flag: "balancer",
    value: "NAME",
    commands: ["servers"],
    group: "Configuration",
    help: "with -f: the balancer to show (balancer://NAME), when the config has several",
  },
  {
    flag: "config",
    short: "f",
    value: "FILE",
    commands: ["agent", "monitor", "servers"],
    group: "Configuration",
    help: "read Heartbeat* directives (for servers: the balancers) from an Apache-style file",
  },
  {
    flag: "test-config",
    short: "t",
    commands: ["agent", "monitor"],
    group: "Configuration",
    help: 'check the configuration: "Syntax OK", or each error',
  },
  {
    flag: "print-config",
    commands: ["agent", "monitor"],
    group: "Configuration",
    help: "show the settings in force and where each came from",
  },
  {
    flag: "verbose",
    short: "v",
    commands: ["agent", "monitor"],
    group: "Other",
    help: "log every heartbeat (--log-level debug)",
  },
  {
    flag: "quiet",
    short: "q",
    commands: ["agent", "monitor"],
    group: "Other",
    help: "log only errors (--log-level error)",
  },
  {
    flag: "help",
    short: "h",
    commands: ["agent", "monitor", "servers"],
    group: "Other",
    help: "show this text",
  },
  {
    flag: "version",
    short: "V",
    commands: ["agent", "monitor", "servers"],
    group: "Other",
    help: "show the version, build, runtime and platform",
  },
];

type OptionSpec = { type: "string" | "boolean"; short?: string; multiple?: boolean };

const OPTIONS: Record<string, OptionSpec> = {
  ...Object.fromEntries(SETTINGS.map((spec) => [
    spec.flag,
    {
      type: "string",
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    },
  ])),
  ...Object.fromEntries(COMMAND_FLAGS.map((flag) => [
    flag.flag,
    { type: flag.value ? "string" : "boolean", ...(flag.short ? { short: flag.short } : {}) },
  ])),
};

/** A mistake in how heartbeat was invoked: exit status 2, message and a pointer to --help. */
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
  | { kind: "help"; command: CommandName }
  | { kind: "version" }
  | { kind: "run"; mode: SettingsCommand; invocation: Invocation }
  | { kind: "servers"; file: string; configFile?: string; balancer?: string };

/** What the command line asks for; throws UsageError with a message saying what to fix. */
export function parseCommandLine(argv: string[]): Command {
  argv = withoutLeadingSeparator(argv);
  // `-address`: a long option with one dash, which parseArgs would read as -a "ddress".
  const oneDash = argv.find((arg) =>
    /^-[a-z][a-z-]+(=.*)?$/.test(arg) && OPTIONS[arg.slice(1).split("=")[0]]
  );
  if (oneDash) throw new UsageError(`'${oneDash}': long options take two dashes: '-${oneDash}'`);
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: withNegativeValues(argv),
      options: OPTIONS,
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    throw new UsageError(parseArgsMessage(error));
  }
  const [word, ...rest] = positionals;
  const command: CommandName = word === "monitor" || word === "servers" ? word : "agent";
  if (values.help) return { kind: "help", command };
  if (values.version) return { kind: "version" };
  for (const flag of Object.keys(values)) {
    const commands = commandsOf(flag);
    if (commands && !commands.includes(command)) {
      throw new UsageError(
        command === "servers"
          ? `--${flag} is not an option of 'heartbeat servers'`
          : commands.includes("monitor")
          ? `--${flag} is for 'heartbeat monitor'`
          : `--${flag} is for the agent, not 'heartbeat monitor'`,
      );
    }
  }
  if (command === "servers") {
    if (rest.length !== 1) {
      throw new UsageError(
        "'heartbeat servers FILE' takes one storage file, e.g. /var/log/apache2/hb.dat",
      );
    }
    return {
      kind: "servers",
      file: rest[0],
      ...(values.config ? { configFile: values.config as string } : {}),
      ...(values.balancer ? { balancer: values.balancer as string } : {}),
    };
  }
  if (word !== undefined && command === "agent") {
    throw new UsageError(
      `unexpected argument '${word}': the commands are 'monitor' and 'servers FILE'; every setting is a --flag`,
    );
  }
  if (rest.length) {
    throw new UsageError(`unexpected argument '${rest[0]}': every setting is a --flag`);
  }
  if (values.verbose && values.quiet) {
    throw new UsageError("--verbose and --quiet cannot be used together");
  }
  const flags: Invocation["flags"] = {};
  for (const spec of SETTINGS) {
    if (values[spec.flag] !== undefined) flags[spec.flag] = values[spec.flag] as string | string[];
  }
  if (values.verbose || values.quiet) {
    if (flags["log-level"] !== undefined) {
      throw new UsageError("--log-level cannot be used with --verbose or --quiet");
    }
    flags["log-level"] = values.verbose ? "debug" : "error";
  }
  return {
    kind: "run",
    mode: command,
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

function commandsOf(flag: string): readonly CommandName[] | undefined {
  return SETTINGS.find((spec) => spec.flag === flag)?.commands ??
    COMMAND_FLAGS.find((command) => command.flag === flag)?.commands;
}

/**
 * `deno task start -- --address …` and `./heartbeat -- --address …` put a bare `--` before the
 * flags; heartbeat takes no argument that starts with a dash, so a `--` first (or just after the
 * command word) means nothing, as most command lines take it.
 */
function withoutLeadingSeparator(argv: string[]): string[] {
  if (argv[0] === "--") return argv.slice(1);
  if (argv[1] === "--" && (argv[0] === "monitor" || argv[0] === "servers")) {
    return [argv[0], ...argv.slice(2)];
  }
  return argv;
}

/**
 * `--ready -1` as `--ready=-1`: parseArgs takes a value that starts with a dash for an option,
 * and would say the value is missing, where the truth is that it is negative.
 */
function withNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([\w-]+)$/.exec(argv[i])?.[1];
    if (name && OPTIONS[name]?.type === "string" && /^-\d/.test(argv[i + 1] ?? "")) {
      out.push(`${argv[i]}=${argv[++i]}`);
    } else out.push(argv[i]);
  }
  return out;
}

/** parseArgs' errors differ between runtimes; this says the same thing on all of them, and how to mend it. */
function parseArgsMessage(error: unknown): string {
  const code = error instanceof Error && "code" in error ? String(error.code) : undefined;
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^' ]+)/.exec(message)?.[1] ?? /(--?[\w-]+)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const name = (option ?? message).replace(/^-+/, "").split("=")[0];
      const nearest = closest(name, Object.keys(OPTIONS));
      return `unknown option '${option ?? message}'${
        nearest ? `; did you mean '--${nearest}'?` : ""
      }`;
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `${/(--[\w-]+)/.exec(message)?.[1] ?? option ?? "an option"} needs a value`;
    default:
      return message;
  }
}
