/**
 * `heartbeat servers FILE [-f httpd.conf [--balancer NAME]]`: a storage file as
 * mod_lbmethod_heartbeat sees it, each server's weight and share of new requests; with the
 * proxy's config, in each balancer's member order, which decides who wins the draw's tie.
 */
import { readFileSync } from "node:fs";
import { UsageError } from "../cli.ts";
import { formatColumns } from "../columns.ts";
import { readHttpdConfig } from "../config/httpd.ts";
import { nodeConfigFs } from "../config/load.ts";
import { describeError } from "../errors.ts";
import {
  BALANCER_MAX_LASTSEEN,
  balancerMembers,
  balancerShares,
  parseStorage,
  type Share,
} from "../monitor/storage.ts";
import { KNOWN_DIRECTIVES } from "../settings.ts";
import { type CommandIO, EXIT_FAILURE, EXIT_OK } from "./context.ts";

export interface ServersRequest {
  file: string;
  /** The proxy's Apache config, for the balancers' member order. */
  configFile?: string;
  /** balancer://NAME (or NAME), when the config has several balancers. */
  balancer?: string;
}

export function showServers(request: ServersRequest, io: CommandIO): number {
  const { file } = request;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    io.stderr(`heartbeat: cannot read ${file}: ${describeError(error)}`);
    return EXIT_FAILURE;
  }
  const servers = parseStorage(text);
  if (!request.configFile) {
    io.stdout(table(balancerShares(servers)));
    io.stdout(
      servers.length === 0
        ? `(no servers in ${file})`
        : "(in the file's order; with -f httpd.conf, in the balancer's: the last member up gets one pick more)",
    );
    return EXIT_OK;
  }
  const balancers = membersOf(request.configFile);
  const wanted = request.balancer?.replace(/^(balancer:\/\/)?/i, "balancer://").replace(/\/+$/, "")
    .toLowerCase();
  const chosen = [...balancers].filter(([name]) => !wanted || name === wanted);
  if (chosen.length === 0) {
    throw new UsageError(
      wanted
        ? `${request.configFile} has no ${wanted}; its balancers: ${
          [...balancers.keys()].join(", ") || "none"
        }`
        : `${request.configFile} has no balancer with BalancerMember lines`,
    );
  }
  for (const [name, members] of chosen) {
    io.stdout(`${name} (members in ${request.configFile}'s order: ${members.join(", ")})`);
    io.stdout(table(balancerShares(servers, members)));
  }
  return EXIT_OK;
}

/** The balancers of an Apache config and their members' hosts, in order. */
function membersOf(configFile: string): Map<string, string[]> {
  const read = readHttpdConfig(configFile, {
    fs: nodeConfigFs,
    env: process.env,
    knownDirectives: KNOWN_DIRECTIVES,
    builtinModules: [],
  });
  const fatal = read.problems.find((problem) => problem.line === 0);
  if (fatal) throw new UsageError(fatal.message);
  return balancerMembers(read.directives);
}

function table(shares: Share[]): string {
  const rows = [
    ["server", "port", "ready", "busy", "age", "weight", "share"],
    ...shares.map((server) => [
      server.ip,
      String(server.port),
      String(server.ready),
      String(server.busy),
      server.lastseen < 0
        ? "?"
        : `${server.lastseen} s${server.lastseen >= BALANCER_MAX_LASTSEEN ? " (too old)" : ""}`,
      `${server.weight}${server.busy === 0 && server.ready !== 0 && server.up ? " (ready/4)" : ""}${
        server.up ? "" : server.lastseen < BALANCER_MAX_LASTSEEN ? " (not a member)" : ""
      }`,
      `${(server.share * 100).toFixed(1)}%`,
    ]),
  ];
  return formatColumns(rows);
}
