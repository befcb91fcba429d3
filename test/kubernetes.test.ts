/**
 * contrib/kubernetes/: every object validated, offline, against the OpenAPI schemas of a recent
 * Kubernetes release (npm's kubernetes-models: validate() checks each object against its kind's
 * schema, as the API server would), and what the files promise: probes on the agent's /healthz,
 * the drain file on a volume both containers share, the hardening, a grace period that outlasts
 * the drain, resource limits. The sidecar runs for real in test/lab/kubernetes.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { commandAvailable } from "../scripts/lab/lab.ts";
import {
  argument,
  container,
  type KubernetesObject,
  MANIFESTS,
  only,
  readManifest,
  unknownFields,
} from "./support/kubernetes.ts";
import { VERSION } from "../scripts/repo.ts";

const manifests = readdirSync(MANIFESTS).filter((file) => file.endsWith(".yaml"));

/** The kubernetes-models class for an object's apiVersion and kind. */
async function model(object: KubernetesObject) {
  // `v1` is the core group, at kubernetes-models/v1; `apps/v1` at kubernetes-models/apps/v1.
  const models = await import(`kubernetes-models/${object.apiVersion}`);
  const Model = models[object.kind];
  if (!Model) throw new Error(`kubernetes-models has no ${object.apiVersion} ${object.kind}`);
  return new Model(object);
}

test("kubernetes: the manifests are sidecar.yaml and daemonset.yaml, each object valid against Kubernetes' schemas", async () => {
  assert.deepEqual(manifests.sort(), ["daemonset.yaml", "sidecar.yaml"]);
  for (const file of manifests) {
    const objects = readManifest(file);
    assert.ok(objects.length > 0, file);
    for (const object of objects) {
      const where = `${file}: ${object.kind} ${object.metadata?.name}`;
      try {
        (await model(object)).validate();
      } catch (error) {
        assert.fail(`${where}: ${(error as Error).message}`);
      }
      assert.deepEqual(unknownFields(object), [], `${where}: fields Kubernetes does not have`);
    }
  }
});

test("kubernetes: validation rejects what the API server would (a quantity that is no quantity, a missing field, a misspelt field)", async () => {
  const deployment = only(readManifest("sidecar.yaml"), "Deployment");
  const badQuantity = structuredClone(deployment);
  container(badQuantity, "heartbeat").resources.limits.memory = "64 MB";
  await assert.rejects(async () => (await model(badQuantity)).validate(), /memory/);
  const noName = structuredClone(deployment);
  delete noName.spec.template.spec.containers[0].name;
  await assert.rejects(async () => (await model(noName)).validate(), /name/);
  const misspelt = structuredClone(deployment);
  const agent = container(misspelt, "heartbeat");
  agent.readinesProbe = agent.readinessProbe;
  agent.lifecycle.preStop.sleep.second = 16;
  misspelt.spec.template.metadata.label = {};
  assert.deepEqual(
    unknownFields(misspelt),
    [
      "Deployment.spec.template.metadata.label",
      "Deployment.spec.template.spec.containers[1].lifecycle.preStop.sleep.second",
      "Deployment.spec.template.spec.containers[1].readinesProbe",
    ].sort(),
  );
  assert.deepEqual(unknownFields(deployment), []);
});

/** The drain wait of the web server's preStop hook, in seconds: `sleep N` in its command. */
function drainWait(web: KubernetesObject): number {
  const command = web.lifecycle.preStop.exec.command.join(" ");
  const sleep = /\bsleep (\d+)\b/.exec(command);
  assert.ok(sleep, command);
  return Number(sleep[1]);
}

test("kubernetes: sidecar.yaml's web server hook creates the agent's drain file on a shared emptyDir, and waits the README's 16 s; the grace period outlasts it", () => {
  const deployment = only(readManifest("sidecar.yaml"), "Deployment");
  const pod = deployment.spec.template.spec;
  const web = container(deployment, "web");
  const agent = container(deployment, "heartbeat");
  const drainFile = argument(agent, "drain-file");
  assert.ok(drainFile, "--drain-file");
  const command = web.lifecycle.preStop.exec.command;
  assert.deepEqual(command.slice(0, 2), ["sh", "-c"]);
  assert.match(command[2], new RegExp(`^touch ${drainFile} && sleep \\d+$`));
  // README, "Draining and cold starts": mod_heartmonitor's storage file drops a drained server
  // within 16 s (the other ways within 12 s).
  assert.equal(drainWait(web), 16);
  assert.equal(agent.lifecycle.preStop.sleep.seconds, drainWait(web));
  assert.ok(pod.terminationGracePeriodSeconds >= drainWait(web) + 10, "the drain, then 10 s");
  const folder = drainFile!.slice(0, drainFile!.lastIndexOf("/"));
  const mounted = (of: KubernetesObject) =>
    of.volumeMounts.find((mount: KubernetesObject) => mount.mountPath === folder)?.name;
  assert.ok(mounted(web), `the web server mounts ${folder}`);
  assert.equal(mounted(agent), mounted(web), "the same volume");
  const volume = pod.volumes.find((candidate: KubernetesObject) => candidate.name === mounted(web));
  assert.ok(volume.emptyDir, "an emptyDir");
});

