import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatHeartbeat,
  latin1,
  MAX_MESSAGE_BYTES,
  parseHeartbeat,
  readCommonHeartbeat,
} from "../src/codec.ts";

test("codec: formats the message mod_heartbeat sends", () => {
  assert.equal(formatHeartbeat({ ready: 75, busy: 0 }), "v=1&ready=75&busy=0");
  assert.equal(formatHeartbeat({ ready: 0, busy: 3, port: 8080 }), "v=1&ready=0&busy=3&port=8080");
  assert.equal(formatHeartbeat({ ready: 4294967295, busy: 0 }), "v=1&ready=4294967295&busy=0");
});

test("codec: refuses to format values that would be a lie on the wire", () => {
  for (
    const heartbeat of [
      { ready: -1, busy: 0 },
      { ready: 1.5, busy: 0 },
      { ready: NaN, busy: 0 },
      { ready: Infinity, busy: 0 },
      { ready: 4294967296, busy: 0 },
      { ready: 1, busy: -3 },
      { ready: 1, busy: 0, port: 0 },
      { ready: 1, busy: 0, port: 65536 },
      { ready: "5" as unknown as number, busy: 0 },
    ]
  ) {
    assert.throws(() => formatHeartbeat(heartbeat), RangeError, JSON.stringify(heartbeat));
  }
});

test("codec: every formatted message parses back to the same numbers", () => {
  for (const heartbeat of [{ ready: 0, busy: 0 }, { ready: 12, busy: 7, port: 80 }]) {
    const parsed = parseHeartbeat(formatHeartbeat(heartbeat));
    assert.ok(parsed.ok);
    assert.deepEqual(
      { ready: parsed.heartbeat.ready, busy: parsed.heartbeat.busy, port: parsed.heartbeat.port },
      { ready: heartbeat.ready, busy: heartbeat.busy, port: heartbeat.port },
    );
  }
});

const GOOD: [string, { ready: number; busy: number; port?: number; extra?: [string, string] }][] = [
  ["v=1&ready=75&busy=0", { ready: 75, busy: 0 }],
  ["busy=2&ready=3&v=1", { ready: 3, busy: 2 }],
  ["v=1&ready=3&busy=2&port=8080", { ready: 3, busy: 2, port: 8080 }],
  ["v=2&ready=3&busy=2&load=0.5&zone=eu", { ready: 3, busy: 2, extra: ["zone", "eu"] }],
  ["&&v=1&&ready=3&busy=2&&", { ready: 3, busy: 2 }],
  ["v&ready=3&busy=2", { ready: 3, busy: 2, extra: ["v", "1"] }],
  ["v=1&ready=3&busy=2&port", { ready: 3, busy: 2, port: 1 }],
  ["V=1&READY=3&Busy=2", { ready: 3, busy: 2 }],
  ["v=1&ready=1&busy=2&ready=9", { ready: 9, busy: 2 }],
  ["v=1&re%61dy=4&busy=%32", { ready: 4, busy: 2 }],
  ["v=1&ready=3&busy=2&note=a+b%20c", { ready: 3, busy: 2, extra: ["note", "a+b c"] }],
  ["v=1&ready=3&busy=2&eq=a=b", { ready: 3, busy: 2, extra: ["eq", "a=b"] }],
  ["v=1&ready=3&busy=2\0&busy=99", { ready: 3, busy: 2 }],
];

test("codec: parses messages as mod_heartmonitor does", () => {
  for (const [message, expected] of GOOD) {
    const parsed = parseHeartbeat(message);
    assert.ok(parsed.ok, `${JSON.stringify(message)}: ${!parsed.ok && parsed.detail}`);
    assert.equal(parsed.heartbeat.ready, expected.ready, message);
    assert.equal(parsed.heartbeat.busy, expected.busy, message);
    assert.equal(parsed.heartbeat.port, expected.port, message);
    if (expected.extra) {
      assert.equal(parsed.heartbeat.fields.get(expected.extra[0]), expected.extra[1]);
    }
  }
});

const BAD: [string | Uint8Array, string][] = [
  ["", "missing-field"],
  ["v=1&ready=3", "missing-field"],
  ["ready=3&busy=2", "missing-field"],
  ["hello world", "missing-field"],
  [new Uint8Array([0xff, 0x00, 0x81, 0x26, 0x3d]), "missing-field"],
  ["v=1&ready=x&busy=2", "bad-number"],
  ["v=1&ready=-1&busy=2", "bad-number"],
  ["v=1&ready=3&busy=", "bad-number"],
  ["v=1&ready= 3&busy=2", "bad-number"],
  ["v=1&ready=3.5&busy=2", "bad-number"],
  ["v=1&ready=1e3&busy=2", "bad-number"],
  ["v=1&ready=0x10&busy=2", "bad-number"],
  ["v=1&ready=4294967296&busy=2", "bad-number"],
  ["v=1&ready=99999999999&busy=2", "bad-number"],
  ["v=1&ready", "missing-field"],
  [`v=1&ready=3&busy=2&pad=${"x".repeat(MAX_MESSAGE_BYTES)}`, "oversize"],
  [new Uint8Array(MAX_MESSAGE_BYTES + 1), "oversize"],
];

