import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { MAX_EXPANDED_BYTES, readHttpdConfig } from "../src/config/httpd.ts";
import { type ConfigFs, MAX_INCLUDE_PATHS } from "../src/config/include-paths.ts";
import { tokenize } from "../src/config/lines.ts";
import { loadSettings, MAX_CONFIG_BYTES } from "../src/config/load.ts";
import { describeSettings, KNOWN_DIRECTIVES } from "../src/settings.ts";
import { requiredOrSkipped } from "./support/lab.ts";

/** A file system of `path: text` entries; folders are implied by the paths. */
function memoryFs(files: Record<string, string>): ConfigFs {
  const isDirectory = (path: string) =>
    Object.keys(files).some((file) => file.startsWith(`${path.replace(/\/$/, "")}/`));
  return {
    readFile(path) {
      if (!(path in files)) {
        throw Object.assign(new Error("no such file"), {
          code: isDirectory(path) ? "EISDIR" : "ENOENT",
        });
      }
      return files[path];
    },
    isDirectory,
    exists: (path) => path in files || isDirectory(path),
    realpath: (path) => path,
    readdir(path) {
      const prefix = `${path.replace(/\/$/, "")}/`;
      if (!isDirectory(path)) {
        throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
      }
      return [
        ...new Set(
          Object.keys(files).filter((file) => file.startsWith(prefix)).map((file) =>
            file.slice(prefix.length).split("/")[0]
          ),
        ),
      ];
    },
  };
}

function read(files: Record<string, string>, env: Record<string, string> = {}) {
  return readHttpdConfig("/etc/hb/main.conf", {
    fs: memoryFs(files),
    env,
    knownDirectives: KNOWN_DIRECTIVES,
    builtinModules: ["heartbeat_module", "mod_heartbeat.c"],
  });
}

/** The settings a config gives, with problems; flags and environment as given. */
function settings(
  files: Record<string, string>,
  env: Record<string, string> = {},
  flags: Record<string, string | string[]> = {},
) {
  return loadSettings({ flags, env, configFile: "/etc/hb/main.conf", fs: memoryFs(files) });
}

test("config: words split as Apache splits them, quotes and all", () => {
  assert.deepEqual(tokenize(`HeartbeatAddress   239.0.0.1:27999`), [
    "HeartbeatAddress",
    "239.0.0.1:27999",
  ]);
  assert.deepEqual(tokenize(`Directive "two words" 'single "inner"' plain`), [
    "Directive",
    "two words",
    'single "inner"',
    "plain",
  ]);
  assert.deepEqual(tokenize(`LogFormat "%h \\"%r\\" %>s" combined`), [
    "LogFormat",
    '%h "%r" %>s',
    "combined",
  ]);
  assert.deepEqual(tokenize(`X "unclosed quote runs on`), ["X", "unclosed quote runs on"]);
  assert.deepEqual(tokenize(`X "" y`), ["X", "", "y"]);
});

