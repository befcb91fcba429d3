/**
 * The documents' commands, as a reader copies them. The README's shell blocks marked
 * `<!-- runnable -->` run as written, as root, on a host that has only the binary: in a lab
 * network namespace, and in a mount namespace of their own where /etc, /var, /run and /usr/local
 * are overlays on a tmpfs (writes go nowhere else), with no /etc/heartbeat,
 * /var/lib/heartbeat or /run/heartbeat.
 * `heartbeat` is a script first on PATH running HEARTBEAT_BINARY, else this runtime on
 * src/main.ts. The repository's scripts run with the project's own Bun (`npx bun`, as `npm ci`
 * puts no `bun` on PATH), and CONTRIBUTING.md explains every HEARTBEAT_* variable the tests read.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Lab } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { startApacheOrigin } from "../../scripts/lab/servers.ts";

const read = (file: string) => readFileSync(join(REPO, file), "utf8");

/** Every file a contributor reads a command from: the documents, and the scripts' usage. */
function documents(): string[] {
  const docs = readdirSync(join(REPO, "docs")).filter((file) => file.endsWith(".md"))
    .map((file) => `docs/${file}`);
  const scripts = readdirSync(join(REPO, "scripts")).filter((file) => file.endsWith(".ts"))
    .map((file) => `scripts/${file}`);
  return ["README.md", "CONTRIBUTING.md", "Dockerfile", ...docs, ...scripts];
}

test("readme: every command that runs a repository script with Bun says npx bun", () => {
  const bare = documents().flatMap((file) =>
    read(file).split("\n").flatMap((line, index) =>
      // A bench's printed header (`command  bun scripts/…`) is a record of what ran, not advice.
      /(?<!npx )\bbun scripts\//.test(line) && !line.startsWith("command  ")
        ? [`${file}:${index + 1}: ${line.trim()}`]
        : []
    )
  );
  assert.deepEqual(bare, []);
});

test("readme: CONTRIBUTING says how to run one test file on each runtime, and every HEARTBEAT_* variable the tests read", () => {
  const contributing = read("CONTRIBUTING.md");
  assert.match(contributing, /npx deno test -A test\/\S+\.test\.ts/);
  assert.match(contributing, /npx bun test --timeout 120000 test\/\S+\.test\.ts/);
  // The tests, their support, and the lab they share with the benchmarks.
  const tests = ["test", "scripts/lab"].flatMap((folder) =>
    readdirSync(join(REPO, folder), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts")).map((file) => `${folder}/${file}`)
  );
  const variables = new Set(
    tests.flatMap((file) =>
      [...read(file).matchAll(/process\.env\.(HEARTBEAT_[A-Z_]+)/g)].map((match) => match[1])
    ),
  );
  assert.ok(variables.has("HEARTBEAT_BINARY") && variables.has("HEARTBEAT_IMAGE"));
  for (const variable of variables) {
    assert.match(contributing, new RegExp(`\`${variable}=`), `${variable} in CONTRIBUTING.md`);
  }
});

/** A shell block of the README: where it starts, whether it is marked to run, its commands. */
interface ShellBlock {
  line: number;
  runnable: boolean;
  commands: string[];
}

/**
 * The README's ```sh blocks. A block runs in the test when the line before its fence (blank
 * lines aside) is `<!-- runnable -->`, a comment GitHub does not render. Its commands are its
 * lines, `\`-continued lines joined, without blank and comment-only lines.
 */
function shellBlocks(markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (lines[index].trim() !== "```sh") continue;
    const before = lines.slice(0, index).reverse().find((line) => line.trim() !== "");
    const body: string[] = [];
    let end = index + 1;
    for (; end < lines.length && lines[end].trim() !== "```"; end++) body.push(lines[end]);
    blocks.push({
      line: index + 1,
      runnable: before?.trim() === "<!-- runnable -->",
      commands: body.join("\n").replace(/\\\n\s*/g, "").split("\n").map((line) => line.trim())
        .filter((line) => line !== "" && !line.startsWith("#")),
    });
    index = end;
  }
  return blocks;
}

