/**
 * Private test networks: network namespaces that a lab test or a benchmark creates and deletes
 * itself, joined by veth links or a bridge that live inside them. Nothing here touches the
 * machine's own interfaces, so nothing sent in them can leave the machine.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, REPO } from "../repo.ts";
import { detectRuntime } from "../../src/runtime.ts";

export function commandAvailable(command: string): boolean {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"].some((dir) =>
    existsSync(join(dir, command))
  );
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let labs = 0;
const open = new Set<Lab>();
// A runner that skips `after` hooks (filtered runs do) must not leave namespaces behind.
// Deno's test runner ends with `unload` rather than process's `exit`.
const closeAll = () => open.forEach((lab) => lab.closeNow());
process.on("exit", closeAll);
(globalThis as { addEventListener?: (type: string, listener: () => void) => void })
  .addEventListener?.("unload", closeAll);

export class Lab {
  /** Namespace names start with this: unique per process and lab. */
  readonly prefix = `hbt${process.pid}x${labs++}`;
  /** A scratch folder that the lab's servers may use, removed with the lab. */
  readonly dir = mkdtempSync(join(tmpdir(), "heartbeat-lab-"));
  readonly #namespaces: string[] = [];
  readonly #etc: string[] = [];
  readonly #children = new Set<ChildProcess>();

  constructor() {
    open.add(this);
  }

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  /** Creates a namespace with its loopback up. */
  addNamespace(name: string): void {
    const ns = this.ns(name);
    ip("netns", "add", ns);
    this.#namespaces.push(ns);
    // No duplicate address detection: IPv6 addresses are usable at once, not seconds later.
    this.sh(
      name,
      "ip link set lo up; sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
    );
  }

  /**
   * Gives namespace `name` its own /etc/hosts (`ip netns exec` mounts /etc/netns/NS/hosts over
   * it). Rewriting it later changes what processes already running there resolve.
   */
  hosts(name: string, lines: string[]): void {
    const dir = join("/etc/netns", this.ns(name));
    if (!this.#etc.includes(dir)) {
      mkdirSync(dir, { recursive: true });
      this.#etc.push(dir);
    }
    writeFileSync(join(dir, "hosts"), ["127.0.0.1 localhost", ...lines, ""].join("\n"));
  }

  /** Runs a shell command inside namespace `name`, synchronously; throws if it fails. */
  sh(name: string, command: string): string {
    return execFileSync("ip", ["netns", "exec", this.ns(name), "sh", "-ec", command], {
      encoding: "utf8",
    });
  }

  /** A veth link between two namespaces, each end named and given the addresses listed. */
  link(
    a: { ns: string; dev: string; cidr: string; cidr6?: string },
    b: { ns: string; dev: string; cidr: string; cidr6?: string },
  ): void {
    this.sh(a.ns, `ip link add ${a.dev} type veth peer name ${b.dev} netns ${this.ns(b.ns)}`);
    for (const end of [a, b]) {
      this.sh(
        end.ns,
        `ip addr add ${end.cidr} dev ${end.dev}; ${
          end.cidr6 ? `ip -6 addr add ${end.cidr6} dev ${end.dev} nodad; ` : ""
        }ip link set ${end.dev} up`,
      );
    }
  }

  /** A switch: namespace `name` holding bridge br0, which floods multicast to every port. */
  addSwitch(name: string): void {
    this.addNamespace(name);
    this.sh(name, "ip link add br0 type bridge mcast_snooping 0; ip link set br0 up");
  }

  /** Puts namespace `host` on the switch as eth0 with address `cidr`, multicast routed there. */
  plug(host: string, cidr: string, switchName = "switch"): void {
    const port = `p-${host}`.slice(0, 15);
    this.sh(
      switchName,
      `ip link add ${port} type veth peer name eth0 netns ${this.ns(host)}; ` +
        `ip link set ${port} master br0; ip link set ${port} up`,
    );
    this.sh(
      host,
      `ip addr add ${cidr} dev eth0; ip link set eth0 up; ip route add 224.0.0.0/4 dev eth0`,
    );
  }

  /** Every process running in namespace `name`, children of daemons included. */
  pids(name: string): number[] {
    return namespacePids(this.ns(name));
  }

  /**
   * Starts `argv` inside namespace `name`; it is killed when the lab closes. With `cgroups`
   * (folders of cgroup hierarchies), it starts in those, and so does every process it forks.
   * (They are joined from outside: `ip netns exec` mounts a sysfs without the cgroup folders.)
   * With `hostMounts`, it enters only the network namespace, and sees the host's /sys/fs/cgroup.
   */
  spawn(
    name: string,
    argv: string[],
    options: {
      cwd?: string;
      env?: Record<string, string>;
      cgroups?: string[];
      hostMounts?: boolean;
    } = {},
  ): ChildProcess {
    const inNamespace = options.hostMounts
      ? ["nsenter", `--net=/run/netns/${this.ns(name)}`, "--", ...argv]
      : ["ip", "netns", "exec", this.ns(name), ...argv];
    const command = options.cgroups
      ? [
        "sh",
        "-c",
        'for group in $LAB_CGROUPS; do echo $$ > "$group/cgroup.procs"; done; exec "$@"',
        "sh",
        ...inNamespace,
      ]
      : inNamespace;
    const child = spawn(command[0], command.slice(1), {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, ...options.env, LAB_CGROUPS: options.cgroups?.join(" ") ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
      // A process group of its own: Apache's prefork MPM (Debian's tree once mod_php is
      // installed) stops with killpg(getpgrp(), SIGTERM), which would take the test runner too.
      detached: true,
    });
    this.#children.add(child);
    child.once("exit", () => this.#children.delete(child));
    return child;
  }

  /** Runs `argv` inside namespace `name` to the end (killed after `timeoutMs`). */
  run(
    name: string,
    argv: string[],
    options: { timeoutMs?: number; cwd?: string; env?: Record<string, string> } = {},
  ): Promise<RunResult> {
    const child = this.spawn(name, argv, options);
    const output = collect(child);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    return new Promise((resolve) => {
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, ...output() });
      });
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.#children].map((child) => stop(child)));
    this.closeNow();
  }

  /** Kills what still runs and deletes the namespaces, synchronously (for process exit). */
  closeNow(): void {
    open.delete(this);
    for (const child of this.#children) child.kill("SIGKILL");
    for (const ns of this.#namespaces.splice(0).reverse()) {
      try {
        // Processes left in the namespace (daemons' children) would keep it alive.
        namespacePids(ns).forEach((pid) => process.kill(pid, "SIGKILL"));
        ip("netns", "del", ns);
      } catch { /* already gone */ }
    }
    for (const dir of this.#etc) rmSync(dir, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function namespacePids(ns: string): number[] {
  return execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean)
    .map(Number);
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** What a child has written so far, as text. */
export function collect(child: ChildProcess): () => { stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => stdout += chunk);
  child.stderr?.on("data", (chunk) => stderr += chunk);
  return () => ({ stdout, stderr });
}

/** Sends SIGTERM, then SIGKILL after a grace period; resolves to the exit code. */
export function stop(child: ChildProcess, graceMs = 3000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill("SIGTERM");
  });
}

