/** src/sources/load-text.ts */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLoadText } from "../../src/sources/load-text.ts";

test("load text: ready=N&busy=M or JSON, and nothing else", () => {
  assert.deepEqual(parseLoadText("ready=5&busy=2\n"), { ready: 5, busy: 2 });
  assert.deepEqual(parseLoadText("v=1&busy=0&ready=9&extra=1"), { ready: 9, busy: 0 });
  assert.deepEqual(parseLoadText(' {"ready": 3, "busy": 1, "other": true}\n'), {
    ready: 3,
    busy: 1,
  });
  const bad: [string, RegExp][] = [
    ["", /empty output/],
    ["   \n", /empty output/],
    ["ready=5", /expected ready=N&busy=M/],
    ["hello", /expected ready=N&busy=M/],
    ["ready=-1&busy=0", /ready must be a whole number/],
    ["ready=1.5&busy=0", /ready must be a whole number/],
    ["ready=five&busy=0", /ready must be a whole number/],
    ['{"ready": "5", "busy": 0}', /ready must be a whole number/],
    ['{"ready": 5}', /expected ready=N&busy=M/],
    ['{"ready": 5, "busy": 1e20}', /busy must be a whole number/],
    ["{not json", /not valid JSON/],
    ["null", /expected ready=N&busy=M/],
    ["[1,2]", /expected ready=N&busy=M/],
    // Two readings are refused, not merged into ready=1&busy=9.
    ["ready=1&busy=0\nready=9&busy=9", /more than one line: expected one reading/],
    ["ready=1\nbusy=0", /more than one line/],
  ];
  // JSON over several lines is one reading.
  assert.deepEqual(parseLoadText('{\n  "ready": 4,\n  "busy": 2\n}\n'), { ready: 4, busy: 2 });
  for (const [text, message] of bad) {
    assert.throws(() => parseLoadText(text), message, JSON.stringify(text));
  }
});