test("config: syntax cases", () => {
  const cases: [string, Record<string, string>, Record<string, string>, string[]][] = [
    ["a plain directive", { "/etc/hb/main.conf": "HeartbeatAddress 239.0.0.1:27999\n" }, {}, [
      "239.0.0.1:27999",
    ]],
    [
      "names ignore case",
      { "/etc/hb/main.conf": "heartbeataddress 239.0.0.1:1\nHEARTBEATADDRESS 239.0.0.1:2" },
      {},
      ["239.0.0.1:1", "239.0.0.1:2"],
    ],
    [
      "comments, blank lines, indentation",
      {
        "/etc/hb/main.conf":
          "# HeartbeatAddress 1.1.1.1:1\n\n   \n\t# x\n  HeartbeatAddress 239.0.0.1:3\n",
      },
      {},
      ["239.0.0.1:3"],
    ],
    ["a continuation", { "/etc/hb/main.conf": "HeartbeatAddress \\\n   239.0.0.1:4\n" }, {}, [
      "239.0.0.1:4",
    ]],
    ["quoted argument", { "/etc/hb/main.conf": `HeartbeatAddress "239.0.0.1:5"` }, {}, [
      "239.0.0.1:5",
    ]],
    ["CRLF line ends", { "/etc/hb/main.conf": "HeartbeatAddress 239.0.0.1:6\r\n" }, {}, [
      "239.0.0.1:6",
    ]],
    [
      "Define and ${NAME}",
      { "/etc/hb/main.conf": "Define HB_GROUP 239.0.0.1\nHeartbeatAddress ${HB_GROUP}:7" },
      {},
      ["239.0.0.1:7"],
    ],
    [
      "Defines before the environment",
      { "/etc/hb/main.conf": "Define G 239.0.0.1\nHeartbeatAddress ${G}:8" },
      { G: "10.0.0.1" },
      ["239.0.0.1:8"],
    ],
    ["the environment", { "/etc/hb/main.conf": "HeartbeatAddress ${G}:9" }, { G: "239.0.0.9" }, [
      "239.0.0.9:9",
    ]],
    [
      "UnDefine",
      { "/etc/hb/main.conf": "Define G 239.0.0.1\nUnDefine G\nHeartbeatAddress ${G}:10" },
      { G: "239.0.0.10" },
      ["239.0.0.10:10"],
    ],
    [
      "IfDefine",
      {
        "/etc/hb/main.conf":
          "Define ON\n<IfDefine ON>\nHeartbeatAddress 239.0.0.1:11\n</IfDefine>\n<IfDefine OFF>\nHeartbeatAddress 239.0.0.1:99\n</IfDefine>\n<IfDefine !OFF>\nHeartbeatAddress 239.0.0.1:12\n</IfDefine>",
      },
      {},
      ["239.0.0.1:11", "239.0.0.1:12"],
    ],
    [
      "IfModule: the heartbeat module is loaded",
      {
        "/etc/hb/main.conf":
          "<IfModule mod_heartbeat.c>\nHeartbeatAddress 239.0.0.1:13\n</IfModule>\n<IfModule heartbeat_module>\nHeartbeatAddress 239.0.0.1:14\n</IfModule>\n<IfModule !mod_heartbeat.c>\nHeartbeatAddress 239.0.0.1:99\n</IfModule>",
      },
      {},
      ["239.0.0.1:13", "239.0.0.1:14"],
    ],
    [
      "IfModule: modules loaded earlier",
      {
        "/etc/hb/main.conf":
          "<IfModule mod_status.c>\nHeartbeatAddress 239.0.0.1:99\n</IfModule>\nLoadModule status_module /x/mod_status.so\n<IfModule mod_status.c>\nHeartbeatAddress 239.0.0.1:15\n</IfModule>\n<IfModule status_module>\nHeartbeatAddress 239.0.0.1:16\n</IfModule>",
      },
      {},
      ["239.0.0.1:15", "239.0.0.1:16"],
    ],
    [
      "IfFile, relative to the main file's folder",
      {
        "/etc/hb/main.conf":
          "<IfFile other.conf>\nHeartbeatAddress 239.0.0.1:17\n</IfFile>\n<IfFile !/nope>\nHeartbeatAddress 239.0.0.1:18\n</IfFile>\n<IfFile /nope>\nHeartbeatAddress 239.0.0.1:99\n</IfFile>",
        "/etc/hb/other.conf": "",
      },
      {},
      ["239.0.0.1:17", "239.0.0.1:18"],
    ],
    [
      "IfDirective",
      {
        "/etc/hb/main.conf":
          "<IfDirective HeartbeatAddress>\nHeartbeatAddress 239.0.0.1:19\n</IfDirective>\n<IfDirective NoSuchThing>\nHeartbeatAddress 239.0.0.1:99\n</IfDirective>",
      },
      {},
      ["239.0.0.1:19"],
    ],
    [
      "nested conditionals",
      {
        "/etc/hb/main.conf":
          "<IfDefine !X>\n<IfModule mod_heartbeat.c>\n<IfDefine Y>\nHeartbeatAddress 239.0.0.1:99\n</IfDefine>\nHeartbeatAddress 239.0.0.1:20\n</IfModule>\n</IfDefine>",
      },
      {},
      ["239.0.0.1:20"],
    ],
    [
      "Include relative to the main file's folder",
      {
        "/etc/hb/main.conf": "Include conf.d/a.conf",
        "/etc/hb/conf.d/a.conf": "HeartbeatAddress 239.0.0.1:21",
      },
      {},
      ["239.0.0.1:21"],
    ],
    [
      "Include relative to ServerRoot",
      {
        "/etc/hb/main.conf": "ServerRoot /srv\nInclude a.conf",
        "/srv/a.conf": "HeartbeatAddress 239.0.0.1:22",
      },
      {},
      ["239.0.0.1:22"],
    ],
    [
      "IncludeOptional with a glob, in order",
      {
        "/etc/hb/main.conf": "IncludeOptional conf.d/*.conf\nIncludeOptional none/*.conf",
        "/etc/hb/conf.d/b.conf": "HeartbeatAddress 239.0.0.1:24",
        "/etc/hb/conf.d/a.conf": "HeartbeatAddress 239.0.0.1:23",
        "/etc/hb/conf.d/c.txt": "HeartbeatAddress 239.0.0.1:99",
      },
      {},
      ["239.0.0.1:23", "239.0.0.1:24"],
    ],
    [
      "a glob in a folder name",
      {
        "/etc/hb/main.conf": "Include sites-*/x.conf",
        "/etc/hb/sites-a/x.conf": "HeartbeatAddress 239.0.0.1:25",
        "/etc/hb/sites-b/x.conf": "HeartbeatAddress 239.0.0.1:26",
      },
      {},
      ["239.0.0.1:25", "239.0.0.1:26"],
    ],
    [
      "Include of a folder",
      {
        "/etc/hb/main.conf": "Include /etc/hb/d",
        "/etc/hb/d/2.conf": "HeartbeatAddress 239.0.0.1:28",
        "/etc/hb/d/1.conf": "HeartbeatAddress 239.0.0.1:27",
      },
      {},
      ["239.0.0.1:27", "239.0.0.1:28"],
    ],
    [
      "an included file's Define applies after it",
      {
        "/etc/hb/main.conf": "Include vars.conf\nHeartbeatAddress ${G}:29",
        "/etc/hb/vars.conf": "Define G 239.0.0.29",
      },
      {},
      ["239.0.0.29:29"],
    ],
    [
      "other directives and sections are ignored",
      {
        "/etc/hb/main.conf":
          'LogFormat "%h %l" common\n<Directory /var/www>\nRequire all granted\n</Directory>\nErrorLog ${APACHE_LOG_DIR}/error.log\nHeartbeatAddress 239.0.0.1:30',
      },
      {},
      ["239.0.0.1:30"],
    ],
  ];
  for (const [what, files, env, expected] of cases) {
    const result = settings(files, env);
    assert.deepEqual(result.problems, [], what);
    assert.deepEqual(result.settings.addresses.map((address) => address.text), expected, what);
  }
});

