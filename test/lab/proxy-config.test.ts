/**
 * contrib/apache-proxy.conf as an operator uses it: dropped into a copy of Debian's own
 * /etc/apache2 (conf-available, enabled by a link as a2enconf makes), checked by `apache2 -t`,
 * then run for real, its BalancerMember lines pointed at the lab's origins:
 *
 *   proxy    10.99.14.1   Debian's apache2 tree + contrib/apache-proxy.conf
 *   origin1  10.99.14.11  nginx :80, agent --ready 30 --busy 1
 *   origin2  10.99.14.12  nginx :80, agent --ready 10 --busy 1
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { agentCommand, collect, Lab } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { startNginx } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "nginx", "curl"]);
const runtime = currentRuntime();
const ORIGINS = [
  { ns: "origin1", ip: "10.99.14.11", ready: 30 },
  { ns: "origin2", ip: "10.99.14.12", ready: 10 },
];

let lab: Lab | undefined;
after(() => lab?.close());

/** Debian's /etc/apache2 copied into the lab with the drop-in enabled; the environment apache2ctl would give. */
function debianTree(lab: Lab): { root: string; env: Record<string, string> } {
  const root = join(lab.dir, "etc-apache2");
  cpSync("/etc/apache2", root, { recursive: true });
  const conf = readFileSync(join(REPO, "contrib", "apache-proxy.conf"), "utf8")
    .replace("http://10.0.0.11:80", `http://${ORIGINS[0].ip}:80`)
    .replace("http://10.0.0.12:80", `http://${ORIGINS[1].ip}:80`);
  writeFileSync(join(root, "conf-available", "heartbeat-proxy.conf"), conf);
  symlinkSync(
    "../conf-available/heartbeat-proxy.conf",
    join(root, "conf-enabled", "heartbeat-proxy.conf"),
  );
  const run = join(lab.dir, "apache2-run");
  mkdirSync(run);
  // As /etc/apache2/envvars sets them, with the lab's folders for the machine's.
  const env = {
    APACHE_CONFDIR: root,
    APACHE_RUN_USER: "www-data",
    APACHE_RUN_GROUP: "www-data",
    APACHE_PID_FILE: join(run, "apache2.pid"),
    APACHE_RUN_DIR: run,
    APACHE_LOCK_DIR: run,
    APACHE_LOG_DIR: run,
    LANG: "C",
  };
  return { root, env };
}

test(
  "proxy config: contrib/apache-proxy.conf passes apache2 -t in Debian's tree, and balances by heartbeat for real",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.14.1/24");
    const { root, env } = debianTree(lab);
    const checked = await lab.run("proxy", ["apache2", "-d", root, "-t"], { env });
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stderr, /Syntax OK/);

    const apache = collect(lab.spawn("proxy", ["apache2", "-d", root, "-DFOREGROUND"], { env }));
    for (const origin of ORIGINS) {
      lab.addNamespace(origin.ns);
      lab.plug(origin.ns, `${origin.ip}/24`);
      startNginx(lab, origin.ns, { listen: `${origin.ip}:80`, body: origin.ns });
      lab.spawn(
        origin.ns,
        agentCommand(runtime, [
          "-a",
          "239.0.0.1:27999",
          "--ready",
          String(origin.ready),
          "--busy",
          "1",
        ]),
      );
    }
    const get = async (count: number) => {
      const result = await lab!.run("proxy", [
        "curl",
        "-sS",
        "--max-time",
        "10",
        ...Array(count).fill("http://10.99.14.1/"),
      ]);
      return result.stdout.split("\n").filter(Boolean);
    };
    // Until both origins' heartbeats are in, the balancer sends nowhere or to one only.
    let bodies: string[] = [];
    const deadline = Date.now() + 30_000;
    while (!(bodies.includes("origin1") && bodies.includes("origin2"))) {
      assert.ok(
        Date.now() < deadline,
        `both origins answering through the proxy: ${
          bodies.slice(-5).join(", ")
        }\n${apache().stderr}`,
      );
      bodies = await get(20);
    }
    bodies = await get(400);
    const served = (name: string) => bodies.filter((body) => body === name).length;
    // ready 30 against 10: about 3 to 1 (31 to 11 of lbmethod_heartbeat's inclusive draws).
    const ratio = served("origin1") / served("origin2");
    assert.equal(
      served("origin1") + served("origin2"),
      400,
      `every request answered by an origin: ${bodies.find((body) => !body.startsWith("origin"))}`,
    );
    assert.ok(ratio > 2 && ratio < 5, `origin1 ${served("origin1")}, origin2 ${served("origin2")}`);

    // The proxy's own /server-status is not proxied: an agent on the proxy host reads Apache's
    // scoreboard, not an origin's answer or the balancer's 503.
    const reading = await lab.run(
      "proxy",
      agentCommand(runtime, ["-a", "239.0.0.1:27999", "--source", "apache", "--dry-run", "--once"]),
    );
    assert.equal(reading.code, 0, reading.stderr);
    assert.match(reading.stdout, /^239\.0\.0\.1:27999 v=1&ready=[1-9]\d*&busy=\d+\n$/);
  },
);
