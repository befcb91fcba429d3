/**
 * Every setting once: its flag, its HEARTBEAT_* variable, its directive, and how its value is
 * read. Flags, the environment and the config file all go through this table, with the
 * precedence flags > environment > config file > defaults.
 */
import { isIPv4 } from "node:net";
import { resolve } from "node:path";
import { parseAddress } from "./address.ts";
import { decimal } from "./codec.ts";
import { formatColumns } from "./columns.ts";
import { closest } from "./spelling.ts";
import { type ConfigRead, undefinedVariable } from "./config/httpd.ts";
import { type Cidr, parseCidr, parseServerRange, type ServerRange } from "./monitor/cidr.ts";
import { DEFAULT_HTTP_PATHS } from "./monitor/defaults.ts";
import { DEFAULT_MAX_AGE_SECONDS } from "./sources/file.ts";
import { SOURCES } from "./sources/index.ts";
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
  /** Each --source; with several, the heartbeat reports the tightest. */
  source: string[];
  /** The time constant of each source's moving average; unset: each source's own default. */
  smoothSeconds?: number;
  ready?: number;
  busy?: number;
  capacity?: number;
  maxAgeSeconds: number;
  procRoot?: string;
  intervalSeconds: number;
  resolveIntervalSeconds: number;
  drainFile?: string;
  minBusy?: number;
  rampUpSeconds?: number;
  runtimeAdapter?: AdapterName;
  logLevel: LogLevel;
  /** The agent signs heartbeats with the key in it; the monitor accepts only signed ones. */
  keyFile?: string;
  signatureWindowSeconds: number;
  /** The monitor's: where heartbeats come in, where the storage file goes, and limits. */
  listen?: AddressSetting;
  storage?: string;
  maxServers: number;
  http?: AddressSetting;
  /** Where the agent answers HAProxy's agent-check. */
  agentCheck?: AddressSetting;
  /** HAProxy runtime API sockets (a path, or ADDR:PORT) the monitor sets weights through. */
  haproxySockets?: string[];
  /** The HAProxy backends whose servers' weights the monitor sets. */
  haproxyBackends?: string[];
  /** The nginx upstream file the monitor keeps, and how it reloads nginx (issue 26). */
  nginxUpstream?: string;
  nginxPort: number;
  nginxServers?: ServerRange[];
  nginxReload: string;
  nginxReloadIntervalSeconds: number;
  /** Where the monitor's HTTP side takes POSTed heartbeats. */
  httpPaths: string[];
  allow?: Cidr[];
  /** SO_RCVBUF for the monitor's UDP socket, in bytes; unset: the system's default. */
  receiveBuffer?: number;
}

/** The commands that run with settings: the agent, and `heartbeat monitor`. */
export type Command = "agent" | "monitor";
const AGENT: readonly Command[] = ["agent"];
const MONITOR: readonly Command[] = ["monitor"];
const BOTH: readonly Command[] = ["agent", "monitor"];

/** A value that cannot be used; the message says why, without saying where it came from. */
export class SettingError extends Error {}

/**
 * One setting, everything about it in one row, as httpd's command_rec keeps a directive's
 * name, parser and help together: usage, the README's options table, --print-config and the
 * example config are all made from these rows.
 */