test("config: error cases name the file and line, in Apache's words", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      "no port",
      { "/etc/hb/main.conf": "\n\nHeartbeatAddress 239.0.0.1" },
      /^\/etc\/hb\/main\.conf:3: HeartbeatAddress: No port provided in address$/,
    ],
    [
      "no host",
      { "/etc/hb/main.conf": "HeartbeatAddress 27999" },
      /^\/etc\/hb\/main\.conf:1: HeartbeatAddress: No host provided in address$/,
    ],
    ["in an included file", {
      "/etc/hb/main.conf": "Include x.conf",
      "/etc/hb/x.conf": "# c\nHeartbeatTTL 300",
    }, /^\/etc\/hb\/x\.conf:2: HeartbeatTTL: give a whole number from 0 to 255$/],
    [
      "two arguments",
      { "/etc/hb/main.conf": "HeartbeatAddress 239.0.0.1:1 239.0.0.1:2" },
      /:1: HeartbeatAddress takes one argument$/,
    ],
    [
      "undefined variable in our directive",
      { "/etc/hb/main.conf": "HeartbeatAddress ${HB}:27999" },
      /:1: HeartbeatAddress: variable \$\{HB\} is not defined$/,
    ],
    [
      "systemd's credentials folder, checked outside systemd",
      { "/etc/hb/main.conf": "HeartbeatKeyFile ${CREDENTIALS_DIRECTORY}/heartbeat.key" },
      /:1: HeartbeatKeyFile: variable \$\{CREDENTIALS_DIRECTORY\} is not defined \(systemd sets it for a unit with LoadCredential=; to check the file outside the unit, give it: CREDENTIALS_DIRECTORY=\/etc\/heartbeat heartbeat -t -f FILE\)$/,
    ],
    ["inside a VirtualHost", {
      "/etc/hb/main.conf": "<VirtualHost *:80>\nHeartbeatAddress 239.0.0.1:1\n</VirtualHost>",
    }, /:2: HeartbeatAddress cannot occur within <VirtualHost> section$/],
    [
      "a misspelled Heartbeat directive",
      { "/etc/hb/main.conf": "HeartbeatAdress 239.0.0.1:1" },
      /:1: Invalid command 'HeartbeatAdress', perhaps misspelled; did you mean 'HeartbeatAddress'\?$/,
    ],
    [
      "mismatched section end",
      { "/etc/hb/main.conf": "<IfModule x>\n</IfDefine>" },
      /:2: Expected <\/IfModule> but saw <\/IfDefine>$/,
    ],
    [
      "section end without a start",
      { "/etc/hb/main.conf": "HeartbeatTTL 1\n</IfModule>" },
      /:2: <\/IfModule> without matching <IfModule> section$/,
    ],
    [
      "unclosed section",
      { "/etc/hb/main.conf": "\n<IfDefine X>\nHeartbeatTTL 1" },
      /:2: <IfDefine> was not closed\.$/,
    ],
    ["unclosed in an included file", {
      "/etc/hb/main.conf": "Include a.conf\n</Directory>",
      "/etc/hb/a.conf": "<Directory />",
    }, /^\/etc\/hb\/a\.conf:1: <Directory> was not closed\.$/],
    [
      "section missing its >",
      { "/etc/hb/main.conf": "<IfDefine X\n</IfDefine>" },
      /:1: <IfDefine> directive missing closing '>'$/,
    ],
    [
      "Include of a missing file",
      { "/etc/hb/main.conf": "Include nope.conf" },
      /:1: Include: Could not open configuration file \/etc\/hb\/nope\.conf: No such file or directory$/,
    ],
    [
      "Include of an empty glob",
      { "/etc/hb/main.conf": "Include conf.d/*.conf" },
      /:1: Include: No matches for the wildcard pattern \/etc\/hb\/conf\.d\/\*\.conf$/,
    ],
    [
      "Include loop",
      {
        "/etc/hb/main.conf": "Include a.conf",
        "/etc/hb/a.conf": "Include b.conf",
        "/etc/hb/b.conf": "\nInclude a.conf",
      },
      /^\/etc\/hb\/b\.conf:2: Include: \/etc\/hb\/a\.conf includes itself \(\/etc\/hb\/a\.conf -> \/etc\/hb\/b\.conf -> \/etc\/hb\/a\.conf\)$/,
    ],
    ["Include of itself", { "/etc/hb/main.conf": "Include main.conf" }, /includes itself/],
    [
      "Include with an undefined variable",
      { "/etc/hb/main.conf": "Include ${NOPE}/x.conf" },
      /:1: Include: variable \$\{NOPE\} is not defined$/,
    ],
    [
      "Define with no name",
      { "/etc/hb/main.conf": "Define" },
      /:1: Define takes one or two arguments$/,
    ],
    [
      "IfModule with no argument",
      { "/etc/hb/main.conf": "<IfModule>\n</IfModule>" },
      /:1: <IfModule> takes one argument$/,
    ],
    [
      "HeartbeatMaxServers as mod_heartmonitor checks it",
      {
        "/etc/hb/main.conf": "HeartbeatMaxServers 5",
      },
      /:1: HeartbeatMaxServers: Should be 0 for file storage, or greater or equal than 10 for slotmem$/,
    ],
    [
      "HeartbeatReceiveBuffer as Apache checks ReceiveBufferSize",
      { "/etc/hb/main.conf": "HeartbeatReceiveBuffer 100" },
      /:1: HeartbeatReceiveBuffer: must be >= 512 bytes, or 0 for system default$/,
    ],
    [
      "HeartbeatListen without a port",
      { "/etc/hb/main.conf": "HeartbeatListen 239.0.0.1" },
      /:1: HeartbeatListen: No port provided in address$/,
    ],
    [
      "a missing main file",
      {},
      /^cannot open config file \/etc\/hb\/main\.conf: no such file or directory \(ENOENT\)$/,
    ],
  ];
  for (const [what, files, message] of cases) {
    const { problems } = settings(files);
    assert.ok(
      problems.some((problem) => message.test(problem)),
      `${what}: ${JSON.stringify(problems)}`,
    );
  }
});

