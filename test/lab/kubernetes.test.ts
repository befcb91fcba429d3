/**
 * contrib/kubernetes/sidecar.yaml played for real with `podman kube play`, in a lab network
 * namespace, with the project's image (HEARTBEAT_IMAGE) and an nginx image staged FROM scratch from
 * Debian's nginx as heartbeat's image is: the agent reads nginx over the pod's localhost, its
 * POSTed heartbeats steer a real Apache's balancer (mod_heartmonitor's `SetHandler heartbeat`),
 * a real HAProxy running contrib/kubernetes/haproxy.cfg finds the pod by the headless Service's
 * name and weighs it by its agent-check, the drain file made by the web server's preStop command
 * takes the pod out of both, and the stop sends the farewell.
 *
 *   proxy   10.99.42.1  apache2: balancer of the pod (first) and static (last), by heartbeat;
 *                       haproxy (haproxy.cfg: its resolvers name the lab's DNS server, it binds
 *                       this address), and a DNS server answering web.default.svc.cluster.local
 *   pod     10.99.42.2  the pod, put here by podman run in this namespace (--network host)
 *   static  10.99.42.3  nginx answering "static", and an agent POSTing ready=20 for it
 *
 * What the test changes in the manifest, and why (everything else is played as shipped):
 * - the web server's image: the staged local nginx, for no registry is reached from here;
 * - the proxy's address in --address: the lab's Apache;
 * - replicas 2 to 1: podman puts every pod in the one namespace it runs in, ports and all;
 * - the containers' `ports` lists dropped, and the probes given their port numbers instead of
 *   the names: podman 4.3 publishes every containerPort on the host, which it refuses outside
 *   its bridge and slirp4netns networks.
 * podman 4.3 runs no preStop hook: the test runs the web server's hook command itself, with
 * `podman exec`, as the kubelet would.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { stringify } from "yaml";
import { agentCommand, collect, Lab, runtimeCommand, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, requiredOrSkipped, skipUnlessLab } from "../support/lab.ts";
import {
  argument,
  container,
  type KubernetesObject,
  MANIFESTS,
  only,
  readManifest,
} from "../support/kubernetes.ts";
import { podman, spawnPodman } from "../support/podman.ts";
import { startApacheProxy, startNginx } from "../../scripts/lab/servers.ts";
import { sharedLibraries } from "../../scripts/build.ts";

const image = process.env.HEARTBEAT_IMAGE;
const skip = !process.env.HEARTBEAT_BINARY
  ? "runs in the compiled-binary pass (scripts/test.ts)"
  : skipUnlessLab([
    "apache2",
    "nginx",
    "podman",
    "runc",
    "catatonit",
    "nsenter",
    "socat",
    "curl",
  ]) ||
    (image ? false : requiredOrSkipped("no image was built: HEARTBEAT_IMAGE is not set"));

const PROXY = "10.99.42.1";
const POD = "10.99.42.2";
const STATIC = "10.99.42.3";
const NGINX_IMAGE = "localhost/heartbeat-test-nginx:1";
/** The headless Service's name, which contrib/kubernetes/haproxy.cfg resolves. */
const SERVICE_NAME = "web.default.svc.cluster.local";

let lab: Lab | undefined;
let hook: ChildProcess | undefined;
after(async () => {
  hook?.kill("SIGKILL");
  if (lab) {
    try {
      podman(lab, ["pod", "rm", "--all", "--force", "--time", "0"]);
    } catch { /* nothing was played */ }
  }
  await lab?.close();
});

/**
 * An nginx image made as heartbeat's is: FROM scratch, Debian's nginx and exactly the libraries
 * ldd names, a passwd entry for nginx (101, as in the official image), and the sh, touch, sleep and
 * rm the preStop hook and the test run. /tmp is mode 1777: podman makes the emptyDir mounted there
 * from the image's folder (Kubernetes makes an emptyDir 0777), and nginx writes there as it starts.
 */