export interface Setting<K extends keyof Settings = keyof Settings, T = unknown> {
  key: K;
  flag: string;
  short?: string;
  env: string;
  directive: string;
  /** The commands that take it. */
  commands: readonly Command[];
  /** What the value looks like, in usage: `HOST:PORT`, `N`, `SECONDS`. */
  value: string;
  /** One line of help; by command where a setting means something else to each. */
  help: string | Record<Command, string>;
  /** The section of --help it is listed in; by command where that differs. */
  group: string | Record<Command, string>;
  /** Repeated flags or directive lines add values; the variable takes a comma-separated list. */
  multiple?: boolean;
  /**
   * A repeatable one's values whose text may hold spaces and commas: where its variable's list
   * splits (else at every comma and space), and what --print-config puts between them.
   */
  list?: { split: RegExp; join: string };
  /**
   * A file path, made absolute as Apache makes a directive's: against the run-time folder
   * (ap_runtime_dir_relative, as mod_heartmonitor does for HeartbeatStorage) or ServerRoot. A
   * flag's or variable's is made absolute against the working folder.
   */
  file?: "runtime-dir" | "server-root";
  /** What it is when nothing sets it; none: it stays unset. */
  default?: Settings[K];
  /** One value, from its text. */
  parse(text: string): T;
  /** The setting, from the values given (one, or a repeatable one's every one), in order. */
  takes(values: T[]): Settings[K];
}

/**
 * The settings Settings requires. Each has a default, so that where nothing sets them the
 * settings are still complete.
 */
type RequiredKey = {
  [K in keyof Settings]-?: object extends Pick<Settings, K> ? never : K;
}[keyof Settings];

/** A row's default: one it must have where Settings requires the setting. */
type DefaultRequired<K extends keyof Settings> = [K] extends [RequiredKey]
  ? { default: Settings[K] }
  : unknown;

/**
 * A row, typed by its key: its parser returns that setting's own type, and the last value given
 * is the one taken.
 */
function setting<K extends keyof Settings, T extends Settings[K]>(
  row: Omit<Setting<K, T>, "takes" | "multiple"> & DefaultRequired<K>,
): Setting<K, T> {
  return { ...row, takes: (values) => values[values.length - 1] };
}

/**
 * A repeatable setting's row: its parser returns one of its values, and its `takes: all` takes
 * them all (written in the row, where the compiler knows the setting's type).
 */
function repeatable<K extends keyof Settings, T>(
  row: Omit<Setting<K, T>, "multiple"> & DefaultRequired<K>,
): Setting<K, T> {
  return { ...row, multiple: true };
}

/** Every value given, for a repeatable row's `takes`. */
function all<T>(values: T[]): T[] {
  return values;
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
    const chosen = choices.find((choice) => choice === text);
    if (chosen === undefined) throw new SettingError(`choose one of ${choices.join(", ")}`);
    return chosen;
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

/** `parse`, its Error a SettingError: its message says what to give. */
function asSetting<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new SettingError(error instanceof Error ? error.message : String(error));
    }
  };
}

const cidr = asSetting(parseCidr);
const serverRange = asSetting(parseServerRange);

/** Servers the monitor keeps at most, unless told otherwise (HeartbeatMaxServers 0 means this). */
export const DEFAULT_MAX_SERVERS = 1000;

/** The rows as given, checked to hold a row for every setting Settings requires. */
function withEveryRequiredRow<const Rows extends readonly Setting[]>(
  rows:
    & Rows
    & ([RequiredKey] extends [Rows[number]["key"]] ? unknown
      : { "a row is missing for": Exclude<RequiredKey, Rows[number]["key"]> }),
): readonly Setting[] {
  return rows;
}