test("config: an undefined variable is an error only where the agent uses it", () => {
  const { problems, settings: found } = settings({
    "/etc/hb/main.conf":
      "PidFile ${APACHE_PID_FILE}\nErrorLog ${APACHE_LOG_DIR}/error.log\nHeartbeatAddress 239.0.0.1:1",
  });
  assert.deepEqual(problems, []);
  assert.equal(found.addresses.length, 1);
});

test("config: every problem is reported, not just the first", () => {
  const { problems } = settings({
    "/etc/hb/main.conf":
      "HeartbeatAddress 239.0.0.1\nHeartbeatTTL 999\nHeartbeatInterval 0\n</IfModule>",
  });
  assert.equal(problems.length, 4, problems.join("\n"));
});

test("config: problems come in the order of the lines, file by file, as the operator reads them", () => {
  const { problems } = settings({
    "/etc/hb/main.conf":
      "HeartbeatTTL 999\nInclude x.conf\nHeartbeatInterval 0\nHeartbeatAddress 239.0.0.1\n</IfModule>",
    "/etc/hb/x.conf": "HeartbeatPort 99999\nHeartbeatAdress 239.0.0.1:1",
  });
  assert.deepEqual(
    problems.map((problem) => /^(\S+?:\d+):/.exec(problem)?.[1]),
    [
      "/etc/hb/main.conf:1",
      "/etc/hb/main.conf:3",
      "/etc/hb/main.conf:4",
      "/etc/hb/main.conf:5",
      "/etc/hb/x.conf:1",
      "/etc/hb/x.conf:2",
    ],
    problems.join("\n"),
  );
});

test("config: one value per setting, the last line wins; repeated addresses add up", () => {
  const { settings: found } = settings({
    "/etc/hb/main.conf":
      "HeartbeatTTL 2\nHeartbeatTTL 3\nHeartbeatAddress 239.0.0.1:1\nHeartbeatAddress 10.0.0.1:2",
  });
  assert.equal(found.ttl, 3);
  assert.deepEqual(found.addresses.map((address) => address.text), ["239.0.0.1:1", "10.0.0.1:2"]);
});

