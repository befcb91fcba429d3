/**
 * Each command's --help, made from the settings table (settings.ts) and the command flags
 * (cli.ts), so that a flag cannot be taken without being shown, nor shown in other words than its
 * row's; and a setting's default as the operator writes it, for --help and README's tables.
 */
import { COMMAND_FLAGS, type CommandName } from "./cli.ts";
import { type Command as SettingsCommand, type Setting, SETTINGS } from "./settings.ts";
import { SOURCES } from "./sources/index.ts";

/** Help text lines are at most this wide. */
export const HELP_WIDTH = 80;
/** Where an option's help starts. */
const HELP_COLUMN = 28;

/** `prefix` then the words of `text`, in lines of at most `width`; later lines start at `indent`. */
function wrap(prefix: string, text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = prefix;
  for (const word of text.split(" ")) {
    if (line.trim() && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(indent) + word;
    } else line = line.length === 0 || line.endsWith(" ") ? line + word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** `  -a, --address HOST:PORT   help…`, wrapped to HELP_WIDTH. */
function optionLines(
  option: { flag: string; short?: string; value?: string },
  help: string,
): string[] {
  const name = `  ${option.short ? `-${option.short}, ` : "    "}--${option.flag}${
    option.value ? ` ${option.value}` : ""
  }`;
  if (name.length + 2 > HELP_COLUMN) {
    return [name, ...wrap(" ".repeat(HELP_COLUMN), help, HELP_WIDTH, HELP_COLUMN)];
  }
  return wrap(name.padEnd(HELP_COLUMN), help, HELP_WIDTH, HELP_COLUMN);
}

/** The help line of a setting for `command`: its own, and its default where it has one. */
export function settingHelp(spec: Setting, command: SettingsCommand): string {
  const help = typeof spec.help === "string" ? spec.help : spec.help[command];
  const shown = defaultText(spec);
  return shown === undefined ? help : `${help} (default ${shown})`;
}

/** A setting's default as the user writes it, or undefined where it has none worth saying. */
export function defaultText(spec: Setting): string | undefined {
  const value = spec.default;
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return undefined;
  return Array.isArray(value) ? value.join(" ") : String(value);
}

/** The sections of --help, in order. */
const GROUPS = [
  "Where to send",
  "What to send",
  "Shaping what is sent",
  "Asked, not told",
  "Where heartbeats come in",
  "What is kept",
  "Signing",
  "Configuration",
  "Other",
];

const HEADERS: Record<CommandName, string[]> = {
  agent: [
    "heartbeat: tells Apache load balancers how much spare capacity this server has.",
    "",
    "Usage:",
    "  heartbeat --address HOST:PORT [options]     send heartbeats (the agent)",
    "  heartbeat -f /etc/heartbeat/heartbeat.conf  the same, settings from a file",
    "  heartbeat monitor --listen ADDR:PORT ...    collect them (monitor --help)",
    "  heartbeat servers FILE                      a storage file as balancers see it",
    "",
    'It sends "v=1&ready=N&busy=M" by UDP every second, as Apache\'s mod_heartbeat',
    "does, to proxies running mod_heartmonitor and mod_lbmethod_heartbeat.",
  ],
  monitor: [
    "heartbeat monitor: collects heartbeats, as Apache's mod_heartmonitor does, into",
    "its storage file for mod_lbmethod_heartbeat (HeartbeatStorage).",
    "",
    "Usage:",
    "  heartbeat monitor --listen ADDR:PORT [--storage FILE] [options]",
    "  heartbeat monitor --http ADDR:PORT [--storage FILE] [options]",
  ],
  servers: [
    "heartbeat servers: a storage file (mod_heartmonitor's or heartbeat monitor's)",
    "as mod_lbmethod_heartbeat sees it: each server's weight and share of requests.",
    "",
    "Usage:",
    "  heartbeat servers FILE [-f httpd.conf [--balancer NAME]]",
    "",
    "With the proxy's config, in the balancer's member order, as the balancer draws;",
    "without, in the file's order.",
  ],
};

const FOOTERS: Record<CommandName, string[]> = {
  agent: [
    "Examples:",
    "  heartbeat --address 239.0.0.1:27999 --source static --ready 10",
    "  heartbeat --address 239.0.0.1:27999 --source nginx --capacity 512",
    "  heartbeat -a 239.0.0.1:27999 -a 10.0.0.5:27999 --port 8080 --ready 50 --busy 3",
    "  heartbeat --address http://proxy/heartbeat --source apache",
  ],
  monitor: [
    "Examples:",
    "  heartbeat monitor --listen 239.0.0.1:27999 --storage /run/heartbeat/hb.dat",
    "  heartbeat monitor --listen 239.0.0.1:27999 --http 127.0.0.1:8080 --print",
  ],
  servers: [
    "Examples:",
    "  heartbeat servers /run/heartbeat/hb.dat",
    "  heartbeat servers /run/heartbeat/hb.dat -f /etc/apache2/apache2.conf",
  ],
};

const SETTINGS_NOTE = [
  "Every setting is also a HEARTBEAT_* variable (--max-age: HEARTBEAT_MAX_AGE) and",
  "a directive (HeartbeatMaxAge). Flags beat variables, variables beat the file.",
];

const EXIT_NOTE = "Exit status: 0 done, 1 runtime failure, 2 usage or configuration error.";

/** `heartbeat [COMMAND] --help`: made from the rows, every line at most HELP_WIDTH wide. */
export function usage(command: CommandName): string {
  const lines = [...HEADERS[command]];
  const groups = new Map<string, string[]>();
  const add = (group: string, entry: string[]) =>
    groups.set(group, [...(groups.get(group) ?? []), ...entry]);
  if (command !== "servers") {
    for (const spec of SETTINGS.filter((row) => row.commands.includes(command))) {
      const group = typeof spec.group === "string" ? spec.group : spec.group[command];
      add(group, optionLines(spec, settingHelp(spec, command)));
      if (spec.key === "source") {
        for (const [name, source] of Object.entries(SOURCES)) {
          add(
            group,
            wrap(
              " ".repeat(HELP_COLUMN + 2),
              `${name}: ${source.summary}`,
              HELP_WIDTH,
              HELP_COLUMN + 4,
            ),
          );
        }
      }
    }
  }
  for (const flag of COMMAND_FLAGS.filter((row) => row.commands.includes(command))) {
    add(flag.group, optionLines(flag, flag.help));
  }
  for (const group of GROUPS) {
    if (groups.has(group)) lines.push("", `${group}:`, ...groups.get(group)!);
  }
  if (command !== "servers") lines.push("", ...SETTINGS_NOTE);
  lines.push("", ...FOOTERS[command], "", EXIT_NOTE);
  return `${lines.join("\n")}\n`;
}

/** The agent's --help. */
export const USAGE: string = usage("agent");
