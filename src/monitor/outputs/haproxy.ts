/**
 * Heartbeats turned into HAProxy weights, pushed through its runtime API (`stats socket ...
 * level admin`): each tick the monitor reads `show servers state BACKEND`, matches each server
 * to a heartbeat by address (and port, when the heartbeat named one), and sends `set server
 * BACKEND/SERVER weight W` for the weights that differ. Reading HAProxy's own state each time
 * means only changes are sent, and a restarted HAProxy gets every weight back at the next tick.
 */
import { describeError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { ProblemLog } from "../../log.ts";
import { family } from "../../prometheus.ts";
import { balancerWeights } from "../balancer.ts";
import type { ServerEntry } from "../table.ts";
import type { MonitorOutput } from "./output.ts";

/**
 * One exchange with the runtime API (connect, command, whole answer) has this long, from the
 * start: a socket that answers a byte at a time must not hold the push for good.
 */
export const EXCHANGE_DEADLINE_MS = 2_000;
/**
 * An answer larger than this has failed: `show servers state` takes about 200 bytes a server, so
 * this is some 20,000 servers, and a socket streaming without end cannot take the memory.
 */
export const MAX_ANSWER_BYTES = 4 << 20;

interface HAProxyServer {
  backend: string;
  name: string;
  address: string;
  port: number;
  weight: number;
}

/** `show servers state` rows, by its own header line. */
export function parseServersState(text: string): HAProxyServer[] {
  const lines = text.split("\n");
  const header = lines.find((line) => line.startsWith("# "))?.slice(2).split(" ");
  if (!header) return [];
  const column = (name: string) => header.indexOf(name);
  return lines.filter((line) => line && !line.startsWith("#") && line.includes(" ")).map((line) => {
    const fields = line.split(" ");
    return {
      backend: fields[column("be_name")],
      name: fields[column("srv_name")],
      address: fields[column("srv_addr")],
      port: Number(fields[column("srv_port")]),
      weight: Number(fields[column("srv_uweight")]),
    };
  }).filter((server) => server.backend && server.name);
}

export class HAProxyPush implements MonitorOutput {
  readonly name = "haproxy";
  changes = 0;
  errors = 0;
  readonly #sockets: string[];
  readonly #backends: string[];
  readonly #problems: ProblemLog;
  readonly #backendsName: string;
  /** The sync under way, if any. */
  #syncing: Promise<void> | undefined;

  constructor(
    options: {
      sockets: string[];
      backends: string[];
      /** How messages name the backends' setting: `--haproxy-backend`, or as it was given. */
      backendsName: string;
      logger: Logger;
      now: () => number;
    },
  ) {
    this.#backendsName = options.backendsName;
    this.#sockets = options.sockets;
    this.#backends = options.backends;
    this.#problems = new ProblemLog(options.logger, { now: options.now });
  }

  /** Each tick, in the background: an HAProxy that does not answer must not hold up the others. */
  update(entries: readonly ServerEntry[], now: number): void {
    void this.sync(entries, now);
  }

  /** Brings every HAProxy's weights in line with `entries`; a sync under way is not doubled. */
  sync(entries: readonly ServerEntry[], now: number): Promise<void> {
    this.#syncing ??= Promise.all(
      this.#sockets.map((socket) => this.#syncOne(socket, entries, now)),
    ).then(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  /** For /healthz: the backends in missingBackends. */
  problem(): string | undefined {
    const missing = this.missingBackends;
    return missing.length ? `no such ${this.#backendsName}: ${missing.join(", ")}` : undefined;
  }

  counters(): Record<string, number | string> {
    return { "HAProxy weights set": this.changes, "HAProxy errors": this.errors };
  }

  metrics(): string[] {
    return [
      family("heartbeat_haproxy_weight_changes_total", "Weights set in HAProxy.", "counter", [
        `heartbeat_haproxy_weight_changes_total ${this.changes}`,
      ]),
      family(
        "heartbeat_haproxy_errors_total",
        "Failed exchanges with HAProxy's runtime API.",
        "counter",
        [`heartbeat_haproxy_errors_total ${this.errors}`],
      ),
    ];
  }

  /** A sync under way ends within EXCHANGE_DEADLINE_MS: no socket is left open after a stop. */
  async close(): Promise<void> {
    await this.#syncing;
  }

  /**
   * The backends named by --haproxy-backend that an HAProxy answering says it does not have, as
   * `/healthz` tells them: a mistyped name would otherwise push nothing, silently.
   */
  get missingBackends(): string[] {
    return [...this.#missing];
  }

  readonly #missing = new Set<string>();

  async #syncOne(socket: string, entries: readonly ServerEntry[], now: number): Promise<void> {
    const key = `haproxy ${socket}`;
    try {
      const commands: string[] = [];
      for (const backend of this.#backends) {
        const answer = await runtimeCommand(socket, `show servers state ${backend}`);
        // Nothing at all is no answer (an HAProxy restarting), not a backend it says it lacks.
        if (answer.trim() === "") throw new Error(`no answer to 'show servers state ${backend}'`);
        const missing = `backend '${backend}' in HAProxy at ${socket}`;
        const table = answer.split("\n").some((line) => line.startsWith("# "));
        // Anything else (`Permission denied` at too low a level) is a failed push, not a name.
        if (!table && !/^Can't find backend/.test(answer.trim())) {
          throw new Error(
            `'show servers state ${backend}' answered ${
              JSON.stringify(answer.trim().split("\n")[0])
            }`,
          );
        }
        if (!table) {
          this.#missing.add(missing);
          this.#problems.fail(
            `${key} ${backend}`,
            `${this.#backendsName} ${backend}: HAProxy at ${socket} has no such backend ` +
              `(it says ${JSON.stringify(answer.trim().split("\n")[0])}): nothing is pushed there`,
          );
          continue;
        }
        if (this.#missing.delete(missing)) {
          this.#problems.ok(`${key} ${backend}`, `HAProxy at ${socket} has backend ${backend}`);
        }
        // Scaled over this backend's members only: no server outside it sets their weights.
        const members = parseServersState(answer).map((server) => ({
          server,
          entry: entries.find((candidate) =>
            candidate.ip === server.address &&
            (!candidate.portGiven || candidate.port === server.port)
          ),
        }));
        const weights = balancerWeights(
          members.flatMap(({ entry }) => entry ? [entry] : []),
          now,
        );
        for (const { server, entry } of members) {
          const weight = entry && weights.get(entry);
          if (weight !== undefined && weight !== server.weight) {
            commands.push(`set server ${server.backend}/${server.name} weight ${weight}`);
          }
        }
      }
      if (commands.length) {
        const answer = await runtimeCommand(socket, commands.join(";"));
        if (answer.trim()) throw new Error(answer.trim().split("\n")[0]);
        this.changes += commands.length;
      }
      this.#problems.ok(key, `HAProxy at ${socket} answers again`);
    } catch (error) {
      this.errors++;
      this.#problems.fail(
        key,
        `cannot set weights in HAProxy at ${socket}: ${describeError(error)}`,
      );
    }
  }
}

