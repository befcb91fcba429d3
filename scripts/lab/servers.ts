/** Real servers for lab tests: Debian's apache2 and nginx, configured in a lab's scratch folder. */
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { collect, type Lab } from "./lab.ts";

const APACHE_MODULES = "/usr/lib/apache2/modules";

/** The uid and gid of www-data: Apache refuses to run its children as root. */
function wwwData(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, "www-data"], { encoding: "utf8" }));
  return { uid: id("-u"), gid: id("-g") };
}

export interface Apache {
  /** mod_heartmonitor's storage file (proxies). */
  storage: string;
  /** The httpd.conf it runs with. */
  config: string;
  /** What apache2 printed, and its error log: for a failing test's message. */
  diagnostics(): string;
  /** Apache's parent process (`ip netns exec` becomes it). */
  process: ChildProcess;
}

/**
 * Starts Debian's apache2 in namespace `ns`, listening on `listen`, with `modules` loaded (after
 * `mpm`, by default mpm_event) and `directives` appended; runs its children as www-data (Apache
 * refuses root); with `cgroups`, Apache and its children run in those cgroups (Lab.spawn).
 */
export function startApache(
  lab: Lab,
  ns: string,
  options: {
    listen: string;
    modules: string[];
    directives: string;
    mpm?: string;
    cgroups?: string[];
  },
): Apache {
  const root = apacheRoot(lab, ns);
  const logs = join(root, "logs");
  mkdirSync(logs, { recursive: true });
  const { uid, gid } = wwwData();
  chownSync(logs, uid, gid);
  const config = join(root, "httpd.conf");
  writeFileSync(
    config,
    `ServerRoot ${root}
ServerName ${ns}
Listen ${options.listen}
PidFile ${root}/httpd.pid
DefaultRuntimeDir ${root}
Mutex file:${root} default
ErrorLog ${logs}/error.log
LogLevel warn
User www-data
Group www-data
${
      [options.mpm ?? "mpm_event", "authz_core", ...options.modules].map((name) =>
        `LoadModule ${name}_module ${APACHE_MODULES}/mod_${name}.so`
      ).join("\n")
    }
${options.directives}`,
  );
  execFileSync("chmod", ["755", lab.dir, root]);
  const child = lab.spawn(ns, ["apache2", "-f", config, "-DFOREGROUND"], {
    cgroups: options.cgroups,
  });
  const output = collect(child);
  const errorLog = join(logs, "error.log");
  const diagnostics = () => {
    let log = "";
    try {
      log = readFileSync(errorLog, "utf8");
    } catch { /* not written yet */ }
    return `apache2 printed: ${output().stderr}\n${errorLog}:\n${log}`;
  };
  return { storage: storagePath(lab, ns), config, diagnostics, process: child };
}

export const apacheRoot = (lab: Lab, ns: string) => join(lab.dir, `apache-${ns}`);
const storagePath = (lab: Lab, ns: string) => join(apacheRoot(lab, ns), "logs", "hb.dat");

/**
 * Apache as a heartbeat proxy: a balancer of `members` (http://IP:PORT) with lbmethod=heartbeat
 * on `address`:80. With `heartmonitor`, mod_heartmonitor collects heartbeats sent to `listen`,
 * in its storage file, or with `slotmem` in shared memory (which keeps POSTed heartbeats), and
 * with `handler` also takes them POSTed there (`SetHandler heartbeat`). Without, the balancer
 * alone reads the storage file at `storage` (another monitor's).
 * (mod_watchdog, which mod_heartmonitor needs, is built into Debian's apache2.)
 */
export function startApacheProxy(
  lab: Lab,
  ns: string,
  options: {
    address: string;
    members: string[];
    heartmonitor?: { listen: string; slotmem?: boolean; handler?: string };
    storage?: string;
  },
): Apache {
  const monitor = options.heartmonitor;
  const collecting = !monitor ? `HeartbeatStorage ${options.storage}` : [
    `HeartbeatListen ${monitor.listen}`,
    // Apache 2.4.71: 0 selects the storage file; more than 10 selects shared memory.
    monitor.slotmem
      ? "HeartbeatMaxServers 20"
      : `HeartbeatStorage ${storagePath(lab, ns)}\nHeartbeatMaxServers 0`,
    monitor.handler
      ? `<Location "${monitor.handler}">\n  SetHandler heartbeat\n</Location>\nProxyPass "${monitor.handler}" "!"`
      : "",
  ].join("\n");
  return startApache(lab, ns, {
    listen: `${options.address}:80`,
    modules: [
      "slotmem_shm",
      "proxy",
      "proxy_http",
      "proxy_balancer",
      "lbmethod_heartbeat",
      ...(monitor ? ["heartmonitor"] : []),
    ],
    directives: `${collecting}
<Proxy "balancer://origins">
${options.members.map((member) => `  BalancerMember "${member}"`).join("\n")}
  ProxySet lbmethod=heartbeat
</Proxy>
ProxyPass "/" "balancer://origins/"
`,
  });
}

/**
 * Apache as an origin that runs mod_heartbeat itself (sending to `heartbeatAddress`), with
 * mod_status at /server-status, on port 80 of every address: 10 threads a process, 2 to 4
 * processes. It answers /index.html with `body`.
 */