export const SETTINGS: readonly Setting[] = withEveryRequiredRow([
  repeatable({
    key: "addresses",
    flag: "address",
    short: "a",
    env: "HEARTBEAT_ADDRESS",
    directive: "HeartbeatAddress",
    commands: AGENT,
    value: "HOST:PORT|URL",
    group: "Where to send",
    help: "multicast group, host or http(s):// URL to send to (repeatable)",
    takes: all,
    default: [],
    parse: destination,
  }),
  setting({
    // The agent's multicast leaves by it; the monitor joins its group on it.
    key: "interfaceAddress",
    flag: "interface",
    env: "HEARTBEAT_INTERFACE",
    directive: "HeartbeatInterface",
    commands: BOTH,
    value: "ADDR",
    group: { agent: "Where to send", monitor: "Where heartbeats come in" },
    help: {
      agent: "IPv4 address of the interface multicast leaves by",
      monitor: "IPv4 address of the interface the group is joined on",
    },
    parse: (value) => {
      if (!isIPv4(value)) throw new SettingError("give the IPv4 address of a local interface");
      return value;
    },
  }),
  setting({
    key: "ttl",
    flag: "ttl",
    env: "HEARTBEAT_TTL",
    directive: "HeartbeatTTL",
    commands: AGENT,
    value: "N",
    group: "Where to send",
    help: "multicast time-to-live, 0-255; 1: this network only, as mod_heartbeat",
    default: 1,
    parse: wholeNumber(0, 255),
  }),
  setting({
    key: "port",
    flag: "port",
    env: "HEARTBEAT_PORT",
    directive: "HeartbeatPort",
    commands: AGENT,
    value: "N",
    group: "Where to send",
    help: 'add "port=N": the port the proxy should use (else 80)',
    parse: wholeNumber(1, 65535),
  }),
  setting({
    key: "resolveIntervalSeconds",
    flag: "resolve-interval",
    env: "HEARTBEAT_RESOLVE_INTERVAL",
    directive: "HeartbeatResolveInterval",
    commands: AGENT,
    value: "SECONDS",
    group: "Where to send",
    help: "look host names up again this often; each IPv4 and IPv6 address gets every heartbeat",
    default: 30,
    parse: seconds(1, 86400),
  }),
  repeatable({
    key: "source",
    flag: "source",
    env: "HEARTBEAT_SOURCE",
    directive: "HeartbeatSource",
    commands: AGENT,
    value: "NAME[:ARG]",
    group: "What to send",
    help: "where ready and busy come from (repeatable: the tightest is sent; sources below)",
    takes: all,
    // exec:COMMAND may hold spaces and commas: a list splits only where a source's name follows.
    list: {
      split: new RegExp(`\\s*,\\s*(?=(?:${Object.keys(SOURCES).join("|")})(?:[:,]|$))`),
      join: ", ",
    },
    default: ["auto"],
    parse: text,
  }),
  setting({
    key: "smoothSeconds",
    flag: "smooth",
    env: "HEARTBEAT_SMOOTH",
    directive: "HeartbeatSmooth",
    commands: AGENT,
    value: "SECONDS",
    group: "What to send",
    help: "average each source's free share over this time (if not given: 0 for slot counts)",
    parse: seconds(0, 3600),
  }),
  setting({
    key: "ready",
    flag: "ready",
    env: "HEARTBEAT_READY",
    directive: "HeartbeatReady",
    commands: AGENT,
    value: "N",
    group: "What to send",
    help: "idle worker slots, for --source static",
    parse: wholeNumber(0, 0xffff_ffff),
  }),
  setting({
    key: "busy",
    flag: "busy",
    env: "HEARTBEAT_BUSY",
    directive: "HeartbeatBusy",
    commands: AGENT,
    value: "N",
    group: "What to send",
    help: "slots serving a request, for --source static (if not given: 0)",
    parse: wholeNumber(0, 0xffff_ffff),
  }),
  setting({
    key: "capacity",
    flag: "capacity",
    env: "HEARTBEAT_CAPACITY",
    directive: "HeartbeatCapacity",
    commands: AGENT,
    value: "N",
    group: "What to send",
    help:
      "connections it can serve at once (nginx, tcp); ready when idle (pressure); a CPU's worth (cpu)",
    parse: wholeNumber(0, 0xffff_ffff),
  }),
  setting({
    key: "maxAgeSeconds",
    flag: "max-age",
    env: "HEARTBEAT_MAX_AGE",
    directive: "HeartbeatMaxAge",
    commands: AGENT,
    value: "SECONDS",
    group: "What to send",
    help: "for --source file: a file older than this is no data",
    default: DEFAULT_MAX_AGE_SECONDS,
    parse: seconds(0.01, 86400),
  }),
  setting({
    key: "procRoot",
    flag: "proc-root",
    env: "HEARTBEAT_PROC_ROOT",
    directive: "HeartbeatProcRoot",
    commands: AGENT,
    value: "DIR",
    group: "What to send",
    help: "where /proc is, for --source tcp (if not given: /proc)",
    file: "server-root",
    parse: text,
  }),
  setting({
    key: "drainFile",
    flag: "drain-file",
    env: "HEARTBEAT_DRAIN_FILE",
    directive: "HeartbeatDrainFile",
    commands: AGENT,
    value: "PATH",
    group: "Shaping what is sent",
    help: "while PATH exists, send ready=0 (SIGTTOU too, until SIGTTIN)",
    file: "server-root",
    parse: text,
  }),
  setting({
    key: "minBusy",
    flag: "min-busy",
    env: "HEARTBEAT_MIN_BUSY",
    directive: "HeartbeatMinBusy",
    commands: AGENT,
    value: "N",
    group: "Shaping what is sent",
    help: "report busy as at least N (1: no ready/4 cold-start penalty)",
    parse: wholeNumber(0, 0xffff_ffff),
  }),
  setting({
    key: "rampUpSeconds",
    flag: "ramp-up",
    env: "HEARTBEAT_RAMP_UP",
    directive: "HeartbeatRampUp",
    commands: AGENT,
    value: "SECONDS",
    group: "Shaping what is sent",
    help: "after start, grow the advertised ready from 0 over this time",
    parse: seconds(0.01, 86400),
  }),
  setting({
    key: "intervalSeconds",
    flag: "interval",
    env: "HEARTBEAT_INTERVAL",
    directive: "HeartbeatInterval",
    commands: AGENT,
    value: "SECONDS",
    group: "Shaping what is sent",
    help: "time between heartbeats, fractions allowed",
    default: 1,
    parse: seconds(0.01, 3600),
  }),
  setting({
    key: "listen",
    flag: "listen",
    env: "HEARTBEAT_LISTEN",
    directive: "HeartbeatListen",
    commands: MONITOR,
    value: "ADDR:PORT",
    group: "Where heartbeats come in",
    help: "multicast group to join, or local address, for UDP heartbeats",
    parse: address,
  }),
  setting({
    key: "http",
    flag: "http",
    env: "HEARTBEAT_HTTP",
    directive: "HeartbeatHTTPListen",
    commands: BOTH,
    value: "ADDR:PORT",
    group: { agent: "Asked, not told", monitor: "Where heartbeats come in" },
    help: {
      agent: "serve its status page (/), /healthz and /metrics",
      monitor:
        "take POSTed heartbeats, and serve the status page (/), /servers, /healthz and /metrics",
    },
    parse: address,
  }),
  setting({
    key: "agentCheck",
    flag: "agent-check",
    env: "HEARTBEAT_AGENT_CHECK",
    directive: "HeartbeatAgentCheck",
    commands: AGENT,
    value: "ADDR:PORT",
    group: "Asked, not told",
    help: "answer HAProxy's agent-check here (then --address is optional)",
    parse: address,
  }),
  repeatable({
    key: "httpPaths",
    flag: "http-path",
    env: "HEARTBEAT_HTTP_PATH",
    directive: "HeartbeatHTTPPath",
    commands: MONITOR,
    value: "PATH",
    group: "Where heartbeats come in",
    help: "take POSTed heartbeats at this path (repeatable; Tomcat posts to /HeartbeatListener)",
    takes: all,
    default: DEFAULT_HTTP_PATHS,
    parse: (value: string) => {
      if (!/^\/[\x21-\x7e]*$/.test(value)) {
        throw new SettingError("give a path starting with /, e.g. /heartbeat");
      }
      return value;
    },
  }),
  repeatable({
    key: "allow",
    flag: "allow",
    env: "HEARTBEAT_ALLOW",
    directive: "HeartbeatAllow",
    commands: MONITOR,
    value: "CIDR",
    group: "Where heartbeats come in",
    help: "accept heartbeats only from these IPv4 senders (repeatable)",
    takes: all,
    parse: cidr,
  }),
  setting({
    key: "receiveBuffer",
    flag: "receive-buffer",
    env: "HEARTBEAT_RECEIVE_BUFFER",
    directive: "HeartbeatReceiveBuffer",
    commands: MONITOR,
    value: "BYTES",
    group: "Where heartbeats come in",
    help: "the UDP socket's receive buffer, for bursts (0: the system's; Linux)",
    parse: (value) => {
      const bytes = wholeNumber(0, 2 ** 31 - 1)(value);
      // Apache's own rule for ReceiveBufferSize, the core directive this one mirrors.
      if (bytes !== 0 && bytes < 512) {
        throw new SettingError("must be >= 512 bytes, or 0 for system default");
      }
      return bytes;
    },
  }),
  setting({
    key: "storage",
    flag: "storage",
    env: "HEARTBEAT_STORAGE",
    directive: "HeartbeatStorage",
    commands: MONITOR,
    value: "FILE",
    group: "What is kept",
    help: "write mod_heartmonitor's storage file, rewritten every second",
    file: "runtime-dir",
    parse: text,
  }),
  setting({
    key: "maxServers",
    flag: "max-servers",
    env: "HEARTBEAT_MAX_SERVERS",
    directive: "HeartbeatMaxServers",
    commands: MONITOR,
    value: "N",
    group: "What is kept",
    help:
      "servers kept at most, 0 for the default, else 10 or more, as Apache takes them; new ones are turned away",
    default: DEFAULT_MAX_SERVERS,
    parse: (value) => {
      const count = wholeNumber(0, 1_000_000)(value);
      // mod_heartmonitor's rule (2.4.71): 0 means the storage file; shared memory needs 10 or more.
      if (count !== 0 && count < 10) {
        throw new SettingError(
          "Should be 0 for file storage, or greater or equal than 10 for slotmem",
        );
      }
      return count || DEFAULT_MAX_SERVERS;
    },
  }),
  repeatable({
    key: "haproxySockets",
    flag: "haproxy-socket",
    env: "HEARTBEAT_HAPROXY_SOCKET",
    directive: "HeartbeatHAProxySocket",
    commands: MONITOR,
    value: "PATH|ADDR:PORT",
    group: "What is kept",
    help: "set HAProxy's weights by heartbeat, through this runtime API (repeatable)",
    takes: all,
    parse: (value: string) => {
      if (!value.startsWith("/") && !/^.+:\d+$/.test(value)) {
        throw new SettingError("give the stats socket's path, or ADDR:PORT");
      }
      return value;
    },
  }),
  repeatable({
    key: "haproxyBackends",
    flag: "haproxy-backend",
    env: "HEARTBEAT_HAPROXY_BACKEND",
    directive: "HeartbeatHAProxyBackend",
    commands: MONITOR,
    value: "NAME",
    group: "What is kept",
    help: "the HAProxy backend whose servers get the weights (repeatable)",
    takes: all,
    parse: text,
  }),
  // The nginx upstream output's rows (issue 26).
  setting({
    key: "nginxUpstream",
    flag: "nginx-upstream",
    env: "HEARTBEAT_NGINX_UPSTREAM",
    directive: "HeartbeatNginxUpstream",
    commands: MONITOR,
    value: "FILE",
    group: "What is kept",
    help: "keep nginx upstream server lines here, weighted by heartbeat, to include in an upstream",
    file: "runtime-dir",
    parse: text,
  }),
  setting({
    key: "nginxPort",
    flag: "nginx-port",
    env: "HEARTBEAT_NGINX_PORT",
    directive: "HeartbeatNginxPort",
    commands: MONITOR,
    value: "PORT",
    group: "What is kept",
    help: "the nginx upstream's port for a server whose heartbeat names none",
    default: 80,
    parse: wholeNumber(1, 65535),
  }),
  repeatable({
    key: "nginxServers",
    flag: "nginx-server",
    env: "HEARTBEAT_NGINX_SERVER",
    directive: "HeartbeatNginxServer",
    commands: MONITOR,
    value: "ADDR[:PORT]|CIDR",
    group: "What is kept",
    help: "only these servers go in the nginx upstream (repeatable; default: every one heard)",
    takes: all,
    parse: serverRange,
  }),
  setting({
    key: "nginxReload",
    flag: "nginx-reload",
    env: "HEARTBEAT_NGINX_RELOAD",
    directive: "HeartbeatNginxReload",
    commands: MONITOR,
    value: "COMMAND",
    group: "What is kept",
    help: "run when the nginx upstream changes; split at spaces, no shell",
    default: "nginx -s reload",
    parse: text,
  }),
  setting({
    key: "nginxReloadIntervalSeconds",
    flag: "nginx-reload-interval",
    env: "HEARTBEAT_NGINX_RELOAD_INTERVAL",
    directive: "HeartbeatNginxReloadInterval",
    commands: MONITOR,
    value: "SECONDS",
    group: "What is kept",
    help: "reload nginx at most once in this time",
    default: 5,
    parse: seconds(1, 3600),
  }),
  setting({
    key: "keyFile",
    flag: "key-file",
    env: "HEARTBEAT_KEY_FILE",
    directive: "HeartbeatKeyFile",
    commands: BOTH,
    value: "FILE",
    group: "Signing",
    help: {
      agent: "sign heartbeats with this key",
      monitor: "take only heartbeats signed with this key",
    },
    file: "server-root",
    parse: text,
  }),
  setting({
    key: "signatureWindowSeconds",
    flag: "signature-window",
    env: "HEARTBEAT_SIGNATURE_WINDOW",
    directive: "HeartbeatSignatureWindow",
    commands: MONITOR,
    value: "SECONDS",
    group: "Signing",
    help: "how old a signed heartbeat may be",
    default: 5,
    parse: wholeNumber(1, 86400),
  }),
  setting({
    key: "runtimeAdapter",
    flag: "runtime-adapter",
    env: "HEARTBEAT_RUNTIME_ADAPTER",
    directive: "HeartbeatRuntimeAdapter",
    commands: BOTH,
    value: "NAME",
    group: "Other",
    help: "UDP implementation: deno, bun or node (if not given: the runtime's own)",
    parse: oneOf(ADAPTERS),
  }),
  setting({
    key: "logLevel",
    flag: "log-level",
    env: "HEARTBEAT_LOG_LEVEL",
    directive: "HeartbeatLogLevel",
    commands: BOTH,
    value: "LEVEL",
    group: "Other",
    help: "debug, info, warn or error",
    default: "info",
    parse: oneOf(LOG_LEVELS),
  }),
]);