function buildNginxImage(lab: Lab): void {
  const root = join(lab.dir, "nginx-image");
  const programs = { "/usr/sbin/nginx": "nginx", "/bin/sh": "sh", "/usr/bin/touch": "touch" };
  for (
    const [program, as] of Object.entries({
      ...programs,
      "/usr/bin/sleep": "sleep",
      "/usr/bin/rm": "rm",
    })
  ) {
    const target = join(root, as === "nginx" ? "usr/sbin" : "usr/bin", as);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(program, target);
    for (const library of sharedLibraries(program)) {
      mkdirSync(join(root, dirname(library)), { recursive: true });
      copyFileSync(library, join(root, library));
    }
  }
  for (const folder of ["etc/nginx/pod", "usr/share/nginx/html", "proc", "tmp"]) {
    mkdirSync(join(root, folder), { recursive: true });
  }
  chmodSync(join(root, "tmp"), 0o1777);
  writeFileSync(join(root, "usr/share/nginx/html/index.html"), "pod\n");
  writeFileSync(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/:/sbin/nologin\nnginx:x:101:101:nginx:/:/sbin/nologin\n",
  );
  writeFileSync(join(root, "etc/group"), "root:x:0:\nnginx:x:101:\n");
  const containerfile = join(lab.dir, "Containerfile.nginx");
  writeFileSync(containerfile, "FROM scratch\nCOPY . /\nUSER 101:101\n");
  podman(lab, ["build", "--network", "none", "-f", containerfile, "-t", NGINX_IMAGE, root]);
}

/** sidecar.yaml with the changes the header lists, as YAML for `podman kube play`. */
function playable(objects: KubernetesObject[]): string {
  const deployment = only(objects, "Deployment");
  deployment.spec.replicas = 1;
  for (const each of deployment.spec.template.spec.containers) {
    const numbers = Object.fromEntries(
      each.ports.map((port: KubernetesObject) => [port.name, port.containerPort]),
    );
    delete each.ports;
    for (const probe of [each.readinessProbe, each.livenessProbe].filter(Boolean)) {
      probe.httpGet.port = numbers[probe.httpGet.port];
    }
  }
  container(deployment, "web").image = NGINX_IMAGE;
  const agent = container(deployment, "heartbeat");
  agent.args = agent.args.map((arg: string) =>
    arg.startsWith("--address=") ? `--address=http://${PROXY}/heartbeat` : arg
  );
  return objects.map((object) => stringify(object)).join("---\n");
}