export function startApacheOrigin(
  lab: Lab,
  ns: string,
  options: { heartbeatAddress: string; body?: string },
): Apache {
  const documents = join(apacheRoot(lab, ns), "htdocs");
  mkdirSync(documents, { recursive: true });
  writeFileSync(join(documents, "index.html"), `${options.body ?? ns}\n`);
  return startApache(lab, ns, {
    listen: "80",
    modules: ["status", "heartbeat"],
    directives: `DocumentRoot ${documents}
HeartbeatAddress ${options.heartbeatAddress}
StartServers 2
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 10
MaxSpareThreads 30
MaxRequestWorkers 40
<Location "/server-status">
  SetHandler server-status
</Location>
`,
  });
}

/**
 * Starts nginx in namespace `ns` on `listen` (ADDR:PORT, or several), answering every request
 * with `body` (nginx variables such as $server_port are expanded) but /nginx_status, its
 * stub_status page, and the locations in `phpFpmStatus`: each passed to a FastCGI address as a
 * request for `/status`, a pool's status page if it has one.
 */
export function startNginx(
  lab: Lab,
  ns: string,
  options: { listen: string | string[]; body: string; phpFpmStatus?: Record<string, string> },
): void {
  const root = join(lab.dir, `nginx-${ns}`);
  mkdirSync(root, { recursive: true });
  const config = join(root, "nginx.conf");
  writeFileSync(
    config,
    `daemon off;
worker_processes 1;
pid ${root}/nginx.pid;
error_log ${root}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${root}/body;
  proxy_temp_path ${root}/proxy;
  fastcgi_temp_path ${root}/fastcgi;
  uwsgi_temp_path ${root}/uwsgi;
  scgi_temp_path ${root}/scgi;
  server {
    ${[options.listen].flat().map((address) => `listen ${address};`).join(" ")}
    location = /nginx_status { stub_status; }
    location / { return 200 "${options.body}\\n"; }
${
      Object.entries(options.phpFpmStatus ?? {}).map(([location, address]) =>
        `    location = ${location} {
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_URI $request_uri;
      fastcgi_param SCRIPT_NAME /status;
      fastcgi_param SCRIPT_FILENAME /status;
      fastcgi_pass ${address};
    }
`
      ).join("")
    }
  }
}
`,
  );
  lab.spawn(ns, ["nginx", "-p", root, "-e", `${root}/error.log`, "-c", config]);
}

export interface StorageEntry {
  ip: string;
  ready: number;
  busy: number;
  lastseen: number;
  port: number;
}

/** mod_heartmonitor's storage file, one `IP &ready=N&busy=M&lastseen=S&port=P` per line. */
export function readStorage(path: string): StorageEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text.split("\n").filter(Boolean).map((line) => {
    const match = /^(\S+) &ready=(\d+)&busy=(\d+)&lastseen=(\d+)&port=(\d+)$/.exec(line);
    if (!match) throw new Error(`unexpected storage line: ${JSON.stringify(line)}`);
    const [, ip, ready, busy, lastseen, port] = match;
    return {
      ip,
      ready: Number(ready),
      busy: Number(busy),
      lastseen: Number(lastseen),
      port: Number(port),
    };
  });
}

/** A PHP-FPM pool: its name, where it listens, and the php-fpm.conf lines that configure it. */
export interface PhpFpmPool {
  name: string;
  listen: string;
  /** `pm = ...`, `pm.max_children = ...`, `pm.status_path = ...` and the like. */
  settings: string[];
}

export interface PhpFpm {
  /** A script that sleeps for `?s=SECONDS` (default 30): a request that holds a process. */
  sleepScript: string;
  /** What php-fpm logged: for a failing test's message. */
  diagnostics(): string;
}

/**
 * Starts Debian's php-fpm8.2 in namespace `ns` as root, with `pools` running as www-data (as
 * Debian's own pool does), configured in the lab's scratch folder.
 */
export function startPhpFpm(lab: Lab, ns: string, pools: PhpFpmPool[]): PhpFpm {
  const root = join(lab.dir, `php-fpm-${ns}`);
  mkdirSync(root, { recursive: true });
  execFileSync("chmod", ["755", lab.dir, root]);
  const sleepScript = join(root, "sleep.php");
  writeFileSync(sleepScript, "<?php sleep((int) ($_GET['s'] ?? 30)); echo \"slept\\n\";\n");
  const config = join(root, "php-fpm.conf");
  writeFileSync(
    config,
    [
      "[global]",
      `pid = ${root}/php-fpm.pid`,
      `error_log = ${root}/error.log`,
      ...pools.flatMap((pool) => [
        `[${pool.name}]`,
        "user = www-data",
        "group = www-data",
        `listen = ${pool.listen}`,
        "listen.owner = www-data",
        "listen.group = www-data",
        "listen.mode = 0660",
        ...pool.settings,
      ]),
      "",
    ].join("\n"),
  );
  const output = collect(
    lab.spawn(ns, [
      "php-fpm8.2",
      "--nodaemonize",
      "--fpm-config",
      config,
    ]),
  );
  return {
    sleepScript,
    diagnostics: () => {
      let log = "";
      try {
        log = readFileSync(join(root, "error.log"), "utf8");
      } catch { /* not written yet */ }
      return `php-fpm said: ${JSON.stringify(output())}\nerror.log:\n${log}`;
    },
  };
}
