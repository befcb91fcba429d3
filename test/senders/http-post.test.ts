import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, test } from "node:test";
import { createHttpSender } from "../../src/senders/http-post.ts";

/** A server on 127.0.0.1 answering with `handler`; counts requests and connections. */
async function server(
  handler: (request: IncomingMessage, response: ServerResponse, body: string) => void,
) {
  const seen = { requests: 0, connections: 0, bodies: [] as string[] };
  const http: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => body += chunk);
    request.on("end", () => {
      seen.requests++;
      seen.bodies.push(body);
      handler(request, response, body);
    });
  });
  http.on("connection", () => seen.connections++);
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", () => resolve()));
  const address = http.address();
  const port = typeof address === "object" && address ? address.port : 0;
  servers.push(http);
  return { url: new URL(`http://127.0.0.1:${port}/heartbeat`), seen };
}
const servers: Server[] = [];
after(() => {
  for (const http of servers) {
    http.closeAllConnections?.();
    http.close();
  }
});

const payload = new TextEncoder().encode("v=1&ready=3&busy=1");
const ok = (_: IncomingMessage, response: ServerResponse) => response.end("OK");

test("http sender: POSTs the heartbeat as a form body, over one kept-alive connection", async () => {
  const { url, seen } = await server((request, response, body) => {
    assert.equal(request.method, "POST");
    assert.equal(request.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(body, "v=1&ready=3&busy=1");
    ok(request, response);
  });
  const sender = createHttpSender(url, { timeoutMs: 2000, now: () => 0 });
  assert.equal(sender.name, url.href);
  for (let i = 0; i < 3; i++) await sender.send(payload);
  sender.close();
  assert.equal(seen.requests, 3);
  assert.equal(seen.connections, 1);
});

test("http sender: anything but 200 OK is a failure, then the destination waits 1, 2, 4 … s", async () => {
  let status = 503;
  const { url, seen } = await server((_, response) => {
    response.statusCode = status;
    response.end(status === 200 ? "OK" : "Service Unavailable\n");
  });
  let now = 0;
  const sender = createHttpSender(url, { timeoutMs: 2000, now: () => now });
  await assert.rejects(
    sender.send(payload),
    /answered 503 Service Unavailable: Service Unavailable/,
  );
  await assert.rejects(sender.send(payload), /not tried for 1 s more, after 1 failure\(s\)/);
  assert.equal(seen.requests, 1, "no request while backing off");
  now = 1000;
  await assert.rejects(sender.send(payload), /answered 503/);
  now = 2500;
  await assert.rejects(sender.send(payload), /not tried for 1 s more, after 2 failure\(s\)/);
  now = 3000;
  status = 200;
  await sender.send(payload);
  await sender.send(payload);
  assert.equal(seen.requests, 4);
  sender.close();
});

test("http sender: a 200 whose body is not OK is a failure too", async () => {
  const { url } = await server((_, response) => response.end("<html>It works!</html>"));
  const sender = createHttpSender(url, { timeoutMs: 2000, now: () => 0 });
  await assert.rejects(sender.send(payload), /answered 200 OK: <html>It works!<\/html>/);
  sender.close();
});

test("http sender: a proxy that does not answer fails within the timeout", async () => {
  const { url } = await server(() => {}); // never answers
  const sender = createHttpSender(url, { timeoutMs: 300, now: () => 0 });
  const started = Date.now();
  await assert.rejects(sender.send(payload), /did not answer in time/);
  assert.ok(Date.now() - started < 2000);
  sender.close();
});

test("http sender: a refused connection fails in one wording, without the URL the agent's message names", async () => {
  const sender = createHttpSender(new URL("http://127.0.0.1:9/heartbeat"), {
    timeoutMs: 1000,
    now: () => 0,
  });
  await assert.rejects(sender.send(payload), /^Error: connection refused \(ECONNREFUSED\)$/);
  sender.close();
});
