/**
 * Every setting once: its flag, its HEARTBEAT_* variable, its directive, and how its value is
 * read. Flags, the environment and the config file all go through this table, with the
 * precedence flags > environment > config file > defaults.
 */
import { isIPv4 } from "node:net";
import { parseAddress } from "./address.ts";
import { decimal } from "./codec.ts";
import { formatColumns } from "./columns.ts";
import type { ConfigRead } from "./config/httpd.ts";
import { type Cidr, parseCidr } from "./monitor/cidr.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { type AdapterName, ADAPTERS } from "./transport/transport.ts";

export interface AddressSetting {
  /** As written, for messages. */
  text: string;
  host: string;
  port: number;
  zone?: string;
}

/** Where the agent sends: a UDP HOST:PORT, or a URL to POST to. */
export type DestinationSetting = ({ kind: "udp" } & AddressSetting) | {
  kind: "http";
  text: string;
  url: URL;
};

export interface Settings {
  addresses: DestinationSetting[];
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
  resolveIntervalSeconds?: number;
  drainFile?: string;
  minBusy?: number;
  rampUpSeconds?: number;
  runtimeAdapter?: AdapterName;
  logLevel: LogLevel;
  /** The agent signs heartbeats with the key in it; the monitor accepts only signed ones. */
  keyFile?: string;
  signatureWindowSeconds?: number;
  /** The monitor's: where heartbeats come in, where the storage file goes, and limits. */
  listen?: AddressSetting;
  storage?: string;
  maxServers?: number;
  http?: AddressSetting;
  allow?: Cidr[];
}

/** Which command a setting's flag belongs to: the agent, `heartbeat monitor`, or both. */
export type Mode = "agent" | "monitor";

/** A value that cannot be used; the message says why, without saying where it came from. */
export class SettingError extends Error {}

interface Spec {
  key: keyof Settings;
  directive: string;
  env: string;
  flag: string;
  /** The commands whose flag this is; both when absent. */
  mode?: Mode;
  short?: string;
  /** Repeated flags or directive lines add values; the variable takes a comma-separated list. */
  multiple?: boolean;
  parse(text: string): unknown;
}

function wholeNumber(min: number, max: number) {
  return (text: string) => {
    const value = decimal(text);
    if (!(value >= min && value <= max)) {
      throw new SettingError(`give a whole number from ${min} to ${max}`);
    }
    return value;
  };
}

function seconds(min: number, max: number) {
  return (text: string) => {
    const value = /^[0-9]*\.?[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!(value >= min && value <= max)) {
      throw new SettingError(`give seconds from ${min} to ${max}, e.g. 1 or 0.5`);
    }
    return value;
  };
}

function oneOf<T extends string>(choices: readonly T[]) {
  return (text: string) => {
    if (!(choices as readonly string[]).includes(text)) {
      throw new SettingError(`choose one of ${choices.join(", ")}`);
    }
    return text as T;
  };
}

function address(text: string): AddressSetting {
  const parsed = parseAddress(text);
  if (!parsed.ok) throw new SettingError(parsed.error);
  return {
    text,
    host: parsed.host,
    port: parsed.port,
    ...(parsed.zone ? { zone: parsed.zone } : {}),
  };
}

function destination(text: string): DestinationSetting {
  if (!/^https?:\/\//i.test(text)) return { kind: "udp", ...address(text) };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SettingError("not a URL: give http://HOST[:PORT]/PATH, e.g. http://proxy/heartbeat");
  }
  if (!url.hostname) throw new SettingError("No host provided in address");
  return { kind: "http", text, url };
}

function text(value: string): string {
  if (value === "") throw new SettingError("give a value");
  return value;
}

function cidr(text: string): Cidr {
  try {
    return parseCidr(text);
  } catch (error) {
    throw new SettingError((error as Error).message);
  }
}

