/** `heartbeat servers FILE`: a storage file as mod_lbmethod_heartbeat sees it. */
import { readFileSync } from "node:fs";
import { formatColumns } from "../columns.ts";
import { describeError } from "../errors.ts";
import { BALANCER_MAX_LASTSEEN, balancerShares, parseStorage } from "../monitor/storage.ts";
import { type CommandIO, EXIT_FAILURE, EXIT_OK } from "./context.ts";

/** `heartbeat servers FILE`: a storage file as the balancer sees it. */
export function showServers(file: string, io: CommandIO): number {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    io.stderr(`heartbeat: cannot read ${file}: ${describeError(error)}`);
    return EXIT_FAILURE;
  }
  const shares = balancerShares(parseStorage(text));
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
      `${server.weight}${
        server.busy === 0 && server.ready !== 0 && server.lastseen < BALANCER_MAX_LASTSEEN
          ? " (ready/4)"
          : ""
      }`,
      `${(server.share * 100).toFixed(1)}%`,
    ]),
  ];
  io.stdout(formatColumns(rows));
  if (shares.length === 0) io.stdout(`(no servers in ${file})`);
  return EXIT_OK;
}
