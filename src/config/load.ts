/** Settings from flags, the environment and, when one is named, a config file on disk. */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
} from "node:fs";
import { resolve } from "node:path";
import { KNOWN_DIRECTIVES, type Layers, type Resolved, resolveSettings } from "../settings.ts";
import { type ConfigFs, readHttpdConfig } from "./httpd.ts";

/** A config file is a regular file of at most this size; Apache reads nothing else either. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export const nodeConfigFs: ConfigFs = {
  readFile: readConfigFile,
  isDirectory: (path) => statSync(path).isDirectory(),
  exists: (path) => existsSync(path),
  readdir: (path) => readdirSync(path),
};

/**
 * The text of a config file, refusing what is not a regular file (a FIFO would hang the read,
 * /dev/zero would never end) or is larger than MAX_CONFIG_BYTES.
 */
function readConfigFile(path: string): string {
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new Error("not a regular file");
    if (info.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/** This agent is mod_heartbeat, so <IfModule mod_heartbeat.c> holds. */
const BUILTIN_MODULES = ["heartbeat_module", "mod_heartbeat.c"];

/** The config file named by --config, else by HEARTBEAT_CONFIG, if any. */
export function configFileOf(
  configFlag: string | undefined,
  env: Layers["env"],
): string | undefined {
  const file = configFlag ?? env.HEARTBEAT_CONFIG;
  return file ? resolve(file) : undefined;
}

export function loadSettings(
  options: { flags: Layers["flags"]; env: Layers["env"]; configFile?: string; fs?: ConfigFs },
): Resolved {
  const config = options.configFile === undefined
    ? undefined
    : readHttpdConfig(options.configFile, {
      fs: options.fs ?? nodeConfigFs,
      env: options.env,
      knownDirectives: KNOWN_DIRECTIVES,
      builtinModules: BUILTIN_MODULES,
    });
  return resolveSettings({ flags: options.flags, env: options.env, config });
}