export const SETTINGS: readonly Spec[] = [
  {
    key: "addresses",
    flag: "address",
    short: "a",
    mode: "agent",
    directive: "HeartbeatAddress",
    env: "HEARTBEAT_ADDRESS",
    multiple: true,
    parse: destination,
  },
  {
    // The agent's multicast leaves by it; the monitor joins its group on it.
    key: "interfaceAddress",
    flag: "interface",
    directive: "HeartbeatInterface",
    env: "HEARTBEAT_INTERFACE",
    parse: (value) => {
      if (!isIPv4(value)) throw new SettingError("give the IPv4 address of a local interface");
      return value;
    },
  },
  {
    key: "ttl",
    flag: "ttl",
    mode: "agent",
    directive: "HeartbeatTTL",
    env: "HEARTBEAT_TTL",
    parse: wholeNumber(0, 255),
  },
  {
    key: "port",
    flag: "port",
    mode: "agent",
    directive: "HeartbeatPort",
    env: "HEARTBEAT_PORT",
    parse: wholeNumber(1, 65535),
  },
  {
    key: "source",
    flag: "source",
    mode: "agent",
    directive: "HeartbeatSource",
    env: "HEARTBEAT_SOURCE",
    parse: text,
  },
  {
    key: "ready",
    flag: "ready",
    mode: "agent",
    directive: "HeartbeatReady",
    env: "HEARTBEAT_READY",
    parse: wholeNumber(0, 0xffff_ffff),
  },
  {
    key: "busy",
    flag: "busy",
    mode: "agent",
    directive: "HeartbeatBusy",
    env: "HEARTBEAT_BUSY",
    parse: wholeNumber(0, 0xffff_ffff),
  },
  {
    key: "capacity",
    flag: "capacity",
    mode: "agent",
    directive: "HeartbeatCapacity",
    env: "HEARTBEAT_CAPACITY",
    parse: wholeNumber(0, 0xffff_ffff),
  },
  {
    key: "maxAgeSeconds",
    flag: "max-age",
    mode: "agent",
    directive: "HeartbeatMaxAge",
    env: "HEARTBEAT_MAX_AGE",
    parse: seconds(0.01, 86400),
  },
  {
    key: "procRoot",
    flag: "proc-root",
    mode: "agent",
    directive: "HeartbeatProcRoot",
    env: "HEARTBEAT_PROC_ROOT",
    parse: text,
  },
  {
    key: "intervalSeconds",
    flag: "interval",
    mode: "agent",
    directive: "HeartbeatInterval",
    env: "HEARTBEAT_INTERVAL",
    parse: seconds(0.01, 3600),
  },
  {
    key: "resolveIntervalSeconds",
    flag: "resolve-interval",
    mode: "agent",
    directive: "HeartbeatResolveInterval",
    env: "HEARTBEAT_RESOLVE_INTERVAL",
    parse: seconds(1, 86400),
  },
  {
    key: "drainFile",
    flag: "drain-file",
    mode: "agent",
    directive: "HeartbeatDrainFile",
    env: "HEARTBEAT_DRAIN_FILE",
    parse: text,
  },
  {
    key: "minBusy",
    flag: "min-busy",
    mode: "agent",
    directive: "HeartbeatMinBusy",
    env: "HEARTBEAT_MIN_BUSY",
    parse: wholeNumber(0, 0xffff_ffff),
  },
  {
    key: "rampUpSeconds",
    flag: "ramp-up",
    mode: "agent",
    directive: "HeartbeatRampUp",
    env: "HEARTBEAT_RAMP_UP",
    parse: seconds(0.01, 86400),
  },
  {
    key: "runtimeAdapter",
    flag: "runtime-adapter",
    directive: "HeartbeatRuntimeAdapter",
    env: "HEARTBEAT_RUNTIME_ADAPTER",
    parse: oneOf(ADAPTERS),
  },
  {
    key: "keyFile",
    flag: "key-file",
    directive: "HeartbeatKeyFile",
    env: "HEARTBEAT_KEY_FILE",
    parse: text,
  },
  {
    key: "signatureWindowSeconds",
    flag: "signature-window",
    mode: "monitor",
    directive: "HeartbeatSignatureWindow",
    env: "HEARTBEAT_SIGNATURE_WINDOW",
    parse: wholeNumber(1, 86400),
  },
  {
    key: "logLevel",
    flag: "log-level",
    directive: "HeartbeatLogLevel",
    env: "HEARTBEAT_LOG_LEVEL",
    parse: oneOf(LOG_LEVELS),
  },
  {
    key: "listen",
    flag: "listen",
    mode: "monitor",
    directive: "HeartbeatListen",
    env: "HEARTBEAT_LISTEN",
    parse: address,
  },
  {
    key: "storage",
    flag: "storage",
    mode: "monitor",
    directive: "HeartbeatStorage",
    env: "HEARTBEAT_STORAGE",
    parse: text,
  },
  {
    key: "http",
    flag: "http",
    mode: "monitor",
    directive: "HeartbeatHTTPListen",
    env: "HEARTBEAT_HTTP",
    parse: address,
  },
  {
    key: "allow",
    flag: "allow",
    mode: "monitor",
    directive: "HeartbeatAllow",
    env: "HEARTBEAT_ALLOW",
    multiple: true,
    parse: cidr,
  },
  {
    key: "maxServers",
    flag: "max-servers",
    mode: "monitor",
    directive: "HeartbeatMaxServers",
    env: "HEARTBEAT_MAX_SERVERS",
    parse: (value) => {
      const count = wholeNumber(0, 1_000_000)(value);
      // mod_heartmonitor's rule: 0 means the storage file; a shared-memory table needs more than 10.
      if (count !== 0 && count <= 10) throw new SettingError("Should be bigger than 10");
      return count;
    },
  },
];