/**
 * The settings where nothing sets them: each row's default, a list copied so that no caller can
 * change a row's. Complete, as withEveryRequiredRow() and DefaultRequired check.
 */
function defaults(): Settings {
  return Object.fromEntries(
    SETTINGS.filter((row) => row.default !== undefined).map((row) => [
      row.key,
      Array.isArray(row.default) ? [...row.default] : row.default,
    ]),
  ) as unknown as Settings;
}

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
  /** A repeatable setting's origin for each of its values, in order: `FILE:LINE` for each line. */
  itemOrigins: Partial<Record<keyof Settings, string[]>>;
  /** Everything wrong, each a line that says where. */
  problems: string[];
  /** A setting's name as the operator gave it, for messages about it. */
  names: SettingNames;
}

/**
 * How a message names a setting: the way the operator gave it: `--listen`, `HEARTBEAT_LISTEN`,
 * or `HeartbeatListen at FILE:LINE`; the flag when it was not given.
 */
export type SettingNames = (key: keyof Settings) => string;

/** Each setting's row, by key. */
const ROWS: ReadonlyMap<keyof Settings, Setting> = new Map(SETTINGS.map((row) => [row.key, row]));

/** The row of the setting `key`. */
export function rowOf(key: keyof Settings): Setting {
  const row = ROWS.get(key);
  if (!row) throw new Error(`no row in SETTINGS for ${key}`);
  return row;
}

