/**
 * An HTTPS server that takes POSTed heartbeats and answers OK, for the agent's https test.
 * Usage: https-receiver.ts HOST PORT CERT KEY; prints {"listening":true}, then each body as
 * {"body": …}.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";

const [host, port, cert, key] = process.argv.slice(2);
const server = createServer(
  { cert: readFileSync(cert), key: readFileSync(key) },
  (request, response) => {
    let body = "";
    request.on("data", (chunk) => body += chunk);
    request.on("end", () => {
      console.log(JSON.stringify({ body }));
      response.end("OK");
    });
  },
);
server.listen(Number(port), host, () => console.log(JSON.stringify({ listening: true })));
