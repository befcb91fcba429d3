/**
 * `tcp[:PORTS]`: established inbound TCP connections to this host's listening ports, from
 * /proc/net/tcp and /proc/net/tcp6 (Linux), against the capacity the admin gives.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { decimal, type Load } from "../codec.ts";
import { errorCode } from "../errors.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
import {
  requireCapacity,
  SourceConfigError,
  type SourceDefinition,
  spareCapacity,
} from "./source.ts";

export interface TcpSocket {
  localPort: number;
  /** The kernel's state number: 0x01 ESTABLISHED, 0x0A LISTEN, … */
  state: number;
}

const ESTABLISHED = 0x01;
const LISTEN = 0x0a;
const ROW =
  /^\s*\d+:\s+[0-9A-Fa-f]+:([0-9A-Fa-f]{4})\s+[0-9A-Fa-f]+:[0-9A-Fa-f]{4}\s+([0-9A-Fa-f]{2})\s/;

/** The sockets in a /proc/net/tcp or tcp6 file; throws on a line that is not one. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const [header, ...rows] = text.split("\n").filter((line) => line.trim() !== "");
  if (!header || !/^\s*sl\s+local_address/.test(header)) {
    throw new Error("not a /proc/net/tcp file: no header");
  }
  return rows.map((row) => {
    const match = ROW.exec(row);
    if (!match) throw new Error(`not a /proc/net/tcp line: ${JSON.stringify(row.slice(0, 80))}`);
    return { localPort: parseInt(match[1], 16), state: parseInt(match[2], 16) };
  });
}

/**
 * busy = established connections whose local port is a watched port that something listens on
 * (so: inbound); ready = capacity - busy. `ports` undefined watches every listening port.
 * Throws when none of the watched ports is listening: the server is down.
 */
export function tcpLoad(
  sockets: TcpSocket[],
  ports: Set<number> | undefined,
  capacity: number,
): Load {
  const listening = new Set(sockets.filter((s) => s.state === LISTEN).map((s) => s.localPort));
  const watched = ports ? new Set([...ports].filter((port) => listening.has(port))) : listening;
  if (watched.size === 0) {
    throw new Error(
      ports
        ? `nothing listens on port ${[...ports].join(", ")}`
        : "nothing listens on any TCP port",
    );
  }
  const busy = sockets.filter((s) => s.state === ESTABLISHED && watched.has(s.localPort)).length;
  return { ready: spareCapacity(capacity, busy), busy };
}

function parsePorts(argument: string, names: SettingNames): Set<number> {
  const ports = argument.split(",").map((text) => decimal(text.trim()));
  if (ports.length === 0 || ports.some((port) => !(port >= 1 && port <= 65535))) {
    throw new SourceConfigError(
      `${names("source")} tcp:PORTS: '${argument}' is not a list of ports like 80,443`,
    );
  }
  return new Set(ports);
}

async function readSockets(
  procRoot: string,
  file: string,
  required: boolean,
): Promise<TcpSocket[]> {
  try {
    return parseProcNetTcp(await readFile(join(procRoot, "net", file), "utf8"));
  } catch (error) {
    if (!required && errorCode(error) === "ENOENT") return []; // IPv6 disabled
    throw error;
  }
}

export const tcpSource: SourceDefinition = {
  summary:
    "established connections to listening ports, from /proc/net/tcp{,6} (Linux); needs --capacity",
  create(argument, settings) {
    const procRoot = settings.procRoot ?? "/proc";
    if (settings.procRoot === undefined && process.platform !== "linux") {
      throw new SourceConfigError(
        `${
          settings.names("source")
        } tcp reads /proc/net/tcp, which only Linux has (this is ${process.platform})`,
      );
    }
    const ports = argument === undefined ? undefined : parsePorts(argument, settings.names);
    const capacity = requireCapacity("tcp", settings);
    return {
      description: `tcp ${
        ports ? `port ${[...ports].join(",")}` : "listening ports"
      } capacity ${capacity}`,
      read: async () => {
        const [v4, v6] = await Promise.all([
          readSockets(procRoot, "tcp", true),
          readSockets(procRoot, "tcp6", false),
        ]);
        return tcpLoad([...v4, ...v6], ports, capacity);
      },
    };
  },
};