/**
 * The names `origins` gives each setting (see SettingNames). Without `at`, a directive is named
 * alone, for a message that starts with its FILE:LINE already (-t's).
 */
export function settingNames(origins: Resolved["origins"], at = true): SettingNames {
  return (key) => {
    const row = rowOf(key);
    const origin = origins[key];
    if (origin === row.env) return row.env;
    if (origin && /:\d+$/.test(origin)) return at ? `${row.directive} at ${origin}` : row.directive;
    return `--${row.flag}`;
  };
}

/** The flags' names, for code and tests that have no resolved settings (their defaults). */
export const FLAG_NAMES: SettingNames = settingNames({});

/** The effective settings from all layers, and every problem in any of them. */
export function resolveSettings(layers: Layers): Resolved {
  const values: Partial<Settings> = {};
  const origins: Resolved["origins"] = {};
  const itemOrigins: Resolved["itemOrigins"] = {};
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
      put(values, spec.key, chosen.value);
      origins[spec.key] = chosen.origin;
      if (spec.multiple) itemOrigins[spec.key] = chosen.itemOrigins;
    }
  }
  if (layers.config) {
    for (const directive of layers.config.directives) {
      if (
        /^heartbeat/i.test(directive.name) && !KNOWN_DIRECTIVES.has(directive.name.toLowerCase())
      ) {
        const meant = SETTINGS.find((spec) =>
          spec.directive.toLowerCase() ===
            closest(directive.name.toLowerCase(), [...KNOWN_DIRECTIVES])
        )?.directive;
        problems.push(
          `${directive.file}:${directive.line}: Invalid command '${directive.name}', perhaps misspelled${
            meant ? `; did you mean '${meant}'?` : ""
          }`,
        );
      }
    }
    problems.push(
      ...layers.config.problems.map((problem) =>
        problem.line
          ? `${problem.file}:${problem.line}: ${problem.message}`
          : problem.file
          ? `${problem.file}: ${problem.message}`
          : problem.message
      ),
    );
  }
  for (const row of SETTINGS) if (row.default !== undefined) origins[row.key] ??= "default";
  return {
    settings: { ...defaults(), ...values },
    origins,
    itemOrigins,
    problems: [...flagProblems, ...inLineOrder(problems)],
    names: settingNames(origins),
  };
}

