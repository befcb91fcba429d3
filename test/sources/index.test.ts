/** src/sources/index.ts and the source registry */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createListedSource, createSource, SOURCES } from "../../src/sources/index.ts";
import { SourceConfigError, type SourceSettings } from "../../src/sources/source.ts";
import { FLAG_NAMES, settingNames } from "../../src/settings.ts";

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

test("sources: a mistake names the source setting as the operator gave it: directive at FILE:LINE, or variable", async () => {
  const fromFile = settingNames({ source: "/etc/heartbeat.conf:3" });
  const directive = "HeartbeatSource at /etc/heartbeat.conf:3";
  const cases: [string, Omit<SourceSettings, "names">, string][] = [
    ["static", {}, `${directive} static needs --ready N (and --busy M, default 0)`],
    ["static:5", { ready: 1 }, `${directive} static takes no argument, got 'static:5'`],
    ["auto:x", {}, `${directive} auto takes no argument, got 'auto:x'`],
    [
      "apache:not a url",
      {},
      `${directive} apache:URL: 'not a url' is not a URL, e.g. http://127.0.0.1/server-status?auto`,
    ],
    [
      "nginx",
      {},
      `${directive} nginx needs --capacity N: how many connections this server can serve at once`,
    ],
    [
      "tcp:80,http",
      { capacity: 5 },
      `${directive} tcp:PORTS: '80,http' is not a list of ports like 80,443`,
    ],
    ["exec", {}, `${directive} exec:COMMAND needs a command, e.g. exec:/usr/local/bin/load`],
    ["file", {}, `${directive} file:PATH needs a path, e.g. file:/run/myapp/load`],
    [
      "php-fpm:unix://run/php.sock",
      {},
      `${directive} php-fpm:URI: 'unix://run/php.sock' does not name a socket by its absolute path; write tcp://HOST:PORT/PATH (default tcp://127.0.0.1:9000/status), unix:///SOCKET;/PATH or http://HOST/PATH`,
    ],
    [
      "pressure:disk",
      { capacity: 5 },
      `${directive} pressure:disk: give a resource (cpu, memory, io) and/or a cgroup directory, e.g. pressure:memory:/sys/fs/cgroup/system.slice/nginx.service`,
    ],
  ];
  for (const [spec, settings, message] of cases) {
    await assert.rejects(
      createSource(spec, { ...settings, names: fromFile }),
      (error: unknown) => error instanceof SourceConfigError && error.message === message,
      spec,
    );
  }
  // The cgroup lookup under cpu and pressure, and a source listed twice.
  await assert.rejects(
    createSource("cpu", { capacity: 4, fsRoot: "/nonexistent", names: fromFile }),
    (error: unknown) =>
      error instanceof SourceConfigError &&
      error.message.startsWith(`${directive} cpu finds cgroups through /proc/self/mountinfo`),
  );
  assert.throws(
    () => createListedSource(["file:/run/load", "file:/run/load"], 1, { names: fromFile }),
    (error: unknown) =>
      error instanceof SourceConfigError &&
      error.message === `${directive} file:/run/load is given twice: give each source once`,
  );
  // From the environment: the variable's name.
  await assert.rejects(
    createSource("tcp", { names: settingNames({ source: "HEARTBEAT_SOURCE" }) }),
    (error: unknown) =>
      error instanceof SourceConfigError &&
      error.message ===
        "HEARTBEAT_SOURCE tcp needs --capacity N: how many connections this server can serve at once",
  );
});