test("config: every directive the agent reads", () => {
  const { settings: found, problems } = settings({
    "/etc/hb/main.conf": [
      "HeartbeatAddress 239.0.0.1:27999",
      "HeartbeatInterface 10.0.0.2",
      "HeartbeatTTL 4",
      "HeartbeatPort 8080",
      "HeartbeatSource nginx",
      "HeartbeatSmooth 2.5",
      "HeartbeatReady 5",
      "HeartbeatBusy 6",
      "HeartbeatCapacity 100",
      "HeartbeatMaxAge 3",
      "HeartbeatProcRoot /host/proc",
      "HeartbeatInterval 0.5",
      "HeartbeatRuntimeAdapter node",
      "HeartbeatLogLevel warn",
      "HeartbeatListen 239.0.0.1:27999",
      "HeartbeatStorage /var/lib/hb.dat",
      "HeartbeatMaxServers 0",
      "HeartbeatNginxUpstream /run/heartbeat/nginx-upstream.conf",
      "HeartbeatNginxServer 10.0.0.0/24",
      "HeartbeatNginxServer 10.0.1.5:8080",
      "HeartbeatNginxPort 8000",
      'HeartbeatNginxReload "/usr/sbin/nginx -s reload"',
      "HeartbeatNginxReloadInterval 2.5",
    ].join("\n"),
  });
  assert.deepEqual(problems, []);
  assert.deepEqual(found.nginxServers?.map(({ text, port }) => ({ text, port })), [
    { text: "10.0.0.0/24", port: undefined },
    { text: "10.0.1.5:8080", port: 8080 },
  ]);
  delete found.nginxServers;
  assert.deepEqual({ ...found, addresses: found.addresses.length, listen: found.listen?.text }, {
    addresses: 1,
    interfaceAddress: "10.0.0.2",
    ttl: 4,
    port: 8080,
    source: ["nginx"],
    smoothSeconds: 2.5,
    ready: 5,
    busy: 6,
    capacity: 100,
    maxAgeSeconds: 3,
    procRoot: "/host/proc",
    intervalSeconds: 0.5,
    runtimeAdapter: "node",
    logLevel: "warn",
    listen: "239.0.0.1:27999",
    storage: "/var/lib/hb.dat",
    // 0 means the default number, as in mod_heartmonitor; the effective value is shown.
    maxServers: 1000,
    resolveIntervalSeconds: 30,
    signatureWindowSeconds: 5,
    httpPaths: ["/heartbeat", "/HeartbeatListener"],
    nginxUpstream: "/run/heartbeat/nginx-upstream.conf",
    nginxPort: 8000,
    nginxReload: "/usr/sbin/nginx -s reload",
    nginxReloadIntervalSeconds: 2.5,
  });
});

test("config: flags win over the environment, the environment over the file, the file over defaults", () => {
  const files = {
    "/etc/hb/main.conf":
      "HeartbeatTTL 3\nHeartbeatPort 81\nHeartbeatReady 7\nHeartbeatAddress 239.0.0.1:1",
  };
  const env = {
    HEARTBEAT_PORT: "82",
    HEARTBEAT_READY: "8",
    HEARTBEAT_ADDRESS: "10.0.0.1:2, 10.0.0.2:3",
  };
  const resolved = settings(files, env, { ready: "9" });
  assert.deepEqual(resolved.problems, []);
  assert.equal(resolved.settings.ttl, 3);
  assert.equal(resolved.settings.port, 82);
  assert.equal(resolved.settings.ready, 9);
  assert.equal(resolved.settings.intervalSeconds, 1);
  assert.deepEqual(resolved.settings.addresses.map((address) => address.text), [
    "10.0.0.1:2",
    "10.0.0.2:3",
  ]);
  assert.deepEqual(resolved.origins, {
    addresses: "HEARTBEAT_ADDRESS",
    ttl: "/etc/hb/main.conf:1",
    port: "HEARTBEAT_PORT",
    ready: "--ready",
    source: "default",
    intervalSeconds: "default",
    logLevel: "default",
    resolveIntervalSeconds: "default",
    maxAgeSeconds: "default",
    signatureWindowSeconds: "default",
    maxServers: "default",
    httpPaths: "default",
    nginxPort: "default",
    nginxReload: "default",
    nginxReloadIntervalSeconds: "default",
  });
  assert.equal(
    describeSettings(resolved),
    [
      "directive                 value                  from",
      "HeartbeatAddress          10.0.0.1:2 10.0.0.2:3  HEARTBEAT_ADDRESS",
      "HeartbeatTTL              3                      /etc/hb/main.conf:1",
      "HeartbeatPort             82                     HEARTBEAT_PORT",
      "HeartbeatResolveInterval  30                     default",
      "HeartbeatSource           auto                   default",
      "HeartbeatReady            9                      --ready",
      "HeartbeatMaxAge           10                     default",
      "HeartbeatInterval         1                      default",
      "HeartbeatLogLevel         info                   default",
    ].join("\n"),
  );
  // The monitor's own settings only, its defaults included.
  assert.equal(
    describeSettings(resolved, "monitor"),
    [
      "directive                     value                          from",
      "HeartbeatHTTPPath             /heartbeat /HeartbeatListener  default",
      "HeartbeatMaxServers           1000                           default",
      "HeartbeatNginxPort            80                             default",
      "HeartbeatNginxReload          nginx -s reload                default",
      "HeartbeatNginxReloadInterval  5                              default",
      "HeartbeatSignatureWindow      5                              default",
      "HeartbeatLogLevel             info                           default",
    ].join("\n"),
  );
  assert.deepEqual(settings(files, { HEARTBEAT_TTL: "x" }).problems, [
    "HEARTBEAT_TTL 'x': give a whole number from 0 to 255",
  ]);
});