/**
 * Problems as the operator reads the files: those of one file in line order (each setting's
 * row finds its own, so they come by row), files in the order their first problem came.
 */
function inLineOrder(problems: string[]): string[] {
  const located = (problem: string) => /^(.+?):(\d+): /.exec(problem);
  const files = [...new Set(problems.map((problem) => located(problem)?.[1]))];
  const place = (problem: string) => {
    const where = located(problem);
    return where ? [files.indexOf(where[1]), Number(where[2])] : [files.indexOf(undefined), 0];
  };
  return [...problems].sort((a, b) => {
    const [fileA, lineA] = place(a);
    const [fileB, lineB] = place(b);
    return fileA - fileB || lineA - lineB;
  });
}

/** `settings[key] = value`, typed by the key. */
function put<K extends keyof Settings>(settings: Partial<Settings>, key: K, value: Settings[K]) {
  settings[key] = value;
}

interface Candidate {
  value: Settings[keyof Settings];
  origin: string;
  itemOrigins: string[];
}

function fromFlag(
  spec: Setting,
  flags: Layers["flags"],
  problems: string[],
): Candidate | undefined {
  const raw = flags[spec.flag];
  if (raw === undefined) return undefined;
  const texts = Array.isArray(raw) ? raw : [raw];
  return collect(
    spec,
    texts.map((text) => ({ text, where: `--${spec.flag} '${text}'`, origin: `--${spec.flag}` })),
    `--${spec.flag}`,
    problems,
    WORKING_FOLDER,
  );
}