const DEFAULTS: Pick<Settings, "addresses" | "ttl" | "source" | "intervalSeconds" | "logLevel"> = {
  addresses: [],
  ttl: 1,
  source: "auto",
  intervalSeconds: 1,
  logLevel: "info",
};

/** Lower-cased names of the directives this agent reads. */
export const KNOWN_DIRECTIVES: ReadonlySet<string> = new Set(
  SETTINGS.map((spec) => spec.directive.toLowerCase()),
);

export interface Layers {
  /** Flag values by long name, as parseArgs gives them. */
  flags: Record<string, string | string[] | undefined>;
  env: Record<string, string | undefined>;
  config?: ConfigRead;
}

export interface Resolved {
  settings: Settings;
  /** Where each setting's value came from: `--ttl`, `HEARTBEAT_TTL`, `FILE:LINE`, or `default`. */
  origins: Partial<Record<keyof Settings, string>>;
  /** Everything wrong, each a line that says where. */
  problems: string[];
  /** Which problems come from flags: usage errors. */
  flagProblems: string[];
}

/** The effective settings from all layers, and every problem in any of them. */
export function resolveSettings(layers: Layers): Resolved {
  const values: Partial<Record<keyof Settings, unknown>> = {};
  const origins: Resolved["origins"] = {};
  const problems: string[] = [];
  const flagProblems: string[] = [];

  for (const spec of SETTINGS) {
    const candidates = [
      fromFlag(spec, layers.flags, flagProblems),
      fromEnv(spec, layers.env, problems),
      layers.config ? fromConfig(spec, layers.config, problems) : undefined,
    ];
    const chosen = candidates.find((candidate) => candidate !== undefined);
    if (chosen) {
      values[spec.key] = chosen.value;
      origins[spec.key] = chosen.origin;
    }
  }
  if (layers.config) {
    for (const directive of layers.config.directives) {
      if (
        /^heartbeat/i.test(directive.name) && !KNOWN_DIRECTIVES.has(directive.name.toLowerCase())
      ) {
        problems.push(
          `${directive.file}:${directive.line}: Invalid command '${directive.name}', perhaps misspelled`,
        );
      }
    }
    problems.push(
      ...layers.config.problems.map((problem) =>
        `${problem.file}:${problem.line}: ${problem.message}`
      ),
    );
  }
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) origins[key] ??= "default";
  return {
    settings: { ...DEFAULTS, ...values } as Settings,
    origins,
    problems: [...flagProblems, ...problems],
    flagProblems,
  };
}

