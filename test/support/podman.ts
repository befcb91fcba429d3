/** podman, as it runs on these machines, for the image and Kubernetes tests. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab } from "../../scripts/lab/lab.ts";

/**
 * podman's command line and environment, with storage of the lab's own (vfs, runc, cgroupfs: what
 * works here), so that the test leaves nothing behind. With `netns`, podman itself runs in that
 * lab namespace (nsenter, which leaves /sys and its cgroups mounted, where `ip netns exec` mounts
 * a /sys of its own): `podman kube play --network host` then puts the pod there, since podman 4.3
 * refuses `--network ns:PATH` for pods.
 */
function podmanCommand(
  lab: Lab,
  args: string[],
  netns: string | undefined,
): { argv: string[]; env: Record<string, string | undefined> } {
  const storage = join(lab.dir, "podman");
  // The open-files and process limits podman would give containers by default (2^20) are above
  // what this machine lets it set: runc then fails with "error setting rlimit type 7".
  const containersConf = join(lab.dir, "containers.conf");
  writeFileSync(
    containersConf,
    '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n',
  );
  const command = [
    "podman",
    "--root",
    join(storage, "root"),
    "--runroot",
    join(storage, "run"),
    "--storage-driver",
    "vfs",
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    ...args,
  ];
  return {
    argv: netns ? ["nsenter", `--net=/run/netns/${lab.ns(netns)}`, ...command] : command,
    env: { ...process.env, CONTAINERS_CONF: containersConf },
  };
}

/**
 * Runs podman to the end (see podmanCommand); returns what it printed on stdout and stderr
 * (`podman logs` replays the container's stderr on its own). Throws if it fails.
 */
export function podman(lab: Lab, args: string[], options: { netns?: string } = {}): string {
  const { argv: [file, ...argv], env } = podmanCommand(lab, args, options.netns);
  const result = spawnSync(file, argv, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  if (result.status !== 0) {
    throw new Error(
      `podman ${args.join(" ")} failed: ${result.stderr}${result.error?.message ?? ""}`,
    );
  }
  return `${result.stdout}${result.stderr}`;
}

/** Starts podman (see podmanCommand) without waiting for it. */
export function spawnPodman(lab: Lab, args: string[]): ChildProcess {
  const { argv: [file, ...argv], env } = podmanCommand(lab, args, undefined);
  return spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], env });
}