function fromEnv(spec: Setting, env: Layers["env"], problems: string[]): Candidate | undefined {
  const raw = env[spec.env];
  if (raw === undefined || raw === "") return undefined;
  const texts = spec.multiple ? raw.split(spec.list?.split ?? /[\s,]+/).filter(Boolean) : [raw];
  return collect(
    spec,
    texts.map((text) => ({ text, where: `${spec.env} '${text}'`, origin: spec.env })),
    spec.env,
    problems,
    WORKING_FOLDER,
  );
}

function fromConfig(spec: Setting, config: ConfigRead, problems: string[]): Candidate | undefined {
  const lines = config.directives.filter((directive) =>
    directive.name.toLowerCase() === spec.directive.toLowerCase()
  );
  if (lines.length === 0) return undefined;
  const usable = lines.filter((directive) => {
    const where = `${directive.file}:${directive.line}: ${spec.directive}`;
    if (directive.sections.length) {
      problems.push(
        `${where} cannot occur within <${
          directive.sections[directive.sections.length - 1].name
        }> section`,
      );
    } else if (directive.args.length !== 1) {
      problems.push(`${where} takes one argument`);
    } else if (directive.undefinedVariables.length) {
      problems.push(`${where}: ${undefinedVariable(directive.undefinedVariables[0])}`);
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
      origin: `${directive.file}:${directive.line}`,
    })),
    used.map((directive) => `${directive.file}:${directive.line}`).join(", "),
    problems,
    { "runtime-dir": config.runtimeDir, "server-root": config.serverRoot },
  );
}

