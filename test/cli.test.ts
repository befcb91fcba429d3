import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseCommandLine, UsageError } from "../src/cli.ts";
import { USAGE, usage } from "../src/help.ts";
import { resolveSettings } from "../src/settings.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from "../src/main.ts";
import { recordingLog } from "./support/fakes.ts";

/** The settings a command line gives, with no environment or file; throws on problems. */
function settingsOf(argv: string[]) {
  const command = parseCommandLine(argv);
  assert.equal(command.kind, "run");
  if (command.kind !== "run") throw new Error("not a run");
  const resolved = resolveSettings({ flags: command.invocation.flags, env: {} });
  if (resolved.problems.length) throw new UsageError(resolved.problems.join("\n"));
  return { ...resolved, invocation: command.invocation };
}

test("cli: flags become settings, with mod_heartbeat's defaults", () => {
  const { settings, origins } = settingsOf(["-a", "239.0.0.1:27999", "--ready", "10"]);
  assert.deepEqual(settings, {
    addresses: [{ kind: "udp", text: "239.0.0.1:27999", host: "239.0.0.1", port: 27999 }],
    ttl: 1,
    source: ["auto"],
    ready: 10,
    intervalSeconds: 1,
    logLevel: "info",
    // The defaults of settings the agent does not use here are in force too.
    resolveIntervalSeconds: 30,
    maxAgeSeconds: 10,
    signatureWindowSeconds: 5,
    maxServers: 1000,
    httpPaths: ["/heartbeat", "/HeartbeatListener"],
    nginxPort: 80,
    nginxReload: "nginx -s reload",
    nginxReloadIntervalSeconds: 5,
  });
  assert.equal(origins.addresses, "--address");
  assert.equal(origins.ttl, "default");
});

test("cli: every flag is read", () => {
  const { settings, invocation } = settingsOf([
    "--address=239.0.0.1:27999",
    "-a",
    "10.0.0.5:5000",
    "--interface",
    "10.0.0.2",
    "--ttl",
    "0",
    "--port",
    "8080",
    "--source",
    "static",
    "--ready",
    "4294967295",
    "--busy",
    "0",
    "--interval",
    "0.25",
    "--once",
    "--dry-run",
    "--runtime-adapter",
    "node",
    "-v",
    "--capacity",
    "256",
    "--max-age",
    "2.5",
    "--proc-root",
    "/host/proc",
    "-f",
    "/etc/hb.conf",
    "-t",
    "--print-config",
  ]);
  assert.deepEqual(settings.addresses.map((a) => a.text), ["239.0.0.1:27999", "10.0.0.5:5000"]);
  assert.equal(settings.interfaceAddress, "10.0.0.2");
  assert.equal(settings.ttl, 0);
  assert.equal(settings.port, 8080);
  assert.equal(settings.ready, 4294967295);
  assert.equal(settings.busy, 0);
  assert.equal(settings.intervalSeconds, 0.25);
  assert.equal(settings.runtimeAdapter, "node");
  assert.equal(settings.logLevel, "debug");
  assert.equal(settings.capacity, 256);
  assert.equal(settings.maxAgeSeconds, 2.5);
  assert.equal(settings.procRoot, "/host/proc");
  assert.deepEqual(invocation, {
    flags: invocation.flags,
    configFile: "/etc/hb.conf",
    testConfig: true,
    printConfig: true,
    once: true,
    dryRun: true,
    print: false,
  });
  assert.equal(settingsOf(["-a", "1.2.3.4:5", "-q"]).settings.logLevel, "error");
  assert.equal(settingsOf(["-a", "1.2.3.4:5", "--log-level", "warn"]).settings.logLevel, "warn");
  assert.deepEqual(parseCommandLine(["-h"]), { kind: "help", command: "agent" });
  assert.deepEqual(parseCommandLine(["monitor", "-h"]), { kind: "help", command: "monitor" });
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
});

