/**
 * An HTTP server (node:http) listening, the one way each starts, and the one way each answers.
 * (The agent-check listens on each runtime's own sockets: src/agent/agent-check.ts.)
 */
import type { ServerResponse } from "node:http";

interface Listenable {
  once(event: "error", listener: (error: Error) => void): unknown;
  listen(port: number, host: string, listening: () => void): unknown;
  address(): unknown;
}

/** Resolves to the port bound (the one asked for, or the system's choice for 0) once listening. */
export async function listen(
  server: Listenable,
  address: { host: string; port: number },
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const bound = server.address();
  return typeof bound === "object" && bound && "port" in bound ? Number(bound.port) : address.port;
}

/** An answer of `body`, plain text unless `headers` say otherwise, with its length. */
export function reply(
  response: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    "Content-Type": "text/plain",
    ...headers,
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}