/** What a flag's or variable's relative path is relative to. */
const WORKING_FOLDER = { "runtime-dir": ".", "server-root": "." };

/** Parses each text; a problem is `WHERE: reason` (or `WHERE reason` after a colon). */
function collect(
  spec: Setting,
  texts: { text: string; where: string; origin: string }[],
  origin: string,
  problems: string[],
  folders: Record<NonNullable<Setting["file"]>, string>,
): Candidate | undefined {
  const values: unknown[] = [];
  const itemOrigins: string[] = [];
  for (const { text, where, origin } of texts) {
    try {
      const value = spec.parse(text);
      values.push(
        spec.file && typeof value === "string" ? resolve(folders[spec.file], value) : value,
      );
      itemOrigins.push(origin);
    } catch (error) {
      if (!(error instanceof SettingError)) throw error;
      problems.push(
        where.endsWith(":") ? `${where} ${error.message}` : `${where}: ${error.message}`,
      );
    }
  }
  if (values.length === 0) return undefined;
  return { value: spec.takes(values), origin, itemOrigins };
}

/**
 * The settings `command` runs with, as a table: directive, value, and where the value came
 * from (`default` for the defaults). Settings that nothing set and that have no default are
 * left out.
 */
export function describeSettings(resolved: Resolved, command: Command = "agent"): string {
  const rows = SETTINGS.filter((spec) => spec.commands.includes(command)).flatMap((spec) => {
    const value = resolved.settings[spec.key];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) return [];
    // Addresses and ranges keep the text they were given.
    const shown = Array.isArray(value)
      ? value.map((item) => typeof item === "string" ? item : (item as { text: string }).text).join(
        spec.list?.join ?? " ",
      )
      : typeof value === "object"
      ? (value as { text: string }).text
      : String(value);
    return [[spec.directive, shown, resolved.origins[spec.key] ?? ""]];
  });
  return formatColumns([["directive", "value", "from"], ...rows]);
}