test("config: several sources, from HeartbeatSource lines, repeated flags or HEARTBEAT_SOURCE's list", () => {
  const files = {
    "/etc/hb/main.conf": [
      "HeartbeatAddress 239.0.0.1:1",
      "HeartbeatSource static",
      'HeartbeatSource "exec:/usr/local/bin/load --pool a,b"',
    ].join("\n"),
  };
  const fromFile = settings(files);
  assert.deepEqual(fromFile.problems, []);
  assert.deepEqual(fromFile.settings.source, ["static", "exec:/usr/local/bin/load --pool a,b"]);
  assert.equal(fromFile.origins.source, "/etc/hb/main.conf:2, /etc/hb/main.conf:3");
  assert.match(
    describeSettings(fromFile),
    /^HeartbeatSource +static, exec:\/usr\/local\/bin\/load --pool a,b +\/etc\/hb\/main\.conf:2, \/etc\/hb\/main\.conf:3$/m,
  );
  // The list splits only at a comma a source's name follows: a command keeps its own commas and
  // spaces, and tcp its ports.
  const cases: [string, string[]][] = [
    ["apache,file:/run/load", ["apache", "file:/run/load"]],
    ["static , tcp:80,443, exec:printf 'ready=1,busy=2'", [
      "static",
      "tcp:80,443",
      "exec:printf 'ready=1,busy=2'",
    ]],
    ["exec:load --a 1, file:/x,static", ["exec:load --a 1", "file:/x", "static"]],
    ["exec:echo a,b", ["exec:echo a,b"]],
  ];
  for (const [list, expected] of cases) {
    const fromEnv = settings(files, { HEARTBEAT_SOURCE: list });
    assert.deepEqual(fromEnv.problems, []);
    assert.deepEqual(fromEnv.settings.source, expected, list);
    assert.equal(fromEnv.origins.source, "HEARTBEAT_SOURCE");
  }
  const fromFlags = settings(files, { HEARTBEAT_SOURCE: "apache" }, {
    source: ["nginx", "file:/run/load"],
  });
  assert.deepEqual(fromFlags.settings.source, ["nginx", "file:/run/load"]);
  assert.equal(fromFlags.origins.source, "--source");
  assert.deepEqual(settings(files, { HEARTBEAT_SMOOTH: "-1" }).problems, [
    "HEARTBEAT_SMOOTH '-1': give seconds from 0 to 3600, e.g. 1 or 0.5",
  ]);
});

test("config: reading is a pure function of its files", () => {
  const files = {
    "/etc/hb/main.conf": "Include *.inc\nHeartbeatAddress 239.0.0.1:1",
    "/etc/hb/a.inc": "Define X 1",
  };
  assert.deepEqual(read(files), read(files));
  assert.deepEqual(
    read(files).directives.map((directive) => [directive.name, directive.file, directive.line]),
    [
      ["HeartbeatAddress", "/etc/hb/main.conf", 2],
    ],
  );
});

const DEBIAN = "/etc/apache2/apache2.conf";
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-config-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("config: Debian's real /etc/apache2 tree with a HeartbeatAddress in conf-enabled", {
  skip: requiredOrSkipped(existsSync(DEBIAN) ? undefined : "Debian's apache2 is not installed"),
}, () => {
  const tree = join(scratch, "apache2");
  cpSync(dirname(DEBIAN), tree, { recursive: true, dereference: false, verbatimSymlinks: true });
  const heartbeatConf = join(tree, "conf-enabled", "heartbeat.conf");
  writeFileSync(
    heartbeatConf,
    [
      "# Sends this server's load to the proxies",
      "Define HEARTBEAT_GROUP 239.0.0.1",
      "<IfModule mod_heartbeat.c>",
      "    HeartbeatAddress ${HEARTBEAT_GROUP}:27999",
      "</IfModule>",
      "",
    ].join("\n"),
  );
  const load = () => loadSettings({ flags: {}, env: {}, configFile: join(tree, "apache2.conf") });
  const good = load();
  assert.deepEqual(good.problems, []);
  assert.deepEqual(good.settings.addresses.map((address) => address.text), ["239.0.0.1:27999"]);
  assert.equal(good.origins.addresses, `${heartbeatConf}:4`);

  writeFileSync(
    heartbeatConf,
    "<IfModule mod_heartbeat.c>\n    HeartbeatAddress 239.0.0.1\n</IfModule>\n",
  );
  assert.deepEqual(load().problems, [
    `${heartbeatConf}:2: HeartbeatAddress: No port provided in address`,
  ]);
});

