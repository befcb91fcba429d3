/**
 * A runtime API socket that misbehaves, at PATH: `stream` answers every command with text
 * without end (64 KiB a millisecond, for at most SECONDS); `drip` answers one byte every 500 ms,
 * for at most SECONDS; `missing` answers as HAProxy does for a backend it does not have.
 * Prints {"listening":true} once it listens. Usage: fake-haproxy.ts stream|drip|missing PATH SECONDS
 */
import { createServer, type Socket } from "node:net";

function stream(connection: Socket, lastMs: number): void {
  const chunk = Buffer.alloc(64 * 1024, "1 pushed 1 o1 10.0.0.1 2 0 1 1\n");
  const until = Date.now() + lastMs;
  const timer = setInterval(() => {
    if (Date.now() > until || connection.destroyed) {
      clearInterval(timer);
      connection.end();
    } else if (connection.writableLength < 1 << 20) connection.write(chunk);
  }, 1);
  connection.on("close", () => clearInterval(timer));
}

function drip(connection: Socket, lastMs: number): void {
  const until = Date.now() + lastMs;
  const timer = setInterval(() => {
    if (Date.now() > until || connection.destroyed) {
      clearInterval(timer);
      connection.end();
    } else connection.write("#");
  }, 500);
  connection.on("close", () => clearInterval(timer));
}

/** Serves `mode` at `path`; resolves once it listens. */
export function serveFakeHAProxy(
  mode: string,
  path: string,
  lastMs: number,
): Promise<import("node:net").Server> {
  const server = createServer((connection) => {
    connection.on("error", () => {});
    connection.once("data", () => {
      if (mode === "stream") stream(connection, lastMs);
      else if (mode === "drip") drip(connection, lastMs);
      else connection.end("Can't find backend.\n");
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

if (import.meta.main) {
  const [mode, path, seconds] = process.argv.slice(2);
  await serveFakeHAProxy(mode, path, Number(seconds) * 1000);
  console.log(JSON.stringify({ listening: true }));
  setTimeout(() => process.exit(0), Number(seconds) * 1000 + 60_000);
}
