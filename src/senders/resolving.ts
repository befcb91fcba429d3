/**
 * A destination given by host name: every address (A and AAAA) the name resolves to gets each
 * heartbeat (a Kubernetes headless service of proxies works), and the name is looked up again
 * every so often. A failed lookup keeps the addresses known so far.
 */
import { familyOf, lookupAll } from "../address.ts";
import { describeError, errorCode } from "../errors.ts";
import { type Logger, ProblemLog } from "../log.ts";
import type { UdpTransport } from "../transport/transport.ts";
import type { Sender } from "./sender.ts";

export type LookupAll = (host: string) => Promise<string[]>;

export interface ResolvingOptions {
  /** The addresses found at start. */
  addresses: string[];
  resolveIntervalMs: number;
  now: () => number;
  logger: Logger;
  lookup?: LookupAll;
}

/**
 * Sends to every address of `host`:`port`, by the transport for its address family, looking the
 * name up again as it goes.
 */
export function createResolvingSender(
  host: string,
  port: number,
  transportFor: (family: 4 | 6) => Promise<UdpTransport>,
  options: ResolvingOptions,
): Sender {
  const name = `${host}:${port}`;
  const find = options.lookup ?? lookupAll;
  const problems = new ProblemLog(options.logger, { now: options.now, repeatMs: 10 * 60_000 });
  let addresses = options.addresses;
  let resolvedAt = options.now();
  let resolving: Promise<void> | undefined;

  const refresh = () => {
    resolvedAt = options.now();
    resolving = find(host).then((found) => {
      if (found.length === 0) throw new Error("no address");
      problems.ok("lookup", `${host} resolves again`);
      if (found.join() !== addresses.join()) {
        options.logger.info(`${name} now means ${found.join(", ")} (was ${addresses.join(", ")})`);
      }
      addresses = found;
    }, (error) => {
      problems.fail(
        "lookup",
        `cannot look up ${host} (${errorCode(error) ?? describeError(error)}); still sending to ${
          addresses.join(", ")
        }`,
      );
    }).finally(() => resolving = undefined);
  };

  return {
    name,
    async send(payload) {
      // The lookup runs beside the heartbeats, never in their way: this one goes to the addresses known now.
      if (!resolving && options.now() - resolvedAt >= options.resolveIntervalMs) refresh();
      const results = await Promise.allSettled(
        addresses.map(async (address) =>
          (await transportFor(familyOf(address))).send(payload, { host: address, port })
        ),
      );
      const failed = results.flatMap((result, i) =>
        result.status === "rejected" ? [`${addresses[i]}: ${describeError(result.reason)}`] : []
      );
      if (failed.length) throw new Error(failed.join("; "));
    },
  };
}