test("config: relative paths resolve as Apache resolves them: HeartbeatStorage in the run-time folder, files under ServerRoot", () => {
  const storage = (conf: string) => settings({ "/etc/hb/main.conf": conf }).settings.storage;
  // No ServerRoot: the main file's folder, as Debian's /etc/apache2; no DefaultRuntimeDir: httpd's logs/.
  assert.equal(storage("HeartbeatStorage hb.dat"), "/etc/hb/logs/hb.dat");
  assert.equal(storage("ServerRoot /srv/httpd\nHeartbeatStorage hb.dat"), "/srv/httpd/logs/hb.dat");
  assert.equal(
    storage("DefaultRuntimeDir /var/run/apache2\nHeartbeatStorage hb.dat"),
    "/var/run/apache2/hb.dat",
  );
  assert.equal(
    storage("ServerRoot /srv\nDefaultRuntimeDir run\nHeartbeatStorage logs/hb.dat"),
    "/srv/run/logs/hb.dat",
  );
  assert.equal(
    storage("DefaultRuntimeDir /var/run/apache2\nHeartbeatStorage /data/hb.dat"),
    "/data/hb.dat",
  );
  const files = settings({
    "/etc/hb/main.conf": "ServerRoot /srv\nHeartbeatKeyFile keys/hb.key\nHeartbeatDrainFile drain",
  });
  assert.deepEqual([files.settings.keyFile, files.settings.drainFile], [
    "/srv/keys/hb.key",
    "/srv/drain",
  ]);
  // A flag's, and a variable's, relative path is the working folder's, shown absolute.
  const flagged = settings({ "/etc/hb/main.conf": "" }, { HEARTBEAT_KEY_FILE: "k" }, {
    storage: "hb.dat",
  });
  assert.deepEqual([flagged.settings.storage, flagged.settings.keyFile], [
    join(process.cwd(), "hb.dat"),
    join(process.cwd(), "k"),
  ]);
  assert.match(
    describeSettings(flagged, "monitor"),
    new RegExp(`^HeartbeatStorage +${join(process.cwd(), "hb.dat")} +--storage$`, "m"),
  );
});

test("config: lines and includes that crashed the reader are FILE:LINE problems", () => {
  // A line that expands to nothing is blank; an Include glob with a range out of order matches nothing.
  assert.deepEqual(
    settings({ "/etc/hb/main.conf": "Define EMPTY\n${EMPTY}\nHeartbeatAddress 239.0.0.1:1" })
      .problems,
    [],
  );
  assert.deepEqual(settings({ "/etc/hb/main.conf": "Include /etc/hb/[z-a].conf" }).problems, [
    "/etc/hb/main.conf:1: Include: No matches for the wildcard pattern /etc/hb/[z-a].conf",
  ]);
  // A folder that cannot be listed, as under systemd's DynamicUser.
  const unreadable: ConfigFs = {
    ...memoryFs({ "/etc/hb/main.conf": "Include /etc/hb/conf.d\nHeartbeatAddress 239.0.0.1:1" }),
    isDirectory: (path) => path === "/etc/hb/conf.d",
    exists: (path) => path === "/etc/hb/conf.d" || path === "/etc/hb/main.conf",
    readdir: () => {
      throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    },
  };
  const read = loadSettings({
    flags: {},
    env: {},
    configFile: "/etc/hb/main.conf",
    fs: unreadable,
  });
  assert.deepEqual(read.problems, [
    "/etc/hb/main.conf:1: Include: Could not open configuration file /etc/hb/conf.d: Permission denied",
  ]);
});

