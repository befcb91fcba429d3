/** Settings from flags, the environment and, when one is named, a config file on disk. */
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { readRegularFile } from "../regular-file.ts";
import { KNOWN_DIRECTIVES, type Layers, type Resolved, resolveSettings } from "../settings.ts";
import { readHttpdConfig } from "./httpd.ts";
import type { ConfigFs } from "./include-paths.ts";

/** A config file is a regular file of at most this size; Apache reads nothing else either. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export const nodeConfigFs: ConfigFs = {
  readFile: (path) => readRegularFile(path, MAX_CONFIG_BYTES).text,
  isDirectory: (path) => statSync(path).isDirectory(),
  exists: (path) => existsSync(path),
  readdir: (path) => readdirSync(path),
  realpath: (path) => realpathSync(path),
};

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
