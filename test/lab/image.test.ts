/**
 * The container image as users run it: loaded with `podman load` from the release's
 * image.tar, run inside a lab namespace (`--network ns:...`), heard by a real Apache's
 * mod_heartmonitor; `podman stop` sends the farewell. Runs when HEARTBEAT_IMAGE names the
 * image file (scripts/test.ts builds it with `scripts/build.ts --image` where podman is).
 *
 *   proxy   10.99.12.1  apache2 with mod_heartmonitor on 239.0.0.1:27999
 *   origin  10.99.12.2  the heartbeat image, run by podman in this namespace
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";
import { Lab, waitFor } from "../../scripts/lab/lab.ts";
import { requiredOrSkipped, skipUnlessLab } from "../support/lab.ts";
import { podman as podmanIn } from "../support/podman.ts";
import { readStorage, startApacheProxy } from "../../scripts/lab/servers.ts";

const image = process.env.HEARTBEAT_IMAGE;
const skip = !process.env.HEARTBEAT_BINARY
  ? "runs in the compiled-binary pass (scripts/test.ts)"
  : skipUnlessLab(["apache2", "podman", "runc"]) ||
    (image ? false : requiredOrSkipped("no image was built: HEARTBEAT_IMAGE is not set"));

let lab: Lab | undefined;
after(() => {
  if (lab) podman("rm", "--all", "--force", "--time", "0");
  lab?.close();
});

const podman = (...args: string[]) => podmanIn(lab!, args);

test(
  "image: podman runs it as user 65532 in a lab namespace; Apache's mod_heartmonitor records it; podman stop sends ready=0",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.12.1/24");
    lab.addNamespace("origin");
    lab.plug("origin", "10.99.12.2/24");
    const apache = startApacheProxy(lab, "proxy", {
      address: "10.99.12.1",
      members: ["http://10.99.12.2:80"],
      heartmonitor: { listen: "239.0.0.1:27999" },
    });

    const loaded = podman("load", "--input", image!);
    const tag = /Loaded image(?:\(s\))?: (\S+)/.exec(loaded)?.[1];
    assert.ok(tag, loaded);
    const labels = JSON.parse(
      podman("image", "inspect", "--format", "{{json .Config.Labels}}", tag!),
    );
    for (const label of ["version", "revision", "licenses", "title", "description"]) {
      assert.ok(
        labels[`org.opencontainers.image.${label}`],
        `label org.opencontainers.image.${label}`,
      );
    }
    // A URL, or empty where the clone's origin is none (a local path): never a path.
    assert.match(labels["org.opencontainers.image.source"], /^(https:\/\/\S+)?$/);
    assert.equal(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    podman(
      "run",
      "--detach",
      "--name",
      "heartbeat",
      "--network",
      `ns:/run/netns/${lab.ns("origin")}`,
      "--ulimit",
      "nofile=1024:1024",
      "--ulimit",
      "nproc=1000:1000",
      "--env",
      "HEARTBEAT_ADDRESS=239.0.0.1:27999",
      tag,
      "--ready",
      "7",
      "--busy",
      "2",
      "--port",
      "8080",
    );
    const origin = () => readStorage(apache.storage).find((entry) => entry.ip === "10.99.12.2");
    // mod_heartmonitor rewrites its storage file every 5 seconds.
    await waitFor(
      () => origin()?.ready === 7,
      15_000,
      `the image's heartbeats in ${apache.storage}\n${apache.diagnostics()}\n${
        podman("logs", "heartbeat")
      }`,
    );
    assert.deepEqual({ ...origin(), lastseen: 0 }, {
      ip: "10.99.12.2",
      ready: 7,
      busy: 2,
      lastseen: 0,
      port: 8080,
    });

    const pid = lab.pids("origin").find((candidate) =>
      readFileSync(`/proc/${candidate}/cmdline`, "utf8").startsWith("/heartbeat")
    );
    assert.ok(pid, "the container's process in the origin namespace");
    assert.match(
      readFileSync(`/proc/${pid}/status`, "utf8"),
      /^Uid:\s+65532\s+65532\s+65532\s+65532$/m,
    );

    podman("stop", "--time", "5", "heartbeat");
    await waitFor(() => origin()?.ready === 0, 15_000, `the farewell ready=0 in ${apache.storage}`);
    const logs = podman("logs", "heartbeat");
    assert.match(logs, /stopping on SIGTERM: telling the proxies ready=0\n.*stopped\n$/s);
    assert.equal(
      JSON.parse(podman("inspect", "--format", "{{json .State.ExitCode}}", "heartbeat")),
      0,
    );
  },
);