test("config: only regular files of at most 1 MiB are read, so a FIFO or /dev/zero cannot hang or swell it", () => {
  const dir = mkdtempSync(join(tmpdir(), "heartbeat-config-"));
  try {
    const fifo = join(dir, "fifo.conf");
    execFileSync("mkfifo", [fifo]);
    const big = join(dir, "big.conf");
    writeFileSync(big, "#".repeat(MAX_CONFIG_BYTES + 1));
    const main = join(dir, "main.conf");
    writeFileSync(
      main,
      `Include ${fifo}\nInclude /dev/zero\nInclude ${big}\nHeartbeatAddress 239.0.0.1:1\n`,
    );
    assert.deepEqual(loadSettings({ flags: {}, env: {}, configFile: main }).problems, [
      `${main}:1: Could not open configuration file ${fifo}: not a regular file`,
      `${main}:2: Could not open configuration file /dev/zero: not a regular file`,
      `${main}:3: Could not open configuration file ${big}: larger than ${MAX_CONFIG_BYTES} bytes`,
    ]);
    assert.deepEqual(loadSettings({ flags: {}, env: {}, configFile: fifo }).problems, [
      `cannot open config file ${fifo}: not a regular file`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("config: a quoted argument of a section is one argument, as Apache 2.4 reads it; a `!` negates only outside the quotes", () => {
  // Each checked against apache2 -t (2.4.71) with mod_version.c: the same sections hold.
  const config = read({
    "/etc/hb/main.conf": [
      ['"mod_heartbeat.c"', 1],
      ["'heartbeat_module'", 2],
      ['!"mod_heartbeat.c"', 3],
      ['"!mod_nothing.c"', 4],
      ['!"mod_nothing.c"', 5],
      ['"mod_nothing.c"', 6],
    ].map(([module, port]) =>
      `<IfModule ${module}>\nHeartbeatAddress 239.0.0.1:${port}\n</IfModule>`
    ).join("\n") + '\nDefine ON\n<IfDefine "ON">\nHeartbeatAddress 239.0.0.1:7\n</IfDefine>',
  });
  assert.deepEqual(config.problems, []);
  assert.deepEqual(config.directives.map((directive) => directive.args[0]), [
    "239.0.0.1:1",
    "239.0.0.1:2",
    "239.0.0.1:5",
    "239.0.0.1:7",
  ]);
});

test("config: Defines that double each other stop at Apache's 16 MiB line, with a FILE:LINE problem", () => {
  // Line 21 would make 20 MiB of a 10-byte value; the old reader built it, and at 27 lines ran
  // out of memory.
  const lines = ["Define V0 0123456789"];
  for (let i = 1; i < 22; i++) lines.push(`Define V${i} \${V${i - 1}}\${V${i - 1}}`);
  const config = read({
    "/etc/hb/main.conf": [...lines, "HeartbeatAddress 239.0.0.1:1"].join("\n"),
  });
  assert.equal(config.problems.length, 1, JSON.stringify(config.problems));
  assert.deepEqual(config.problems[0].file, "/etc/hb/main.conf");
  assert.ok(config.problems[0].line <= 22);
  assert.match(
    config.problems[0].message,
    new RegExp(`^Line too long: \\$\\{\\} variables add more than ${MAX_EXPANDED_BYTES} bytes`),
  );
});

test("config: an Include of a folder linked into itself, or reaching one folder twice, is refused at once", () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "heartbeat-config-")));
  try {
    // Two links to itself: the old reader walked about 2^40 paths and never ended.
    const loop = join(dir, "loop.d");
    mkdirSync(loop);
    writeFileSync(join(loop, "a.conf"), "HeartbeatAddress 239.0.0.1:1\n");
    symlinkSync(".", join(loop, "self"));
    symlinkSync(loop, join(loop, "again"));
    // No loop, but each folder links to the next twice: 2^15 paths.
    for (let level = 0; level < 15; level++) {
      const folder = join(dir, `wide${level}`);
      mkdirSync(folder);
      for (const link of ["x", "y"]) symlinkSync(join(dir, `wide${level + 1}`), join(folder, link));
    }
    mkdirSync(join(dir, "wide15"));
    const main = join(dir, "main.conf");
    writeFileSync(main, `Include ${loop}\nInclude ${dir}/wide0\nHeartbeatAddress 239.0.0.1:2\n`);
    assert.deepEqual(loadSettings({ flags: {}, env: {}, configFile: main }).problems, [
      `${main}:1: Include: ${loop}: ${loop}/again is a link back to ${loop}, a folder it is in: a loop`,
      `${main}:2: Include: ${dir}/wide0: ${dir}/wide0${"/x".repeat(14)}/y and ${dir}/wide0${
        "/x".repeat(15)
      } are one folder, ${dir}/wide15, reached twice through links`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("config: an Include walks at most 10,000 files and folders, 128 folders deep, as Apache", () => {
  const main = { "/etc/hb/main.conf": "Include /etc/hb/conf.d\nHeartbeatAddress 239.0.0.1:1" };
  const problems = (fs: ConfigFs) =>
    loadSettings({ flags: {}, env: {}, configFile: "/etc/hb/main.conf", fs }).problems;
  // Folders of two folders, 15 deep, and no link anywhere: 2^16 paths.
  const wide: ConfigFs = {
    ...memoryFs(main),
    isDirectory: (path) => path.split("/").length < 19,
    exists: () => true,
    readdir: () => ["a", "b"],
  };
  assert.deepEqual(problems(wide), [
    `/etc/hb/main.conf:1: Include: /etc/hb/conf.d: more than ${MAX_INCLUDE_PATHS} files and folders to include`,
  ]);
  // Folders in folders without end.
  const deep: ConfigFs = { ...wide, isDirectory: () => true, readdir: () => ["a"] };
  assert.deepEqual(problems(deep), [
    `/etc/hb/main.conf:1: Include: /etc/hb/conf.d: Directory /etc/hb/conf.d${
      "/a".repeat(129)
    } exceeds the maximum include directory nesting level of 128. You have probably a recursion somewhere.`,
  ]);
});