/** A command as NOT_RUN names it: without its trailing comment, spaces collapsed. */
const commandKey = (command: string) => command.replace(/\s+#.*$/, "").replace(/\s+/g, " ");

/**
 * The README's shell blocks that are not run, by their first command, and why. A block added to
 * the README is either marked runnable or named here.
 */
const NOT_RUN: Record<string, string> = {
  "sha256sum -c SHA256SUMS --ignore-missing":
    "needs a release archive (release.test.ts builds one)",
  "podman load -i heartbeat-0.2.0-linux-x64.image.tar":
    "needs the image (image.test.ts loads and runs it)",
  "sed 's/replicas: 2/replicas: 1/' contrib/kubernetes/sidecar.yaml > sidecar-one.yaml":
    "needs the image, a registry's nginx and the host's network (test/lab/kubernetes.test.ts plays the same in a lab namespace)",
  "npm ci && npm start -- --address 239.0.0.1:27999 --source static --ready 10":
    "npm ci would fetch from the registry and replace the shared node_modules",
  "npx bun src/main.ts --address 239.0.0.1:27999":
    "a clone's commands, and a whole build (test/lab/e2e.test.ts and binary.test.ts run these)",
  "npm ci && npm test": "the whole suite itself",
  "heartbeat --address http://proxy.example.com/heartbeat --source apache":
    "needs a proxy by name (test/lab/unicast.test.ts POSTs to a real one)",
  "install -D -m 0644 contrib/heartbeat-monitor.service.d/haproxy.conf /etc/systemd/system/heartbeat-monitor.service.d/haproxy.conf":
    "needs systemd as init (test/lab/haproxy-unit.test.ts runs the drop-in as systemd would)",
  "heartbeat monitor --listen 239.0.0.1:27999 --nginx-upstream /run/heartbeat/nginx-upstream.conf --nginx-server 10.0.0.0/24":
    "reloads the host's nginx (test/lab/nginx.test.ts runs the monitor against a real one)",
  "heartbeat -a 239.0.0.1:27999 --source apache":
    "needs Apache on two ports (test/lab/sources.test.ts reads a real one)",
  "heartbeat -a 239.0.0.1:27999 --source nginx --capacity 1024":
    "needs nginx (test/lab/sources.test.ts reads a real one)",
  "heartbeat -a 239.0.0.1:27999 --source php-fpm":
    "needs php-fpm pools at those addresses (test/lab/php-fpm.test.ts reads a real one)",
  "heartbeat -a 239.0.0.1:27999 --source tcp:8080 --capacity 200":
    "needs servers on those ports (test/lab/sources.test.ts)",
  "heartbeat -a 239.0.0.1:27999 --source 'exec:/usr/local/bin/myapp-load'":
    "names the reader's own program",
  "heartbeat -a 239.0.0.1:27999 --source file:/run/myapp/load --max-age 5":
    "names the reader's own application's file",
  "heartbeat -a 239.0.0.1:27999 --source cpu --capacity 100":
    "names the reader's own service's cgroup",
  "heartbeat -a 239.0.0.1:27999 --source pressure --capacity 100":
    "names the reader's own service's cgroup",
  "heartbeat -f /etc/apache2/apache2.conf":
    "needs an Apache configuration with HeartbeatAddress (config.test.ts reads such trees)",
  "npm run build": "a whole build of every target",
  "heartbeat -a 239.0.0.1:27999 --source apache --source pressure:cpu --capacity 100":
    "needs Apache and its cgroup (test/lab/e2e.test.ts and test/lab/sources.test.ts combine real sources)",
  "heartbeat -a 239.0.0.1:27999 --source static --ready 40 --busy 10 --source file:/run/myapp/load --once --dry-run":
    "names the reader's own application's file (test/lab/e2e.test.ts runs two sources with --dry-run)",
};

test("readme: every shell block is marked runnable or says here why it is not run", () => {
  const blocks = shellBlocks(read("README.md"));
  const unaccounted = blocks.filter((block) =>
    !block.runnable && !(commandKey(block.commands[0]) in NOT_RUN)
  )
    .map((block) => `README.md:${block.line}: ${block.commands[0]}`);
  assert.deepEqual(unaccounted, []);
  const stale = Object.keys(NOT_RUN).filter((first) =>
    !blocks.some((block) => !block.runnable && commandKey(block.commands[0]) === first)
  );
  assert.deepEqual(stale, [], "NOT_RUN names blocks the README no longer has unmarked");
});

/**
 * The folders the commands may write to, each an overlay on a tmpfs in their mount namespace:
 * what they write there is gone with it. A block writing anywhere else must not be marked.
 */
const OVERLAID = ["etc", "var", "run", "usr/local"];

/**
 * How long a command that keeps running (an agent, a monitor) may take to log that it started;
 * it is stopped with SIGTERM a second after.
 */
const START_SECONDS = 30;

/** A command that runs until stopped: `heartbeat` without --once, -t and the like. */
const keepsRunning = (command: string) =>
  /^heartbeat\s/.test(command) &&
  !/\s(--once|-t|--test-config|--print-config|--help|-h|--version|-V)(\s|$)/.test(command);

/** `heartbeat` as the README means it: the compiled binary, or this runtime on src/main.ts. */
function heartbeatScript(): string {
  const binary = process.env.HEARTBEAT_BINARY;
  const bin = join(REPO, "node_modules", ".bin");
  const main = join(REPO, "src", "main.ts");
  const command = binary
    ? `"${binary}"`
    : currentRuntime() === "deno"
    ? `"${bin}/deno" run -A --config "${REPO}/deno.json" "${main}"`
    : `"${bin}/bun" "${main}"`;
  return `#!/bin/sh\nexec ${command} "$@"\n`;
}

let lab: Lab | undefined;
after(() => lab?.close());

test("readme: the runnable shell blocks run as written on a host with only the binary", {
  skip: skipUnlessLab(["apache2", "curl", "unshare", "timeout"]),
}, async () => {
  const blocks = shellBlocks(read("README.md")).filter((block) => block.runnable);
  // The monitor's storage folder, the signing key's folder, and the reference's examples.
  assert.ok(blocks.length >= 3, `${blocks.length} runnable blocks`);

  // Stand-ins for what the commands name: the proxy at 10.0.0.5 on the host's network, the
  // interface 10.1.2.3, and Apache's mod_status at http://127.0.0.1/server-status?auto. These
  // addresses exist only inside the lab's namespaces, as every address the tests use.
  lab = new Lab();
  lab.addSwitch("switch");
  lab.addNamespace("host");
  lab.plug("host", "10.0.0.11/24");
  lab.sh("host", "ip addr add 10.1.2.3/24 dev eth0");
  lab.addNamespace("proxy");
  lab.plug("proxy", "10.0.0.5/24");
  const apache = startApacheOrigin(lab, "host", { heartbeatAddress: "127.0.0.1:9" });
  const status = await lab.run("host", [
    "sh",
    "-c",
    "for i in $(seq 100); do curl -sf 'http://127.0.0.1/server-status?auto' && exit 0; sleep 0.1; done; exit 1",
  ]);
  assert.equal(status.code, 0, apache.diagnostics());

  const bin = join(lab.dir, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "heartbeat"), heartbeatScript(), { mode: 0o755 });
  const overlays = join(lab.dir, "overlays");
  const results = join(lab.dir, "results");
  mkdirSync(overlays);
  mkdirSync(results);
  const commands = blocks.flatMap((block) =>
    block.commands.map((command) => ({ block: block.line, command }))
  );
  // One shell runs every command in order, so a folder one makes is there for the next. A
  // command that keeps running (one heartbeat command, exec'd so that it gets the signal) gets a
  // session of its own, and SIGTERM a second after its first log line (its start), sent to the
  // session by procps' kill (dash's takes no process group); anything else has a minute to finish.
  const startTenths = START_SECONDS * 10;
  const script = (command: string) => `'${command.replaceAll("'", `'"'"'`)}'`;
  const driver = [
    "set -e",
    `mount -t tmpfs tmpfs '${overlays}'`,
    ...OVERLAID.map((dir) =>
      `mkdir -p '${overlays}/${dir}/upper' '${overlays}/${dir}/work' && ` +
      `mount -t overlay overlay -o 'lowerdir=/${dir},upperdir=${overlays}/${dir}/upper,workdir=${overlays}/${dir}/work' /${dir}`
    ),
    // Only inside the overlays: the machine's own folders, if any, stay as they are.
    "rm -rf /etc/heartbeat /var/lib/heartbeat /run/heartbeat",
    `mkdir '${overlays}/home' && cd '${overlays}/home'`,
    "set +e",
    `results='${results}'`,
    // A child that has exited is a zombie, /proc entry and all, until it is waited for.
    `alive() { state=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ]; }`,
    `until_stopped() {
      setsid sh -c "exec $2" >"$results/$1.out" 2>"$results/$1.err" &
      pid=$!
      i=0
      while [ $i -lt ${startTenths} ] && alive $pid && ! grep -q '^[^ ]* info ' "$results/$1.err"; do
        sleep 0.1; i=$((i + 1))
      done
      alive $pid && sleep 1
      if ! alive $pid; then wait $pid; echo "exited $?" >"$results/$1.status"; return; fi
      env kill -s TERM -- -$pid
      i=0
      while [ $i -lt 50 ] && alive $pid; do sleep 0.1; i=$((i + 1)); done
      env kill -s KILL -- -$pid 2>/dev/null
      wait $pid
      echo "stopped $?" >"$results/$1.status"
    }`,
    ...commands.map(({ command }, index) =>
      keepsRunning(command)
        ? `until_stopped ${index} ${script(command)}`
        : `timeout -k 3 60 sh -c ${script(command)} >"$results/${index}.out" ` +
          `2>"$results/${index}.err"; echo "exited $?" >"$results/${index}.status"`
    ),
  ].join("\n");
  const run = spawnSync("ip", [
    "netns",
    "exec",
    lab.ns("host"),
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    driver,
  ], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    timeout: commands.length * (START_SECONDS + 10) * 1000,
  });
  assert.equal(run.status, 0, `the mount namespace: ${run.stderr}`);

  const failures = commands.flatMap(({ block, command }, index) => {
    const status = readFileSync(join(results, `${index}.status`), "utf8").trim();
    const stderr = readFileSync(join(results, `${index}.err`), "utf8");
    const problems = [
      // Running until stopped, then a clean stop (status 0, the farewell logged); or done, 0.
      keepsRunning(command)
        ? status === "stopped 0" && /\binfo +stopping on SIGTERM/.test(stderr)
          ? undefined
          : `${status}, where it should run until SIGTERM stops it with status 0`
        : status === "exited 0"
        ? undefined
        : status,
      /^\S+ (warn|error) /m.test(stderr) ? "warnings or errors logged" : undefined,
    ].filter(Boolean);
    return problems.length
      ? [`README.md:${block}: ${command}\n  ${problems.join("; ")}\n  ${stderr.trim()}`]
      : [];
  });
  assert.deepEqual(failures, []);
});
