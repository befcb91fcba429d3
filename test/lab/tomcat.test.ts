/**
 * Tomcat's HeartbeatListener, the only other sender of this protocol, feeding `heartbeat
 * monitor` both ways it can: multicast (Group, Multiport) and TcpSender's POSTs (ProxyList, to
 * its default ProxyURL /HeartbeatListener). One real Tomcat 10.1 (Debian's tomcat10) runs both
 * listeners, a beat a second (periodicEventDelay="1"); each monitor's storage file must show
 * what Tomcat reports: ready = maxThreads - busy, and its connector's port.
 *
 *   udpmon   10.99.15.1  heartbeat monitor --listen 239.0.0.1:27990
 *   tomcat   10.99.15.2  Tomcat 10.1, HTTP connector on :8080, maxThreads 25
 *   httpmon  10.99.15.3  heartbeat monitor --http 10.99.15.3:8095
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { agentCommand, collect, Lab, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, requiredOrSkipped, skipUnlessLab } from "../support/lab.ts";

const CATALINA_HOME = "/usr/share/tomcat10";
const skip = skipUnlessLab(["java"]) ||
  requiredOrSkipped(
    existsSync(join(CATALINA_HOME, "bin", "catalina.sh"))
      ? undefined
      : "Tomcat 10 is not installed (apt-get install tomcat10 default-jre-headless)",
  );
const runtime = currentRuntime();

let lab: Lab | undefined;
after(() => lab?.close());

/** A CATALINA_BASE for Tomcat in the lab: no web applications, the two heartbeat listeners. */
function tomcatBase(lab: Lab): string {
  const base = join(lab.dir, "tomcat");
  for (const dir of ["conf", "logs", "temp", "work", "webapps"]) {
    mkdirSync(join(base, dir), { recursive: true });
  }
  copyFileSync("/etc/tomcat10/web.xml", join(base, "conf", "web.xml"));
  writeFileSync(
    join(base, "conf", "server.xml"),
    `<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN" periodicEventDelay="1">
  <Listener className="org.apache.catalina.ha.backend.HeartbeatListener"
            Port="8080" Group="239.0.0.1" Multiport="27990" Ttl="1"/>
  <Listener className="org.apache.catalina.ha.backend.HeartbeatListener"
            Port="8080" ProxyList="10.99.15.3:8095"/>
  <Service name="Catalina">
    <Connector port="8080" address="10.99.15.2" protocol="HTTP/1.1" maxThreads="25"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
`,
  );
  return base;
}

test(
  "tomcat: Tomcat 10.1's HeartbeatListener reaches heartbeat monitor by multicast and by TcpSender's POST",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    for (
      const [ns, ip] of [["udpmon", "10.99.15.1"], ["tomcat", "10.99.15.2"], [
        "httpmon",
        "10.99.15.3",
      ]]
    ) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
    }
    const udpStorage = join(lab.dir, "udp-hb.dat");
    const httpStorage = join(lab.dir, "http-hb.dat");
    const monitors = [
      collect(
        lab.spawn(
          "udpmon",
          agentCommand(runtime, [
            "monitor",
            "--listen",
            "239.0.0.1:27990",
            "--storage",
            udpStorage,
          ]),
        ),
      ),
      collect(
        lab.spawn(
          "httpmon",
          agentCommand(runtime, ["monitor", "--http", "10.99.15.3:8095", "--storage", httpStorage]),
        ),
      ),
    ];
    await waitFor(
      () => monitors.every((log) => log().stderr.includes("listening on")),
      10_000,
      "the monitors",
    );
    const base = tomcatBase(lab);
    const tomcat = collect(lab.spawn("tomcat", [join(CATALINA_HOME, "bin", "catalina.sh"), "run"], {
      env: {
        CATALINA_HOME,
        CATALINA_BASE: base,
        CATALINA_TMPDIR: join(base, "temp"),
        JAVA_OPTS: "-Djava.net.preferIPv4Stack=true -Xms32m -Xmx128m -XX:TieredStopAtLevel=1",
      },
    }));
    const line = (file: string) => {
      try {
        return readFileSync(file, "utf8").split("\n").find((text) =>
          text.startsWith("10.99.15.2 ")
        ) ?? "";
      } catch {
        return "";
      }
    };
    const tomcatsLine = /^10\.99\.15\.2 &ready=25&busy=0&lastseen=\d+&port=8080$/;
    for (const [file, way] of [[udpStorage, "multicast"], [httpStorage, "TcpSender POST"]]) {
      await waitFor(
        () => tomcatsLine.test(line(file)),
        60_000,
        `Tomcat's heartbeat by ${way} in ${file}: ${line(file)}\n${tomcat().stdout.slice(-2000)}\n${
          tomcat().stderr.slice(-2000)
        }`,
      );
    }
    assert.doesNotMatch(monitors[1]().stderr, /refused|rejected/);
  },
);