interface Candidate {
  value: unknown;
  origin: string;
}

function fromFlag(spec: Spec, flags: Layers["flags"], problems: string[]): Candidate | undefined {
  const raw = flags[spec.flag];
  if (raw === undefined) return undefined;
  const texts = Array.isArray(raw) ? raw : [raw];
  return collect(
    spec,
    texts.map((text) => ({ text, where: `--${spec.flag} '${text}'` })),
    `--${spec.flag}`,
    problems,
  );
}

function fromEnv(spec: Spec, env: Layers["env"], problems: string[]): Candidate | undefined {
  const raw = env[spec.env];
  if (raw === undefined || raw === "") return undefined;
  const texts = spec.multiple ? raw.split(/[\s,]+/).filter(Boolean) : [raw];
  return collect(
    spec,
    texts.map((text) => ({ text, where: `${spec.env} '${text}'` })),
    spec.env,
    problems,
  );
}

function fromConfig(spec: Spec, config: ConfigRead, problems: string[]): Candidate | undefined {
  const lines = config.directives.filter((directive) =>
    directive.name.toLowerCase() === spec.directive.toLowerCase()
  );
  if (lines.length === 0) return undefined;
  const usable = lines.filter((directive) => {
    const where = `${directive.file}:${directive.line}: ${spec.directive}`;
    if (directive.sections.length) {
      problems.push(
        `${where} cannot occur within <${
          directive.sections[directive.sections.length - 1]
        }> section`,
      );
    } else if (directive.args.length !== 1) {
      problems.push(`${where} takes one argument`);
    } else if (directive.undefinedVariables.length) {
      problems.push(`${where}: variable \${${directive.undefinedVariables[0]}} is not defined`);
    } else return true;
    return false;
  });
  // A directive given once is its last line, as in Apache; repeatable ones add up.
  const used = spec.multiple ? usable : usable.slice(-1);
  return collect(
    spec,
    used.map((directive) => ({
      text: directive.args[0],
      where: `${directive.file}:${directive.line}: ${spec.directive}:`,
    })),
    used.map((directive) => `${directive.file}:${directive.line}`).join(", "),
    problems,
  );
}

/** Parses each text; a problem is `WHERE: reason` (or `WHERE reason` after a colon). */
function collect(
  spec: Spec,
  texts: { text: string; where: string }[],
  origin: string,
  problems: string[],
): Candidate | undefined {
  const values: unknown[] = [];
  for (const { text, where } of texts) {
    try {
      values.push(spec.parse(text));
    } catch (error) {
      if (!(error instanceof SettingError)) throw error;
      problems.push(
        where.endsWith(":") ? `${where} ${error.message}` : `${where}: ${error.message}`,
      );
    }
  }
  if (values.length === 0) return undefined;
  return { value: spec.multiple ? values : values[0], origin };
}

/** The settings as a table: directive, value, where it came from. */
export function describeSettings(resolved: Resolved): string {
  const rows = SETTINGS.flatMap((spec) => {
    const value = resolved.settings[spec.key];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) return [];
    // Addresses and ranges keep the text they were given.
    const shown = Array.isArray(value)
      ? value.map((item) => (item as { text: string }).text).join(" ")
      : typeof value === "object"
      ? (value as { text: string }).text
      : String(value);
    return [[spec.directive, shown, resolved.origins[spec.key] ?? ""]];
  });
  return formatColumns([["directive", "value", "from"], ...rows]);
}