test("cli: mistakes are errors that say what to fix", () => {
  const cases: [string[], RegExp][] = [
    [["-a", "239.0.0.1"], /--address '239\.0\.0\.1': No port provided in address/],
    [["-a", "27999"], /No host provided in address/],
    [["-a", "x:0"], /Unable to parse address/],
    [["-a"], /--address needs a value|-a needs a value/],
    [["-a", "1.2.3.4:5", "--bogus"], /unknown option '--bogus'/],
    [
      ["-a", "1.2.3.4:5", "extra"],
      /unexpected argument 'extra': the commands are 'monitor' and 'servers FILE'/,
    ],
    [["-a", "1.2.3.4:5", "--ttl", "256"], /--ttl '256': give a whole number from 0 to 255/],
    [["-a", "1.2.3.4:5", "--ttl", "-1"], /--ttl/],
    [["-a", "1.2.3.4:5", "--port", "0"], /--port '0': give a whole number from 1 to 65535/],
    [["-a", "1.2.3.4:5", "--port", "80x"], /--port '80x'/],
    [["-a", "1.2.3.4:5", "--ready", "1.5"], /--ready '1\.5': give a whole number/],
    [["-a", "1.2.3.4:5", "--busy", "-2"], /--busy/],
    [["-a", "1.2.3.4:5", "--interval", "0"], /--interval '0': give seconds from 0\.01 to 3600/],
    [["-a", "1.2.3.4:5", "--interval", "abc"], /--interval 'abc'/],
    [["-a", "1.2.3.4:5", "--interval", "1e3"], /--interval '1e3'/],
    [
      ["-a", "1.2.3.4:5", "--interface", "eth0"],
      /--interface 'eth0': give the IPv4 address of a local interface/,
    ],
    [
      ["-a", "1.2.3.4:5", "--runtime-adapter", "go"],
      /--runtime-adapter 'go': choose one of deno, bun, node/,
    ],
    [
      ["-a", "1.2.3.4:5", "--log-level", "loud"],
      /--log-level 'loud': choose one of debug, info, warn, error/,
    ],
    [["-a", "1.2.3.4:5", "-v", "-q"], /--verbose and --quiet cannot be used together/],
    [
      ["-a", "1.2.3.4:5", "-v", "--log-level", "info"],
      /--log-level cannot be used with --verbose or --quiet/,
    ],
    [["-a", "1.2.3.4:5", "--capacity", "many"], /--capacity 'many': give a whole number/],
    [["-a", "1.2.3.4:5", "--max-age", "0"], /--max-age '0': give seconds from 0\.01 to 86400/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => settingsOf(argv), (error: unknown) => {
      assert.ok(error instanceof UsageError, `${argv.join(" ")}: ${error}`);
      assert.match(error.message, message, argv.join(" "));
      return true;
    });
  }
});

test("cli: commands: the agent by default, 'monitor', and 'servers FILE'; flags only where they belong", () => {
  const monitor = parseCommandLine([
    "monitor",
    "--listen",
    "239.0.0.1:27999",
    "--storage",
    "/tmp/hb.dat",
    "--http",
    "127.0.0.1:8080",
    "--allow",
    "10.0.0.0/8",
    "--allow",
    "192.168.0.1",
    "--max-servers",
    "50",
    "--print",
    "--interface",
    "10.0.0.2",
    "-v",
  ]);
  assert.equal(monitor.kind === "run" && monitor.mode, "monitor");
  if (monitor.kind !== "run") return;
  assert.equal(monitor.invocation.print, true);
  const { settings, problems } = resolveSettings({ flags: monitor.invocation.flags, env: {} });
  assert.deepEqual(problems, []);
  assert.equal(settings.listen?.text, "239.0.0.1:27999");
  assert.equal(settings.storage, "/tmp/hb.dat");
  assert.equal(settings.http?.text, "127.0.0.1:8080");
  assert.deepEqual(settings.allow?.map((range) => range.text), ["10.0.0.0/8", "192.168.0.1"]);
  assert.equal(settings.maxServers, 50);
  assert.deepEqual(parseCommandLine(["servers", "/var/log/apache2/hb.dat"]), {
    kind: "servers",
    file: "/var/log/apache2/hb.dat",
  });
  const cases: [string[], RegExp][] = [
    [
      ["monitor", "--address", "239.0.0.1:1"],
      /--address is for the agent, not 'heartbeat monitor'$/,
    ],
    [["monitor", "--once"], /--once is for the agent, not 'heartbeat monitor'$/],
    [["--listen", "239.0.0.1:1"], /--listen is for 'heartbeat monitor'$/],
    [["--print"], /--print is for 'heartbeat monitor'$/],
    [["servers"], /'heartbeat servers FILE' takes one storage file/],
    [["servers", "a", "b"], /'heartbeat servers FILE' takes one storage file/],
    [["monitor", "extra"], /unexpected argument 'extra'/],
    [["status"], /unexpected argument 'status': the commands are 'monitor' and 'servers FILE'/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseCommandLine(argv), message, argv.join(" "));
  }
  assert.match(
    resolveSettings({ flags: { "max-servers": "5" }, env: {} }).problems[0],
    /--max-servers '5': Should be 0 for file storage, or greater or equal than 10 for slotmem/,
  );
  assert.match(
    resolveSettings({ flags: { "receive-buffer": "100" }, env: {} }).problems[0],
    /--receive-buffer '100': must be >= 512 bytes, or 0 for system default/,
  );
  for (const [text, bytes] of [["0", 0], ["512", 512], ["4194304", 4194304]] as const) {
    const resolved = resolveSettings({ flags: { "receive-buffer": text }, env: {} });
    assert.deepEqual([resolved.problems, resolved.settings.receiveBuffer], [[], bytes], text);
  }
  assert.match(
    resolveSettings({ flags: { allow: ["10.0.0.0/40"] }, env: {} }).problems[0],
    /--allow '10\.0\.0\.0\/40': give an IPv4 address or range/,
  );
});

