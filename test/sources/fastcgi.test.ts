/** src/sources/fastcgi.ts, on php-fpm's recorded answers and on fake servers over unix sockets */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  connectionError,
  encodeRequest,
  FastCgiReader,
  fastCgiRequest,
} from "../../src/sources/fastcgi.ts";

const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-fastcgi-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Record {
  type: number;
  id: number;
  content: Uint8Array;
}

/** The records in `bytes`, read independently of the code under test. */
function records(bytes: Uint8Array): Record[] {
  const found: Record[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0; offset < bytes.length;) {
    assert.equal(view.getUint8(offset), 1, "version 1");
    const length = view.getUint16(offset + 4);
    found.push({
      type: view.getUint8(offset + 1),
      id: view.getUint16(offset + 2),
      content: bytes.slice(offset + 8, offset + 8 + length),
    });
    offset += 8 + length + view.getUint8(offset + 6);
  }
  return found;
}

test("fastcgi: a request is BEGIN_REQUEST as responder, the params, and empty PARAMS and STDIN", () => {
  const long = "x".repeat(300);
  const sent = records(encodeRequest({ SCRIPT_NAME: "/status", LONG: long }));
  assert.deepEqual(sent.map((record) => [record.type, record.id]), [[1, 1], [4, 1], [4, 1], [
    5,
    1,
  ]]);
  // Role 1 (responder), flags 0: php-fpm closes the connection after answering.
  assert.deepEqual([...sent[0].content], [0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(
    [...sent[1].content],
    [
      11,
      7,
      ...new TextEncoder().encode("SCRIPT_NAME/status"),
      4,
      0x80,
      0,
      1,
      44, // 300 takes the four-byte form, top bit set
      ...new TextEncoder().encode(`LONG${long}`),
    ],
  );
  assert.equal(sent[2].content.length + sent[3].content.length, 0);
  // Params longer than a record holds are split over several.
  const split = records(encodeRequest({ HUGE: "y".repeat(70_000) }));
  assert.deepEqual(split.map((record) => record.content.length), [8, 65535, 4474, 0, 0]);
});

test("fastcgi: php-fpm's recorded answers, whole and a byte at a time, padding skipped", () => {
  const bytes = fixture("php-fpm-not-found.fcgi");
  for (const pieces of [[bytes], [...bytes].map((byte) => Uint8Array.of(byte))]) {
    const reader = new FastCgiReader(1024);
    for (const piece of pieces) {
      assert.equal(reader.answer, undefined);
      reader.push(piece);
    }
    assert.equal(text(reader.answer!.stderr), "Primary script unknown");
    assert.match(
      text(reader.answer!.stdout),
      /^Status: 404 Not Found\r\n.*\r\n\r\nFile not found\.\n$/s,
    );
    assert.equal(reader.answer!.appStatus, 0);
  }
  // Split at every offset: each split falls somewhere in a header, a body or a padding.
  const idle = fixture("php-fpm-static-idle.fcgi");
  for (let at = 1; at < idle.length; at += 7) {
    const reader = new FastCgiReader(4096);
    reader.push(idle.slice(0, at));
    reader.push(idle.slice(at));
    assert.match(text(reader.answer!.stdout), /"pool":"www"/);
  }
});

test("fastcgi: an answer too large, not FastCGI, refused or for another request is an error", () => {
  const idle = fixture("php-fpm-static-idle.fcgi");
  assert.throws(() => new FastCgiReader(1000).push(idle), /^Error: sent more than 1000 bytes$/);
  const http = new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n");
  assert.throws(() => new FastCgiReader(1000).push(http), /did not answer in FastCGI/);
  const end = (protocolStatus: number, id = 1) =>
    Uint8Array.of(1, 3, 0, id, 0, 8, 0, 0, 0, 0, 0, 0, protocolStatus, 0, 0, 0);
  assert.throws(() => new FastCgiReader(100).push(end(2)), /refused the request: it is overloaded/);
  assert.throws(() => new FastCgiReader(100).push(end(0, 2)), /answered request 2, not ours/);
  assert.throws(
    () => new FastCgiReader(100).push(Uint8Array.of(1, 10, 0, 1, 0, 0, 0, 0)),
    /sent a FastCGI record of type 10/,
  );
  const truncated = Uint8Array.of(1, 3, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0);
  assert.throws(() => new FastCgiReader(100).push(truncated), /truncated END_REQUEST/);
});

/** A server on a unix socket in the scratch folder; `serve` gets each connection. */
async function fakeServer(name: string, serve: (socket: Socket) => void) {
  const path = join(scratch, name);
  const closed: Promise<void>[] = [];
  const server: Server = createServer((socket) => {
    closed.push(new Promise((resolve) => socket.on("close", () => resolve())));
    socket.on("error", () => {});
    // Reading, even when serve does not: a socket that is not read never sees the client leave.
    socket.resume();
    serve(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    address: { path },
    /** Resolves once every connection has been closed by the client. */
    allClosed: () => Promise.all(closed),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const options = (signal = AbortSignal.timeout(5000), maxBytes = 64 * 1024) => ({
  signal,
  maxBytes,
});

test("fastcgi: a request over a socket, answered in fragments, and the connection closed", async () => {
  const answer = fixture("php-fpm-static-busy.fcgi");
  let received = new Uint8Array();
  const server = await fakeServer("fragments.sock", (socket) => {
    socket.on("data", (chunk: Uint8Array) => {
      received = new Uint8Array([...received, ...chunk]);
      // The request is complete once its empty STDIN record has come.
      if (records(received).at(-1)?.type !== 5) return;
      let offset = 0;
      const next = () => {
        if (offset >= answer.length) return;
        socket.write(answer.slice(offset, offset += 100), next);
      };
      next();
    });
  });
  try {
    const result = await fastCgiRequest(server.address, { SCRIPT_NAME: "/status" }, options());
    assert.match(text(result.stdout), /"idle processes":1,"active processes":3/);
    await server.allClosed();
  } finally {
    await server.close();
  }
});

test("fastcgi: a server that never answers, or answers too much, is left at once", async () => {
  const silent = await fakeServer("silent.sock", () => {});
  const endless = await fakeServer("endless.sock", (socket) => {
    const chunk = Uint8Array.of(1, 6, 0, 1, 0xff, 0xff, 0, 0, ...new Uint8Array(0xffff));
    const more = () => socket.writable && socket.write(chunk, more);
    more();
  });
  try {
    const started = Date.now();
    await assert.rejects(
      fastCgiRequest(silent.address, {}, options(AbortSignal.timeout(200))),
      new Error("did not answer in time"),
    );
    assert.ok(Date.now() - started < 2000);
    await silent.allClosed();
    await assert.rejects(
      fastCgiRequest(endless.address, {}, options(undefined, 200_000)),
      new Error("sent more than 200000 bytes"),
    );
    await endless.allClosed();
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(
      fastCgiRequest(silent.address, {}, options(aborted.signal)),
      /did not answer in time/,
    );
  } finally {
    await Promise.all([silent.close(), endless.close()]);
  }
});

test("fastcgi: a connection that fails or closes early says what to fix", async () => {
  const hangUp = await fakeServer("hang-up.sock", (socket) => socket.end());
  try {
    await assert.rejects(
      fastCgiRequest(hangUp.address, {}, options()),
      new Error("closed the connection before answering"),
    );
  } finally {
    await hangUp.close();
  }
  await assert.rejects(
    fastCgiRequest({ path: join(scratch, "nothing.sock") }, {}, options()),
    new Error(
      "no such file or directory (ENOENT): is php-fpm running, with a pool that listens there?",
    ),
  );
  const failure = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
  assert.equal(
    connectionError(failure("ECONNREFUSED")).message,
    "connection refused (ECONNREFUSED): is php-fpm running, with a pool that listens there?",
  );
  assert.equal(
    connectionError(failure("EACCES")).message,
    "permission denied (EACCES): run the agent as the socket's owner or group, " +
      "or allow it with listen.owner, listen.group or listen.mode in the pool",
  );
});