test(
  "kubernetes: sidecar.yaml under podman kube play: nginx read over localhost, Apache steered by its POSTs, HAProxy by DNS and agent-check, the preStop drain, the farewell when the pod stops",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    for (const [name, address] of [["proxy", PROXY], ["pod", POD], ["static", STATIC]]) {
      lab.addNamespace(name);
      lab.plug(name, `${address}/24`);
    }
    const apache = startApacheProxy(lab, "proxy", {
      address: PROXY,
      members: [`http://${POD}:8080`, `http://${STATIC}:80`],
      heartmonitor: { listen: "239.0.0.1:27999", slotmem: true, handler: "/heartbeat" },
    });
    startNginx(lab, "static", { listen: `${STATIC}:80`, body: "static" });
    const staticAgent = collect(lab.spawn(
      "static",
      agentCommand(currentRuntime(), [
        "--address",
        `http://${PROXY}/heartbeat`,
        "--ready",
        "20",
        "--busy",
        "1",
        "--interval",
        "0.5",
      ]),
    ));

    // HAProxy with contrib/kubernetes/haproxy.cfg, finding the pod by the headless Service's name
    // through a DNS server in the lab (for the cluster's).
    const dns = collect(lab.spawn(
      "proxy",
      runtimeCommand(currentRuntime(), "test/support/dns-server.ts", [
        PROXY,
        SERVICE_NAME,
        POD,
      ]),
    ));
    const haproxyConfig = join(lab.dir, "haproxy.cfg");
    writeFileSync(
      haproxyConfig,
      readFileSync(join(MANIFESTS, "haproxy.cfg"), "utf8")
        .replace(/^ *parse-resolv-conf$/m, `    nameserver lab ${PROXY}:53`)
        .replace("bind :8080", `bind ${PROXY}:8080`),
    );
    const haproxy = collect(lab.spawn("proxy", ["haproxy", "-db", "-f", haproxyConfig]));
    await waitFor(() => dns().stdout.startsWith("ready"), 10_000, "the DNS server");

    podman(lab, ["load", "--input", image!]);
    buildNginxImage(lab);
    const objects = readManifest("sidecar.yaml");
    const web = container(only(objects, "Deployment"), "web");
    const agent = container(only(objects, "Deployment"), "heartbeat");
    const drainFile = argument(agent, "drain-file")!;
    const manifest = join(lab.dir, "sidecar.yaml");
    writeFileSync(manifest, playable(objects));
    podman(lab, ["kube", "play", "--network", "host", manifest], { netns: "pod" });
    // Kubernetes makes an emptyDir mode 0777, podman root's 0755 (unless the image that mounts it
    // first has the folder): the test gives the drain file's folder the mode Kubernetes gives it.
    const drainVolume =
      web.volumeMounts.find((mount: KubernetesObject) =>
        drainFile.startsWith(`${mount.mountPath}/`)
      ).name;
    chmodSync(
      podman(lab, ["volume", "inspect", "--format", "{{.Mountpoint}}", drainVolume]).trim(),
      0o1777,
    );
    const logs = () => podman(lab!, ["logs", "web-pod-0-heartbeat"]);

    const curl = async (ns: string, url: string) =>
      (await lab!.run(ns, ["curl", "-s", "--max-time", "5", url])).stdout;
    const statusCode = async (url: string) =>
      (await lab!.run("proxy", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]))
        .stdout;
    const agentCheck = async () =>
      (await lab!.run("proxy", ["socat", "-T", "5", "-", `TCP:${POD}:9300`])).stdout;
    /** What 40 requests through Apache's balancer got: how many from each origin. */
    const shares = async () => {
      const bodies = (await lab!.run("proxy", [
        "curl",
        "-s",
        "--max-time",
        "5",
        ...Array(40).fill(`http://${PROXY}/`),
      ])).stdout.split("\n").filter(Boolean);
      return {
        pod: bodies.filter((body) => body === "pod").length,
        static: bodies.filter((body) => body === "static").length,
        other: bodies.filter((body) => body !== "pod" && body !== "static").length,
      };
    };
    const metric = async (name: string) =>
      Number(
        new RegExp(`^${name} (\\S+)$`, "m").exec(await curl("proxy", `http://${POD}:9301/metrics`))
          ?.[1],
      );

    // The agent's /healthz, as the kubelet's probes ask it: 200 once nginx is read and Apache
    // answers the POSTs with OK.
    await until(
      async () => (await statusCode(`http://${POD}:9301/healthz`)) === "200",
      30_000,
      () => `/healthz 200\n${logs()}\n${apache.diagnostics()}`,
    );
    // nginx read over the pod's localhost: stub_status is on 127.0.0.1 only, and the agent's ready
    // is the manifest's capacity less nginx's connections.
    assert.match(
      logs(),
      new RegExp(
        `sending nginx http://127\\.0\\.0\\.1:8081/nginx_status capacity 512 to http://${
          PROXY.replaceAll(".", "\\.")
        }/heartbeat`,
      ),
    );
    assert.equal(await curl("proxy", `http://${POD}:8081/nginx_status`), "");
    await until(async () => (await metric("heartbeat_ready")) >= 500, 20_000, "ready ramped up");

    // Apache routes to the pod by its heartbeats (a member never heard from gets nothing).
    let share = await shares();
    for (let i = 0; i < 20 && share.pod === 0; i++) share = await shares();
    assert.ok(share.pod > 0 && share.other === 0, JSON.stringify(share));
    assert.match(await agentCheck(), /^ready up \d+%\n?$/);
    // HAProxy found the pod by DNS, and its agent-check weighs it: requests reach the pod.
    await until(
      async () => (await curl("proxy", `http://${PROXY}:8080/`)) === "pod\n",
      15_000,
      () => `HAProxy serving from the pod\n${haproxy().stderr}`,
    );

    // The drain, as the web server's preStop hook makes it, run in its container as the kubelet
    // would (podman 4.3 runs no hook): HAProxy's agent-check says `drain` at once, and Apache sends
    // the pod nothing new as soon as it has the POSTed ready=0 (the pod is not its last member).
    const hookCommand: string[] = web.lifecycle.preStop.exec.command;
    assert.ok(hookCommand.at(-1)!.includes(`touch ${drainFile}`), hookCommand.join(" "));
    hook = spawnPodman(lab, ["exec", "web-pod-0-web", ...hookCommand]);
    const hookOutput = collect(hook);
    const drainedAt = Date.now();
    await until(
      async () => (await agentCheck()).startsWith("drain"),
      5_000,
      () => `agent-check: drain\n${JSON.stringify(hookOutput())}\n${logs()}`,
    );
    await until(
      async () => (await statusCode(`http://${PROXY}:8080/`)) === "503",
      2_000,
      () => `HAProxy sending nothing to the drained pod\n${haproxy().stderr}`,
    );
    await until(
      async () => (await shares()).pod === 0,
      3_000,
      () => `no request for the drained pod\n${apache.diagnostics()}`,
    );
    const drainMs = Date.now() - drainedAt;
    share = await shares();
    assert.deepEqual(share, { pod: 0, static: 40, other: 0 });
    assert.equal(await statusCode(`http://${POD}:9301/healthz`), "200", "ready while draining");

    // The drain ends (the test removes the file; a stopping pod never gets here): the pod comes
    // back, its ready climbing over the 10 s ramp-up.
    hook.kill("SIGKILL");
    podman(lab, ["exec", "web-pod-0-web", "rm", drainFile]);
    await until(async () => (await agentCheck()).startsWith("ready up"), 2_000, "ready up again");
    await until(async () => (await metric("heartbeat_ready")) >= 500, 20_000, "ramped up again");
    await until(async () => (await shares()).pod > 0, 5_000, "requests for the pod again");
    assert.equal(await curl("proxy", `http://${PROXY}:8080/`), "pod\n", "HAProxy too");

    // The stop, as the kubelet makes it: SIGTERM, then SIGKILL after terminationGracePeriodSeconds;
    // the agent's last POST says ready=0. Apache then picks only the static origin, so it never
    // tries the pod's address, which no longer answers: without the farewell it would go on
    // picking the pod (ready 127 of 147) and log each failed connection. podman 4.3's `kube down`
    // sends SIGKILL alone (strace of the agent shows no SIGTERM, so no farewell): the test stops
    // the pod with `podman pod stop --time GRACE` first, then `kube down` removes it.
    const errorLog = join(lab.dir, "apache-proxy", "logs", "error.log");
    const before = readFileSync(errorLog, "utf8").length;
    const grace = only(objects, "Deployment").spec.template.spec.terminationGracePeriodSeconds;
    const stopAt = Date.now();
    podman(lab, ["pod", "stop", "--time", String(grace), "web-pod-0"]);
    const stopMs = Date.now() - stopAt;
    assert.match(logs(), /stopping on SIGTERM: telling the proxies ready=0\n.*stopped\n$/s);
    podman(lab, ["kube", "down", manifest]);
    share = await shares();
    assert.deepEqual(share, { pod: 0, static: 40, other: 0 });
    const logged = readFileSync(errorLog, "utf8").slice(before);
    assert.doesNotMatch(
      logged,
      new RegExp(POD.replaceAll(".", "\\.")),
      logged,
    );
    assert.doesNotMatch(staticAgent().stderr, /warn|error/);
    console.log(
      `kubernetes: drained out of Apache within ${drainMs} ms; the pod stopped in ${stopMs} ms`,
    );
  },
);

/**
 * Resolves once the asynchronous `check` holds, asking every 100 ms, or rejects after `timeoutMs`
 * with `what` (a function: what the servers logged by then).
 */
async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string),
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const said = typeof what === "function" ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${said}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
