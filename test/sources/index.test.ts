/** src/sources/index.ts and the source registry */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createSource, SOURCES } from "../../src/sources/index.ts";
import { SourceConfigError, type SourceSettings } from "../../src/sources/source.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const never = new AbortController().signal;

test("sources: static answers its numbers; busy defaults to 0", async () => {
  assert.deepEqual(
    await (await createSource("static", { names: FLAG_NAMES, ready: 10 })).read(never),
    {
      ready: 10,
      busy: 0,
    },
  );
  assert.deepEqual(
    await (await createSource("static", { names: FLAG_NAMES, ready: 0, busy: 4 })).read(never),
    {
      ready: 0,
      busy: 4,
    },
  );
  assert.equal(
    (await createSource("static", { names: FLAG_NAMES, ready: 1, busy: 2 })).description,
    "static ready=1 busy=2",
  );
});

test("sources: configuration mistakes are SourceConfigErrors naming the fix", async () => {
  const cases: [string, Omit<SourceSettings, "names">, RegExp][] = [
    ["static", {}, /--source static needs --ready N/],
    ["static:5", { ready: 1 }, /--source static takes no argument, got 'static:5'/],
    ["static", { ready: -1 }, /--ready must be a whole number/],
    [
      "apache2",
      {},
      /unknown source 'apache2'; the sources are: auto, static, apache, nginx, php-fpm, tcp, exec, file/,
    ],
    ["__proto__", {}, /unknown source '__proto__'/],
    ["apache:not a url", {}, /--source apache:URL: 'not a url' is not a URL/],
    ["apache:ftp://x/", {}, /is not an http or https URL/],
    [
      "nginx",
      {},
      /--source nginx needs --capacity N: how many connections this server can serve at once/,
    ],
    ["tcp", {}, /--source tcp needs --capacity N/],
    [
      "tcp:80,http",
      { capacity: 5 },
      /--source tcp:PORTS: '80,http' is not a list of ports like 80,443/,
    ],
    ["tcp:0", { capacity: 5 }, /is not a list of ports/],
    ["exec", {}, /--source exec:COMMAND needs a command/],
    ["exec:  ", {}, /--source exec:COMMAND needs a command/],
    ["file", {}, /--source file:PATH needs a path/],
    ["auto:x", {}, /--source auto takes no argument/],
  ];
  for (const [spec, settings, message] of cases) {
    await assert.rejects(
      createSource(spec, { ...settings, names: FLAG_NAMES }),
      (error: unknown) => error instanceof SourceConfigError && message.test(error.message),
      spec,
    );
  }
  for (const [name, definition] of Object.entries(SOURCES)) {
    assert.ok(definition.summary.length > 0, name);
  }
});
