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
  heardElsewhere,
  type Member,
  memberShares,
  type Share,
} from "../monitor/balancer.ts";
import { parseStorage, type StoredServer } from "../monitor/storage.ts";
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
    io.stdout(
      `${name} (members in ${request.configFile}'s order: ${
        members.map((member) => member.url).join(", ")
      })`,
    );
    io.stdout(memberTable(servers, members));
  }
  return EXIT_OK;
}

/** The balancers of an Apache config and their members, in order. */
function membersOf(configFile: string): Map<string, Member[]> {
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
      age(server),
      `${server.weight}${quartered(server, server.up)}`,
      percent(server.share),
    ]),
  ];
  return formatColumns(rows);
}

/**
 * One row per balancer member, as the balancer draws: its server found by host alone (a
 * heartbeat's port= plays no part), and where a host has several members, whose picks go to
 * which; then the servers heard on no member's host.
 */
function memberTable(servers: StoredServer[], members: Member[]): string {
  const rows = [
    ["member", "server", "ready", "busy", "age", "weight", "share"],
    ...memberShares(servers, members).map((row) => {
      const { server } = row;
      if (!server) return [row.member, "-", "-", "-", "-", "0 (no heartbeat)", percent(0)];
      return [
        row.member,
        server.ip,
        String(server.ready),
        String(server.busy),
        age(server),
        `${row.weight}${quartered(server, row.up)}${
          row.up && row.picksTo !== row.member ? ` (its picks go to ${row.picksTo})` : ""
        }`,
        percent(row.share),
      ];
    }),
    ...heardElsewhere(servers, members).map((server) => [
      "-",
      server.ip,
      String(server.ready),
      String(server.busy),
      age(server),
      "0 (not a member)",
      percent(0),
    ]),
  ];
  return formatColumns(rows);
}

function age(server: StoredServer): string {
  return server.lastseen < 0
    ? "?"
    : `${server.lastseen} s${server.lastseen >= BALANCER_MAX_LASTSEEN ? " (too old)" : ""}`;
}

function quartered(server: StoredServer, up: boolean): string {
  return server.busy === 0 && server.ready !== 0 && up ? " (ready/4)" : "";
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}