test("kubernetes: sidecar.yaml's agent reads nginx over localhost, answers agent-check, POSTs to /heartbeat, and is probed on /healthz at its --http port", () => {
  const objects = readManifest("sidecar.yaml");
  const deployment = only(objects, "Deployment");
  const agent = container(deployment, "heartbeat");
  assert.match(argument(agent, "source")!, /^nginx:http:\/\/127\.0\.0\.1:\d+\/nginx_status$/);
  assert.ok(Number(argument(agent, "capacity")) > 0, "--capacity");
  assert.match(argument(agent, "address")!, /^http:\/\/\S+\/heartbeat$/);
  const port = (name: string) => Number(argument(agent, name)!.split(":").at(-1));
  const named = (containerPort: number) =>
    agent.ports.find((candidate: KubernetesObject) => candidate.containerPort === containerPort)
      ?.name;
  assert.equal(named(port("agent-check")), "agent-check");
  for (const probe of [agent.readinessProbe, agent.livenessProbe]) {
    assert.equal(probe.httpGet.path, "/healthz");
    assert.equal(named(port("http")), probe.httpGet.port);
  }
  // stub_status where --source reads it, and nginx serving on the Service's port.
  const config = only(objects, "ConfigMap").data["nginx.conf"];
  const status = new URL(argument(agent, "source")!.slice("nginx:".length));
  assert.match(config, new RegExp(`listen ${status.hostname}:${status.port};`));
  const service = only(objects, "Service");
  assert.equal(service.spec.clusterIP, "None", "headless: HAProxy's server-template reads it");
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
});

test("kubernetes: every container runs as non-root, read-only, with no capabilities, under RuntimeDefault seccomp, with requests and limits", () => {
  for (const file of manifests) {
    const workload = readManifest(file).find((object) => object.spec?.template);
    const pod = workload!.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true, file);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault", file);
    for (const each of pod.containers) {
      const where = `${file}: ${each.name}`;
      assert.equal(each.securityContext.readOnlyRootFilesystem, true, where);
      assert.equal(each.securityContext.allowPrivilegeEscalation, false, where);
      assert.deepEqual(each.securityContext.capabilities.drop, ["ALL"], where);
      assert.ok(each.securityContext.runAsUser > 0, where);
      for (const kind of ["requests", "limits"]) {
        assert.ok(each.resources[kind].cpu && each.resources[kind].memory, `${where}: ${kind}`);
      }
    }
  }
});

test("kubernetes: the agent's memory request covers its measured resident size (docs/performance.md: up to 37 MB)", () => {
  const mebibytes = (quantity: string) => {
    const match = /^(\d+)Mi$/.exec(quantity);
    assert.ok(match, quantity);
    return Number(match[1]) * 2 ** 20 / 1e6;
  };
  for (const file of manifests) {
    const agent = container(
      readManifest(file).find((object) => object.spec?.template)!,
      "heartbeat",
    );
    assert.ok(mebibytes(agent.resources.requests.memory) >= 37, file);
    assert.ok(
      mebibytes(agent.resources.limits.memory) >= mebibytes(agent.resources.requests.memory),
    );
    assert.equal(
      agent.image,
      `localhost/heartbeat:${VERSION}-linux-x64`,
      `${file}: this release's image`,
    );
  }
});

test("kubernetes: daemonset.yaml runs one agent a node on the host's network, sending multicast", () => {
  const daemonset = only(readManifest("daemonset.yaml"), "DaemonSet");
  assert.equal(daemonset.spec.template.spec.hostNetwork, true);
  assert.match(argument(container(daemonset, "heartbeat"), "address")!, /^239\./);
});

test(
  "kubernetes: haproxy.cfg passes haproxy -c, with server-template over the headless Service, agent-check on the agent's port and a check of its own",
  {
    skip: commandAvailable("haproxy") ? false : "haproxy is not installed",
  },
  () => {
    const file = join(MANIFESTS, "haproxy.cfg");
    const checked = spawnSync("haproxy", ["-c", "-f", file], { encoding: "utf8" });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}`);
    const objects = readManifest("sidecar.yaml");
    const service = only(objects, "Service");
    const agent = container(only(objects, "Deployment"), "heartbeat");
    const line = spawnSync("grep", ["^ *server-template", file], { encoding: "utf8" }).stdout;
    assert.match(
      line,
      new RegExp(` ${service.metadata.name}\\.default\\.svc\\.cluster\\.local:8080 `),
    );
    assert.match(
      line,
      new RegExp(` agent-check agent-port ${argument(agent, "agent-check")!.split(":")[1]} `),
    );
    assert.match(line, / check inter 1s /);
  },
);