/**
 * One runtime API command (or several, `;`-separated) on a connection of its own; the answer,
 * whole within EXCHANGE_DEADLINE_MS of the start and at most MAX_ANSWER_BYTES, or an error.
 */
async function runtimeCommand(socket: string, command: string): Promise<string> {
  const { connect } = await import("node:net");
  const at = /^(.+):(\d+)$/.exec(socket);
  const what = `'${command.split(";")[0]}'${command.includes(";") ? " and the rest" : ""}`;
  return new Promise((resolve, reject) => {
    const connection = socket.startsWith("/") || !at
      ? connect({ path: socket })
      : connect({ host: at[1].replace(/^\[|\]$/g, ""), port: Number(at[2]) });
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (error: Error) => {
      clearTimeout(deadline);
      connection.destroy();
      reject(error);
    };
    const deadline = setTimeout(
      () => fail(new Error(`no whole answer to ${what} within ${EXCHANGE_DEADLINE_MS / 1000} s`)),
      EXCHANGE_DEADLINE_MS,
    );
    connection.on("connect", () => connection.write(`${command}\n`));
    connection.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        fail(new Error(`the answer to ${what} is larger than ${MAX_ANSWER_BYTES} bytes`));
      } else chunks.push(chunk);
    });
    connection.on("error", fail);
    connection.on("close", () => {
      clearTimeout(deadline);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
  });
}