test("cli: a misspelt option gets a suggestion; a long one with one dash, a pointed hint; a negative number, its own message", () => {
  const cases: [string[], RegExp][] = [
    [["--adress", "239.0.0.1:1"], /^unknown option '--adress'; did you mean '--address'\?$/],
    [["monitor", "--stroage", "x"], /^unknown option '--stroage'; did you mean '--storage'\?$/],
    [["--zzzzzz"], /^unknown option '--zzzzzz'$/],
    [["-address", "239.0.0.1:1"], /^'-address': long options take two dashes: '--address'$/],
    [["-a", "239.0.0.1:1", "-ready=3"], /^'-ready=3': long options take two dashes: '--ready=3'$/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseCommandLine(argv), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, message, argv.join(" "));
      return true;
    });
  }
  assert.deepEqual(
    settingsOf(["-a", "1.2.3.4:5", "-qt", "--ready", "2"]).settings.logLevel,
    "error",
  );
  assert.throws(
    () => settingsOf(["-a", "1.2.3.4:5", "--ready", "-1"]),
    /--ready '-1': give a whole number from 0 to 4294967295/,
  );
});

test("main: usage errors exit 2 with one line and no stack trace", async () => {
  const out = recordingLog();
  const err = recordingLog();
  const cases: [string[], RegExp][] = [
    [["-a", "239.0.0.1"], /^heartbeat: --address '239\.0\.0\.1': No port provided in address$/],
    [
      ["-a", "239.0.0.1:27999", "--source", "static"],
      /^heartbeat: --source static needs --ready N/,
    ],
    [
      ["-a", "239.0.0.1:27999", "--source", "nope"],
      /^heartbeat: unknown source 'nope'; the sources are: auto, static, apache/,
    ],
    [
      ["-a", "239.0.0.1:27999", "--source", "nginx"],
      /^heartbeat: --source nginx needs --capacity N/,
    ],
    [
      ["--ready", "1"],
      /^heartbeat: no destination: give --address HOST:PORT \(or HeartbeatAddress in a config file, or HEARTBEAT_ADDRESS\)$/,
    ],
    [["-a", "239.0.0.1:27999", "--source", "static:x", "--ready", "1"], /takes no argument/],
  ];
  for (const [argv, message] of cases) {
    err.lines.length = 0;
    assert.equal(
      await main(argv, { stdout: out.write, stderr: err.write }),
      EXIT_USAGE,
      argv.join(" "),
    );
    assert.match(err.lines[0], message);
    assert.equal(err.lines[1], "Try 'heartbeat --help' for the options.");
    assert.ok(!err.lines.join("\n").includes("    at "), "no stack trace");
  }
  assert.deepEqual(out.lines, []);
  // The monitor's mistakes point to the monitor's help.
  for (const argv of [["monitor", "--listen", "x"], ["--ready", "1", "monitor"]]) {
    err.lines.length = 0;
    assert.equal(await main(argv, { stdout: out.write, stderr: err.write }), EXIT_USAGE);
    assert.equal(err.lines[1], "Try 'heartbeat monitor --help' for the options.", argv.join(" "));
  }
});