/** Resolves once `check` holds, looking every `pollMs`, or rejects after `timeoutMs`. */
export async function waitFor(
  check: () => boolean,
  timeoutMs: number,
  what: string,
  pollMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

export type RuntimeName = "deno" | "bun";

/** The runtime running this test or script. */
export function currentRuntime(): RuntimeName {
  const runtime = detectRuntime();
  if (runtime === "node") throw new Error("the tests and scripts run under Deno or Bun");
  return runtime;
}

/**
 * The command that runs `script` (a path in this repo) under `runtime`, from the repo root as a
 * user would: Deno gets --unstable-net from deno.json there.
 */
export function runtimeCommand(
  runtime: RuntimeName,
  script: string,
  args: string[] = [],
): string[] {
  return runtime === "deno"
    ? [join(BIN, "deno"), "run", "-A", script, ...args]
    : [join(BIN, "bun"), script, ...args];
}

/**
 * The agent's command line under `runtime`, as a user runs it from the repository; or, when
 * HEARTBEAT_BINARY names a compiled binary (scripts/test.ts sets it for its third pass), that.
 */
export function agentCommand(runtime: RuntimeName, args: string[]): string[] {
  const binary = process.env.HEARTBEAT_BINARY;
  return binary ? [binary, ...args] : runtimeCommand(runtime, "src/main.ts", args);
}