test("codec: rejects malformed messages with the reason", () => {
  for (const [message, reason] of BAD) {
    const parsed = parseHeartbeat(message);
    assert.equal(parsed.ok, false, JSON.stringify(message));
    if (!parsed.ok) {
      assert.equal(parsed.reason, reason, JSON.stringify(message));
      assert.ok(parsed.detail.length > 0);
    }
  }
});

test("codec: a port that is no port costs only the port: the server is taken, as Apache takes it", () => {
  for (const port of ["0", "65536", "70000", "8080x", "-1", "", "99999999999"]) {
    const parsed = parseHeartbeat(`v=1&ready=3&busy=2&port=${port}`);
    assert.ok(parsed.ok, port);
    assert.deepEqual(
      [parsed.heartbeat.ready, parsed.heartbeat.busy, parsed.heartbeat.port],
      [3, 2, undefined],
      port,
    );
    assert.equal(parsed.heartbeat.ignoredPort, port);
  }
  const good = parseHeartbeat("v=1&ready=3&busy=2&port=8080");
  assert.ok(good.ok);
  assert.equal(good.heartbeat.ignoredPort, undefined);
  // A bad count still refuses the whole heartbeat, port or not.
  assert.equal(parseHeartbeat("v=1&ready=x&busy=2&port=0").ok, false);
});

test("codec: a message of exactly the size limit is accepted", () => {
  const base = "v=1&ready=3&busy=2&pad=";
  const message = base + "x".repeat(MAX_MESSAGE_BYTES - base.length);
  assert.equal(message.length, MAX_MESSAGE_BYTES);
  assert.ok(parseHeartbeat(message).ok);
  assert.ok(parseHeartbeat(new TextEncoder().encode(message)).ok);
});

test("codec: latin1 maps every byte to the character of the same number, 0x80-0x9f included", () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = latin1(bytes.subarray(1));
  assert.equal(text.length, 255);
  assert.deepEqual([...text].map((character) => character.charCodeAt(0)), [...bytes.subarray(1)]);
});

test("codec: the common form read from the bytes gives what the full parser gives, and only takes that form", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const taken = [
    "v=1&ready=5&busy=2",
    "v=1&ready=0&busy=0&port=80",
    "v=1&ready=4294967295&busy=007&port=65535",
    "v=1&ready=25&busy=0&port=8080",
  ];
  for (const text of taken) {
    const parsed = parseHeartbeat(text);
    assert.ok(parsed.ok, text);
    const { ready, busy, port } = parsed.heartbeat;
    assert.deepEqual(
      readCommonHeartbeat(encode(text)),
      port === undefined ? { ready, busy } : { ready, busy, port },
      text,
    );
  }
  const left = [
    "v=1&ready=4294967296&busy=0", // over 32 bits
    "v=1&ready=12345678901&busy=0", // 11 digits
    "v=1&ready=5&busy=2&port=0",
    "v=1&ready=5&busy=2&port=65536",
    "v=1&ready=5&busy=2&zone=eu", // another field: the full parser takes it
    "v=1&busy=2&ready=5", // another order
    "V=1&READY=5&BUSY=2",
    "v=2&ready=5&busy=2",
    "v=1&ready=%35&busy=2",
    "v=1&ready=&busy=2",
    "v=1&ready=5&busy=2&",
    "v=1&ready=5&busy=2\n",
    "v=1&ready=-5&busy=2",
    "",
  ];
  for (const text of left) assert.equal(readCommonHeartbeat(encode(text)), undefined, text);
  // Random messages near the form: either left to the full parser, or read alike.
  const pieces = [
    "v=1",
    "&ready=",
    "&busy=",
    "&port=",
    "0",
    "1",
    "9",
    "65535",
    "4294967295",
    "x",
    "&",
    "=",
    "%",
    "\n",
  ];
  for (let i = 0; i < 20_000; i++) {
    const text = Array.from(
      { length: 1 + (i % 9) },
      (_, j) => pieces[(i * 7 + j * 13 + (i >> 3)) % pieces.length],
    ).join("");
    const fast = readCommonHeartbeat(encode(text));
    if (!fast) continue;
    const parsed = parseHeartbeat(text);
    assert.ok(parsed.ok, text);
    assert.deepEqual([fast.ready, fast.busy, fast.port], [
      parsed.heartbeat.ready,
      parsed.heartbeat.busy,
      parsed.heartbeat.port,
    ], text);
  }
});