test("main: --help and --version print to stdout and exit 0", async () => {
  const out = recordingLog();
  assert.equal(await main(["--help"], { stdout: out.write, stderr: out.write }), EXIT_OK);
  assert.equal(out.lines[0], USAGE.trimEnd());
  assert.equal(
    await main(["monitor", "--help"], { stdout: out.write, stderr: out.write }),
    EXIT_OK,
  );
  assert.equal(out.lines.pop(), usage("monitor").trimEnd());
  assert.equal(await main(["-V"], { stdout: out.write, stderr: out.write }), EXIT_OK);
  assert.match(
    out.lines[1],
    /^heartbeat \d+\.\d+\.\d+ \(from source, (deno|bun|node) [\w.-]+, \w+-\w+\)$/,
  );
});

test("main: --dry-run --once prints DEST PAYLOAD for every destination and sends nothing", async () => {
  const out = recordingLog();
  const err = recordingLog();
  const status = await main(
    [
      "-a",
      "239.0.0.1:27999",
      "-a",
      "127.0.0.1:5000",
      "--ready",
      "7",
      "--busy",
      "1",
      "--port",
      "81",
      "--dry-run",
      "--once",
    ],
    { stdout: out.write, stderr: err.write },
  );
  assert.equal(status, EXIT_OK);
  assert.deepEqual(out.lines, [
    "239.0.0.1:27999 v=1&ready=7&busy=1&port=81",
    "127.0.0.1:5000 v=1&ready=7&busy=1&port=81",
  ]);
  assert.deepEqual(err.lines, []);
});

