import assert from "node:assert/strict";
import { test } from "node:test";
import { COMMAND_FLAGS, type CommandName } from "../src/cli.ts";
import { HELP_WIDTH, usage } from "../src/help.ts";
import { type Command, SETTINGS } from "../src/settings.ts";

test("help: each command's usage text names every flag it takes", () => {
  const flags: { flag: string; short?: string; commands: readonly CommandName[] }[] = [
    ...SETTINGS,
    ...COMMAND_FLAGS,
  ];
  for (const { flag, short, commands } of flags) {
    for (const command of commands) {
      const text = usage(command);
      assert.ok(text.includes(`--${flag}`), `${command}: --${flag}`);
      if (short) assert.ok(text.includes(`-${short}, --${flag}`), `${command}: -${short}`);
    }
  }
  for (const word of ["monitor", "servers FILE"]) assert.ok(usage("agent").includes(word), word);
});

test("help: every command's --help is made from the rows and fits 80 columns", () => {
  for (const command of ["agent", "monitor", "servers"] as const) {
    const text = usage(command);
    for (const line of text.split("\n")) {
      assert.ok(line.length <= HELP_WIDTH, `${command}: ${line}`);
    }
    for (const spec of SETTINGS) {
      const listed = new RegExp(`^ {2}(-\\w, | {4})--${spec.flag}\\b`, "m").test(text);
      assert.equal(listed, spec.commands.includes(command as Command), `${command} --${spec.flag}`);
    }
  }
  assert.match(
    usage("agent"),
    /^ {6}--ttl N {15}multicast time-to-live, 0-255; 1: this network only,$/m,
  );
  assert.match(usage("monitor"), /--max-servers N/);
  assert.doesNotMatch(usage("monitor"), /--ttl|--once|--source/);
  // Each command's help in its own words: the monitor neither sends nor signs.
  assert.doesNotMatch(
    usage("monitor"),
    /leaves by|sign heartbeats|the monitor:|\(0: the default\)/,
  );
  assert.match(usage("monitor"), /--key-file FILE {7}take only heartbeats signed with this key$/m);
  assert.match(usage("agent"), /--key-file FILE {7}sign heartbeats with this key$/m);
  assert.match(
    usage("servers"),
    /^Usage:\n {2}heartbeat servers FILE \[-f httpd.conf \[--balancer NAME\]\]$/m,
  );
});
