/**
 * mod_heartmonitor's storage file, which mod_lbmethod_heartbeat reads: one line per server,
 * `IP &ready=N&busy=M&lastseen=S&port=P`. Written here; read here as the balancer reads it.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseFields } from "../codec.ts";
import { errorCode } from "../errors.ts";
import { DEFAULT_PORT, type ServerEntry } from "./table.ts";

/** A table entry as the storage file keeps it at `now`: its age in whole seconds. */
export function storedServer(entry: ServerEntry, now: number): StoredServer {
  const { ip, ready, busy, port } = entry;
  return {
    ip,
    ready,
    busy,
    lastseen: Math.max(0, Math.floor((now - entry.lastSeen) / 1000)),
    port,
  };
}

export function formatStorage(entries: readonly ServerEntry[], now: number): string {
  return entries.map((entry) => {
    const { ip, ready, busy, lastseen, port } = storedServer(entry, now);
    return `${ip} &ready=${ready}&busy=${busy}&lastseen=${lastseen}&port=${port}\n`;
  }).join("");
}

/**
 * Replaces `path` with `text` at once: a temporary file beside it, readable by everyone (the
 * proxy runs as another user), renamed over it. Readers see the old file or the new one. The
 * temporary file is made here and nowhere else (O_EXCL, O_NOFOLLOW: never a file or symlink
 * someone put there), and its mode set on the open descriptor, never by path: a symlink swapped
 * in by whoever can rename in the folder is never followed. (That someone could still swap
 * the file before the rename: see storageFolderProblem.)
 */
export function writeFileAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`;
  let descriptor: number | undefined;
  try {
    descriptor = openSync(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o644,
    );
    fchmodSync(descriptor, 0o644); // whatever the umask
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length;) {
      written += writeSync(descriptor, bytes, written, bytes.length - written);
    }
    closeSync(descriptor);
    descriptor = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (descriptor !== undefined) closeSync(descriptor);
    try {
      unlinkSync(temporary);
    } catch { /* never created */ }
    throw error;
  }
}

/**
 * Why a folder is unsafe for the storage file, or undefined: one anybody may write to without
 * the sticky bit lets every local user rename over or swap the monitor's files there.
 */
export function storageFolderProblem(mode: number): string | undefined {
  return (mode & 0o002) && !(mode & 0o1000)
    ? `it is writable by everyone (mode ${
      (mode & 0o7777).toString(8).padStart(4, "0")
    }) without the sticky bit: any local user could swap the monitor's files there; use a folder only the monitor's user may write to, or chmod +t it`
    : undefined;
}

/**
 * Removes the temporary files writeFileAtomic left beside `path` in a process that is gone (a
 * monitor killed while writing); returns their paths.
 */
export function removeStaleTemporaries(path: string): string[] {
  const prefix = `${basename(path)}.tmp.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const pid = Number(name.startsWith(prefix) ? name.slice(prefix.length).split(".")[0] : NaN);
    if (!Number.isInteger(pid) || processAlive(pid)) return [];
    try {
      unlinkSync(join(dirname(path), name));
      return [join(dirname(path), name)];
    } catch {
      return [];
    }
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM";
  }
}

export interface StoredServer {
  ip: string;
  ready: number;
  busy: number;
  /** Seconds since the last heartbeat; -1 when the line has none, as in the balancer. */
  lastseen: number;
  port: number;
}

/** The lines of a storage file as mod_lbmethod_heartbeat reads them (comments and lines without a space skipped, atoi numbers). */
export function parseStorage(text: string): StoredServer[] {
  return text.split("\n").filter((line) =>
    line !== "" && !line.startsWith("#") && line.includes(" ")
  ).map((line) => {
    const space = line.indexOf(" ");
    const fields = parseFields(line.slice(space + 1));
    const number = (key: string, fallback: number) =>
      fields.has(key) ? atoi(fields.get(key)!) : fallback;
    return {
      ip: line.slice(0, space),
      ready: number("ready", 0),
      busy: number("busy", 0),
      lastseen: number("lastseen", -1),
      port: number("port", DEFAULT_PORT),
    };
  });
}

/** C's atoi: optional spaces and sign, then digits; anything else stops it; no digits is 0. */
function atoi(text: string): number {
  const match = /^\s*([+-]?\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}