test("main: --dry-run --once with several sources prints each source's reading beside the heartbeat", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
  try {
    const load = join(dir, "load");
    writeFileSync(load, "ready=2&busy=3");
    const run = async (extra: string[]) => {
      const out = recordingLog();
      const err = recordingLog();
      const status = await main(
        ["-a", "239.0.0.1:27999", "--ready", "40", "--busy", "10", "--dry-run", "--once", ...extra],
        { stdout: out.write, stderr: err.write },
      );
      return { status, out: out.lines, err: err.lines };
    };
    assert.deepEqual(await run(["--source", "static", "--source", `file:${load}`]), {
      status: EXIT_OK,
      out: [
        "239.0.0.1:27999 v=1&ready=20&busy=30",
        "source static: ready=40 busy=10, 80.0 % free",
        `source file:${load}: ready=2 busy=3, 40.0 % free (the tightest)`,
      ],
      err: [],
    });
    writeFileSync(load, "garbage");
    const failed = await run(["--source", "static", "--source", `file:${load}`]);
    assert.equal(failed.status, 1);
    assert.deepEqual(failed.out, [
      "source static: ready=40 busy=10, 80.0 % free",
      `source file:${load}: no answer: ${failed.out[1].split(": no answer: ")[1]}`,
    ]);
    assert.match(
      failed.err.join("\n"),
      new RegExp(
        `no heartbeat sent: the tightest of \\(static ready=40 busy=10\\) and \\(file ${load}\\): file:${load}: `,
      ),
    );
    // One source: its heartbeat is its reading, and only the heartbeat is printed, as before.
    assert.deepEqual((await run(["--source", "static"])).out, [
      "239.0.0.1:27999 v=1&ready=40&busy=10",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The monitor's -t below listens on 127.0.0.1, never on a group: -t binds and joins for real, and
// a join in a test run on a host would send an IGMP report out of its real interfaces.
test("main: -t checks what a start would, and says each problem where it is", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-t-"));
  try {
    const conf = join(dir, "heartbeat.conf");
    writeFileSync(
      conf,
      "HeartbeatAddress 239.0.0.1:27999\nHeartbeatSource static\nHeartbeatKeyFile /nonexistent/key\n",
    );
    const several = join(dir, "several.conf");
    writeFileSync(
      several,
      "HeartbeatAddress 239.0.0.1:27999\nHeartbeatSource file:/run/load\nHeartbeatSource nginx\nHeartbeatSource exec:\nHeartbeatSource nginx\n",
    );
    const cases: [string[], string[]][] = [
      [["-t", "--ready", "1"], [
        "no destination: give --address HOST:PORT (or HeartbeatAddress in a config file, or HEARTBEAT_ADDRESS)",
      ]],
      [["-t", "-f", conf], [
        `${conf}:2: HeartbeatSource static needs --ready N (and --busy M, default 0)`,
        // -t puts the directive's FILE:LINE first, as it does every problem: the name need not.
        `${conf}:3: HeartbeatKeyFile: cannot read the key file /nonexistent/key: no such file or directory (ENOENT)`,
      ]],
      // Several sources: each problem at its own line.
      [["-t", "-f", several], [
        `${several}:3: HeartbeatSource nginx needs --capacity N: how many connections this server can serve at once`,
        `${several}:4: HeartbeatSource exec:COMMAND needs a command, e.g. exec:/usr/local/bin/load`,
        `${several}:5: HeartbeatSource nginx is given twice: give each source once`,
      ]],
      [["-t", "-a", "239.0.0.1:27999", "--source", "file:/run/load", "--source", "tcp"], [
        "--source tcp needs --capacity N: how many connections this server can serve at once",
      ]],
      [["monitor", "-t"], [
        "heartbeat monitor needs --listen ADDR:PORT (HeartbeatListen) or --http ADDR:PORT, or both",
      ]],
      [[
        "monitor",
        "-t",
        "--listen",
        "127.0.0.1:27999",
        "--storage",
        join(dir, "missing", "hb.dat"),
      ], [
        `--storage '${join(dir, "missing", "hb.dat")}': the folder ${
          join(dir, "missing")
        } cannot take it: no such file or directory (ENOENT)`,
      ]],
      [["-t", "-f", join(dir, "missing.conf")], [
        `cannot open config file ${join(dir, "missing.conf")}: no such file or directory (ENOENT)`,
      ]],
    ];
    for (const [argv, problems] of cases) {
      const out = recordingLog();
      const err = recordingLog();
      assert.equal(
        await main(argv, { stdout: out.write, stderr: err.write }, {}),
        EXIT_USAGE,
        argv.join(" "),
      );
      assert.deepEqual([out.lines, err.lines], [[], problems], argv.join(" "));
    }
    const out = recordingLog();
    assert.equal(
      await main(["-t", "-a", "239.0.0.1:27999", "--ready", "1"], {
        stdout: out.write,
        stderr: out.write,
      }, {}),
      EXIT_OK,
    );
    assert.deepEqual(out.lines, ["Syntax OK"]);
    assert.equal(
      await main(
        ["monitor", "-t", "--listen", "127.0.0.1:27999", "--storage", join(dir, "hb.dat")],
        { stdout: out.write, stderr: out.write },
        {},
      ),
      EXIT_OK,
    );
    assert.deepEqual(out.lines, ["Syntax OK", "Syntax OK"]);

    // A start checks the same: the monitor does not run without the folder its file goes in.
    const err = recordingLog();
    assert.equal(
      await main(
        ["monitor", "--listen", "127.0.0.1:27999", "--storage", join(dir, "missing", "hb.dat")],
        { stdout: err.write, stderr: err.write },
        {},
      ),
      EXIT_USAGE,
    );
    assert.match(
      err.lines[0],
      /^heartbeat: --storage '.*': the folder .* cannot take it: no such file or directory \(ENOENT\)$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: a message about a setting names it as it was given: flag, variable, or directive at FILE:LINE", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-names-"));
  try {
    const conf = join(dir, "heartbeat.conf");
    writeFileSync(conf, "HeartbeatAddress 239.0.0.1:27999\nHeartbeatKeyFile /nonexistent/key\n");
    const unreadable =
      "cannot read the key file /nonexistent/key: no such file or directory (ENOENT)";
    const sourced = join(dir, "sourced.conf");
    writeFileSync(sourced, "HeartbeatAddress 239.0.0.1:27999\nHeartbeatSource nginx\n");
    const needsCapacity =
      "nginx needs --capacity N: how many connections this server can serve at once";
    const cases: [string[], Record<string, string>, string][] = [
      [["-f", conf, "--ready", "1"], {}, `HeartbeatKeyFile at ${conf}:2: ${unreadable}`],
      [["-f", sourced], {}, `HeartbeatSource at ${sourced}:2 ${needsCapacity}`],
      [
        ["-a", "239.0.0.1:27999"],
        { HEARTBEAT_SOURCE: "nginx" },
        `HEARTBEAT_SOURCE ${needsCapacity}`,
      ],
      [["-a", "239.0.0.1:27999", "--source", "nginx"], {}, `--source ${needsCapacity}`],
      [
        ["-a", "239.0.0.1:27999", "--ready", "1"],
        { HEARTBEAT_KEY_FILE: "/nonexistent/key" },
        `HEARTBEAT_KEY_FILE: ${unreadable}`,
      ],
      [
        ["-f", conf, "--ready", "1", "--key-file", "/nonexistent/key"],
        {},
        `--key-file: ${unreadable}`,
      ],
    ];
    for (const [argv, env, message] of cases) {
      const err = recordingLog();
      assert.equal(
        await main([...argv, "--once", "--dry-run"], { stdout: err.write, stderr: err.write }, env),
        EXIT_USAGE,
      );
      assert.equal(err.lines[0], `heartbeat: ${message}`, argv.join(" "));
    }
    // The monitor's too: its storage folder, from a file, and from the environment.
    const storage = join(dir, "missing", "hb.dat");
    writeFileSync(conf, `HeartbeatListen 127.0.0.1:27999\nHeartbeatStorage ${storage}\n`);
    const missing = `'${storage}': the folder ${
      join(dir, "missing")
    } cannot take it: no such file or directory (ENOENT)`;
    for (
      const [argv, env, message] of [
        [["monitor", "-f", conf], {}, `heartbeat: HeartbeatStorage at ${conf}:2 ${missing}`],
        [["monitor", "-t", "-f", conf], {}, `${conf}:2: HeartbeatStorage ${missing}`],
        [
          ["monitor", "--listen", "127.0.0.1:27999"],
          { HEARTBEAT_STORAGE: storage },
          `heartbeat: HEARTBEAT_STORAGE ${missing}`,
        ],
      ] as const
    ) {
      const err = recordingLog();
      assert.equal(
        await main([...argv], { stdout: err.write, stderr: err.write }, env),
        EXIT_USAGE,
      );
      assert.equal(err.lines[0], message, argv.join(" "));
    }
    // A problem of two settings is put at the one given, and names the other as the way to give it.
    writeFileSync(conf, "HeartbeatListen 127.0.0.1:27999\nHeartbeatHAProxyBackend web\n");
    const err = recordingLog();
    assert.equal(
      await main(["monitor", "-t", "-f", conf], { stdout: err.write, stderr: err.write }, {}),
      EXIT_USAGE,
    );
    assert.deepEqual(err.lines, [
      `${conf}:2: --haproxy-socket and HeartbeatHAProxyBackend go together: where to set weights, and for which backend`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: monitor -t says an adapter this runtime lacks once, not again for --listen", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-t-"));
  try {
    const other = "Deno" in globalThis ? "bun" : "deno";
    const err = recordingLog();
    assert.equal(
      await main(
        [
          "monitor",
          "-t",
          "--listen",
          "127.0.0.1:27999",
          "--runtime-adapter",
          other,
          "--storage",
          join(dir, "hb.dat"),
        ],
        { stdout: err.write, stderr: err.write },
        {},
      ),
      EXIT_USAGE,
    );
    assert.equal(err.lines.length, 1, err.lines.join("\n"));
    assert.match(err.lines[0], new RegExp(`^--runtime-adapter ${other}: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: -t and a start refuse a storage folder anybody may write to without the sticky bit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-t-"));
  try {
    const storage = join(dir, "hb.dat");
    chmodSync(dir, 0o777);
    for (const [argv, prefix] of [[["-t"], ""], [[], "heartbeat: "]] as const) {
      const err = recordingLog();
      assert.equal(
        await main(["monitor", ...argv, "--listen", "127.0.0.1:27999", "--storage", storage], {
          stdout: err.write,
          stderr: err.write,
        }, {}),
        EXIT_USAGE,
      );
      assert.deepEqual(err.lines.slice(0, 1), [
        `${prefix}--storage '${storage}': the folder ${dir} is unsafe: it is writable by everyone (mode 0777) without the sticky bit: any local user could swap the monitor's files there; use a folder only the monitor's user may write to, or chmod +t it`,
      ]);
    }
    chmodSync(dir, 0o1777);
    const out = recordingLog();
    assert.equal(
      await main(["monitor", "-t", "--listen", "127.0.0.1:27999", "--storage", storage], {
        stdout: out.write,
        stderr: out.write,
      }, {}),
      EXIT_OK,
    );
    assert.deepEqual(out.lines, ["Syntax OK"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: monitor -t checks the nginx upstream's folder and the reload command (#26)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-t-"));
  try {
    const run = async (...flags: string[]) => {
      const out = recordingLog();
      const code = await main(["monitor", "-t", "--listen", "127.0.0.1:27999", ...flags], {
        stdout: out.write,
        stderr: out.write,
      }, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
      return [code, out.lines];
    };
    const missing = join(dir, "missing", "upstream.conf");
    const [code, lines] = await run(
      "--nginx-upstream",
      missing,
      "--nginx-reload",
      "nginx-nowhere -s reload",
    );
    assert.equal(code, EXIT_USAGE);
    assert.match(
      String(lines),
      new RegExp(`--nginx-upstream '${missing}': the folder ${dir}/missing cannot take it: `),
    );
    assert.match(
      String(lines),
      /--nginx-reload 'nginx-nowhere -s reload': nginx-nowhere is not in PATH/,
    );
    assert.deepEqual(
      await run("--nginx-upstream", join(dir, "upstream.conf"), "--nginx-reload", "/bin/true"),
      [EXIT_OK, ["Syntax OK"]],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: heartbeat servers FILE -f httpd.conf draws in the balancer's member order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-servers-"));
  try {
    const storage = join(dir, "hb.dat");
    writeFileSync(
      storage,
      "10.0.0.2 &ready=20&busy=2&lastseen=1&port=80\n10.0.0.1 &ready=0&busy=3&lastseen=1&port=80\n",
    );
    const conf = join(dir, "httpd.conf");
    writeFileSync(
      conf,
      '<Proxy "balancer://web">\n  BalancerMember "http://10.0.0.1:80"\n  BalancerMember "http://10.0.0.2:80"\n</Proxy>\n',
    );
    const out = recordingLog();
    assert.equal(
      await main(["servers", storage, "-f", conf], { stdout: out.write, stderr: out.write }, {}),
      EXIT_OK,
    );
    assert.equal(
      out.lines[0],
      "balancer://web (members in " + conf + "'s order: http://10.0.0.1:80, http://10.0.0.2:80)",
    );
    assert.match(
      out.lines[1],
      /^http:\/\/10\.0\.0\.1:80 +10\.0\.0\.1 +0 +3 +1 s +0 +0\.0%\nhttp:\/\/10\.0\.0\.2:80 +10\.0\.0\.2 +20 +2 +1 s +20 +100\.0%$/m,
    );
    const plain = recordingLog();
    assert.equal(
      await main(["servers", storage], { stdout: plain.write, stderr: plain.write }, {}),
      EXIT_OK,
    );
    // The file's order puts the drained server last: it wins the draw's top number.
    assert.match(plain.lines[0], /^10\.0\.0\.1 +80 +0 +3 +1 s +0 +4\.8%$/m);
    assert.match(plain.lines[1], /in the file's order/);
    const err = recordingLog();
    assert.equal(
      await main(["servers", storage, "-f", conf, "--balancer", "api"], {
        stdout: err.write,
        stderr: err.write,
      }, {}),
      EXIT_USAGE,
    );
    assert.match(err.lines[0], /has no balancer:\/\/api; its balancers: balancer:\/\/web$/);
    assert.equal(
      await main(
        ["servers", storage, "--ready", "3"],
        { stdout: err.write, stderr: err.write },
        {},
      ),
      EXIT_USAGE,
    );
    assert.match(err.lines.at(-2)!, /--ready is not an option of 'heartbeat servers'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "cli: a monitor run by root takes a storage folder another user owns; one it cannot write in is refused",
  {
    skip: process.getuid?.() === 0 ? false : "needs root",
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "heartbeat-cli-"));
    try {
      const owned = join(dir, "owned");
      mkdirSync(owned, { mode: 0o755 });
      chownSync(owned, 65534, 65534); // nobody: root may write there all the same
      const out = recordingLog();
      const check = (folder: string) =>
        main(
          ["monitor", "-t", "--listen", "127.0.0.1:27999", "--storage", join(folder, "hb.dat")],
          { stdout: out.write, stderr: out.write },
          {},
        );
      assert.equal(await check(owned), EXIT_OK, out.lines.join("\n"));
      assert.deepEqual(out.lines, ["Syntax OK"]);
      assert.deepEqual(readdirSync(owned), [], "the probe is gone");
      // Not even root writes in /proc.
      assert.equal(await check("/proc"), EXIT_USAGE);
      assert.match(
        out.lines[1],
        /^--storage '\/proc\/hb\.dat': the folder \/proc cannot take it: /,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("cli: a bare '--' before the flags (deno task start -- --address …) is taken as nothing", () => {
  const agent = parseCommandLine(["--", "--address", "239.0.0.1:27999", "--ready", "3"]);
  assert.deepEqual(agent.kind === "run" && agent.invocation.flags, {
    address: ["239.0.0.1:27999"],
    ready: "3",
  });
  const monitor = parseCommandLine(["monitor", "--", "--listen", "239.0.0.1:27999"]);
  assert.equal(monitor.kind === "run" && monitor.mode, "monitor");
  const servers = parseCommandLine(["servers", "--", "/tmp/hb.dat"]);
  assert.deepEqual(servers, { kind: "servers", file: "/tmp/hb.dat" });
  // Anywhere else it is still an argument heartbeat does not take.
  assert.throws(
    () => parseCommandLine(["--ready", "3", "--", "--busy", "1"]),
    /unexpected argument '--busy'/,
  );
});

test("main: heartbeat servers -f with two members on one host: its weight counted twice, every pick to the later member, the heartbeat's port= ignored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-servers-"));
  try {
    const storage = join(dir, "hb.dat");
    writeFileSync(
      storage,
      "10.0.0.1 &ready=20&busy=2&lastseen=1&port=80\n10.0.0.2 &ready=10&busy=1&lastseen=1&port=8080\n",
    );
    const conf = join(dir, "httpd.conf");
    writeFileSync(
      conf,
      '<Proxy "balancer://web">\n  BalancerMember "http://10.0.0.1:80"\n  BalancerMember "http://10.0.0.1:8080"\n  BalancerMember "http://10.0.0.2:80"\n</Proxy>\n',
    );
    const out = recordingLog();
    assert.equal(
      await main(["servers", storage, "-f", conf], { stdout: out.write, stderr: out.write }, {}),
      EXIT_OK,
    );
    assert.deepEqual(out.lines[1].split("\n").map((line) => line.split(/ {2,}/)), [
      ["member", "server", "ready", "busy", "age", "weight", "share"],
      [
        "http://10.0.0.1:80",
        "10.0.0.1",
        "20",
        "2",
        "1 s",
        "20 (its picks go to http://10.0.0.1:8080)",
        "0.0%",
      ],
      ["http://10.0.0.1:8080", "10.0.0.1", "20", "2", "1 s", "20", "78.4%"],
      ["http://10.0.0.2:80", "10.0.0.2", "10", "1", "1 s", "10", "21.6%"],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("main: --ready and --busy with a source that does not read them are said to be ignored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-ignored-"));
  try {
    const load = join(dir, "load");
    writeFileSync(load, "ready=5&busy=1\n");
    const run = async (source: string[]) => {
      const out = recordingLog();
      const err = recordingLog();
      const status = await main(
        ["-a", "239.0.0.1:27999", ...source, "--ready", "3", "--dry-run", "--once"],
        { stdout: out.write, stderr: err.write },
        {},
      );
      return { status, out: out.lines, err: err.lines };
    };
    const file = await run(["--source", `file:${load}`]);
    assert.equal(file.status, EXIT_OK);
    assert.deepEqual(file.out, ["239.0.0.1:27999 v=1&ready=5&busy=1"]);
    assert.equal(file.err.length, 1, file.err.join("\n"));
    assert.match(
      file.err[0],
      /warn {2}--ready and --busy are ignored: only --source static reads them, and the source is file:/,
    );
    // Read where they mean something: by static, and by auto, which then chooses static.
    for (const source of [["--source", "static"], []]) {
      const used = await run(source);
      assert.deepEqual([used.out, used.err], [["239.0.0.1:27999 v=1&ready=3&busy=0"], []]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "main: under Deno, an IPv6 group with a hop limit other than 1 is refused, naming the TTL setting as given",
  { skip: !("Deno" in globalThis) },
  async () => {
    const cases: [string[], Record<string, string>, string][] = [
      [["--ttl", "2"], {}, "--ttl"],
      [[], { HEARTBEAT_TTL: "2" }, "HEARTBEAT_TTL"],
    ];
    for (const [argv, env, name] of cases) {
      const err = recordingLog();
      assert.equal(
        await main(
          ["-a", "[ff02::1234%lo]:27999", "--ready", "1", "--once", ...argv],
          { stdout: err.write, stderr: err.write },
          env,
        ),
        EXIT_FAILURE,
      );
      assert.equal(
        err.lines[0],
        `heartbeat: ${name} 2: Deno cannot set the IPv6 multicast hop limit: ask for 1, or run under Bun`,
      );
    }
  },
);
