/** src/settings.ts: the rows, the names a message gives a setting, and how the layers resolve. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ConfigRead } from "../src/config/httpd.ts";
import {
  FLAG_NAMES,
  type Layers,
  resolveSettings,
  rowOf,
  settingNames,
  SETTINGS,
} from "../src/settings.ts";

/** A config file's directives, each on its own line of /etc/hb.conf from line 1. */
function config(...lines: [name: string, arg: string][]): ConfigRead {
  return {
    directives: lines.map(([name, arg], index) => ({
      name,
      args: [arg],
      file: "/etc/hb.conf",
      line: index + 1,
      undefinedVariables: [],
      sections: [],
    })),
    problems: [],
    serverRoot: "/etc",
    runtimeDir: "/run",
  };
}

function resolve(layers: Partial<Layers>) {
  return resolveSettings({ flags: {}, env: {}, ...layers });
}

test("settings: each row's flag, short flag, variable and directive is its own", () => {
  for (const part of ["key", "flag", "env"] as const) {
    const names = SETTINGS.map((row) => row[part]);
    assert.deepEqual(names.filter((name, i) => names.indexOf(name) !== i), [], part);
  }
  // Apache's directives are case-insensitive.
  const directives = SETTINGS.map((row) => row.directive.toLowerCase());
  assert.deepEqual(directives.filter((name, i) => directives.indexOf(name) !== i), []);
  const shorts = SETTINGS.flatMap((row) => row.short ? [row.short] : []);
  assert.deepEqual(shorts.filter((name, i) => shorts.indexOf(name) !== i), []);
});

test("settings: a row's variable and directive are its flag's, spelt their way", () => {
  // mod_heartmonitor's HeartbeatListen is the UDP listener; the HTTP one says so.
  const directiveOf: Record<string, string> = { http: "heartbeathttplisten" };
  for (const row of SETTINGS) {
    assert.match(row.flag, /^[a-z]+(-[a-z]+)*$/, row.flag);
    assert.equal(row.env, `HEARTBEAT_${row.flag.toUpperCase().replaceAll("-", "_")}`, row.flag);
    assert.match(row.directive, /^Heartbeat[A-Z][A-Za-z]*$/, row.flag);
    assert.equal(
      row.directive.toLowerCase(),
      directiveOf[row.flag] ?? `heartbeat${row.flag.replaceAll("-", "")}`,
      row.flag,
    );
    assert.ok(row.commands.length > 0, row.flag);
    assert.equal(rowOf(row.key), row);
  }
});

test("settings: names() says a setting as it was given: flag, variable, or directive at FILE:LINE", () => {
  const resolved = resolve({
    flags: { ttl: "2" },
    env: { HEARTBEAT_PORT: "8080" },
    config: config(["HeartbeatListen", "239.0.0.1:27999"], ["HeartbeatAllow", "10.0.0.0/8"], [
      "HeartbeatAllow",
      "10.1.0.0/16",
    ]),
  });
  assert.deepEqual(resolved.problems, []);
  const { names } = resolved;
  assert.equal(names("ttl"), "--ttl");
  assert.equal(names("port"), "HEARTBEAT_PORT");
  assert.equal(names("listen"), "HeartbeatListen at /etc/hb.conf:1");
  assert.equal(names("allow"), "HeartbeatAllow at /etc/hb.conf:2, /etc/hb.conf:3");
  // Not given, or a default: the flag, the way to give it.
  assert.equal(names("storage"), "--storage");
  assert.equal(names("intervalSeconds"), "--interval");
  // -t puts FILE:LINE first: there the directive is named alone.
  const located = settingNames(resolved.origins, false);
  assert.deepEqual(
    [located("listen"), located("port"), located("ttl")],
    ["HeartbeatListen", "HEARTBEAT_PORT", "--ttl"],
  );
  for (const row of SETTINGS) assert.equal(FLAG_NAMES(row.key), `--${row.flag}`);
});

test("settings: a flag beats the variable, the variable the config file, the file the default", () => {
  const file = config(["HeartbeatTTL", "3"], ["HeartbeatInterval", "2"], ["HeartbeatPort", "81"]);
  const env = { HEARTBEAT_TTL: "4", HEARTBEAT_INTERVAL: "5" };
  const resolved = resolve({ flags: { ttl: "6" }, env, config: file });
  assert.deepEqual(resolved.problems, []);
  assert.deepEqual(
    [resolved.settings.ttl, resolved.settings.intervalSeconds, resolved.settings.port],
    [6, 5, 81],
  );
  assert.deepEqual(
    [resolved.origins.ttl, resolved.origins.intervalSeconds, resolved.origins.port],
    ["--ttl", "HEARTBEAT_INTERVAL", "/etc/hb.conf:3"],
  );
  assert.deepEqual(
    [resolved.settings.resolveIntervalSeconds, resolved.origins.resolveIntervalSeconds],
    [30, "default"],
  );
  // An empty variable is not given.
  assert.equal(resolve({ env: { HEARTBEAT_TTL: "" }, config: file }).settings.ttl, 3);
  // A repeatable one takes all of the layer it comes from, not a mix.
  const addresses = resolve({
    env: { HEARTBEAT_ADDRESS: "10.0.0.1:1, 10.0.0.2:2" },
    config: config(["HeartbeatAddress", "10.0.0.3:3"]),
  });
  assert.deepEqual(addresses.settings.addresses.map((address) => address.text), [
    "10.0.0.1:1",
    "10.0.0.2:2",
  ]);
  assert.deepEqual(addresses.itemOrigins.addresses, ["HEARTBEAT_ADDRESS", "HEARTBEAT_ADDRESS"]);
});

test("settings: nothing given is each setting's default; those without one stay unset", () => {
  const { settings, origins, problems } = resolve({});
  assert.deepEqual(problems, []);
  for (const row of SETTINGS) {
    const fallback = row.default;
    assert.deepEqual(settings[row.key], fallback, row.flag);
    assert.equal(origins[row.key], fallback === undefined ? undefined : "default", row.flag);
  }
  assert.deepEqual(
    [settings.ttl, settings.intervalSeconds, settings.source, settings.logLevel],
    [1, 1, ["auto"], "info"],
  );
});

test("settings: a value its parser refuses is a problem naming the setting where it was given", () => {
  const resolved = resolve({
    flags: { ttl: "300" },
    env: { HEARTBEAT_INTERVAL: "0" },
    config: config(["HeartbeatLogLevel", "loud"]),
  });
  assert.deepEqual(resolved.problems, [
    "--ttl '300': give a whole number from 0 to 255",
    "HEARTBEAT_INTERVAL '0': give seconds from 0.01 to 3600, e.g. 1 or 0.5",
    "/etc/hb.conf:1: HeartbeatLogLevel: choose one of debug, info, warn, error",
  ]);
  // A refused value is not taken: the next layer's, or the default, is.
  assert.equal(resolved.settings.ttl, 1);
  assert.equal(resolve({ flags: { ttl: "x" }, env: { HEARTBEAT_TTL: "7" } }).settings.ttl, 7);
});
