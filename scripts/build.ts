/**
 * Standalone binaries, release archives and container images:
 * `npx bun scripts/build.ts [--target NAME …] [--no-archives] [--image]` (or `npm run build --`).
 *
 *   dist/heartbeat-<target>[.exe]                   bun build --compile, runnable as it is
 *   dist/heartbeat-<version>-<target>.tar.xz        the release archive (.zip for Windows): one
 *                                                   folder heartbeat-<version>-<target>/ with the
 *                                                   binary as heartbeat[.exe], LICENSE, NOTICE,
 *                                                   README.md, CHANGELOG.md and contrib/
 *   dist/heartbeat-<version>-<target>-deno.tar.xz   the same from deno compile, where it works
 *   dist/SHA256SUMS                                 `sha256sum -c SHA256SUMS` checks every archive
 *                                                   and image this run made (not older ones)
 *   dist/heartbeat-<version>-<target>.image.tar     with --image (Linux glibc targets): an OCI image
 *                                                   for `podman load` or `docker load`
 *
 * The image is built FROM scratch by the Dockerfile at the repository's root, from a folder
 * staged here: the binary, exactly the libraries ldd names, the licences, and a passwd entry for
 * the non-root user 65532. podman is used where it is installed, docker otherwise
 * (CONTAINER_ENGINE chooses). IMAGE_SOURCE names the repository for the image's
 * org.opencontainers.image.source label (default: git's origin, as an https URL; see
 * imageSource).
 *
 * deno compile fetches `denort` from Deno's download server unless DENORT_BIN names a local
 * copy; where neither works, it says so and the Bun builds still succeed.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { BIN, DIST, REPO, run, VERSION } from "./repo.ts";

/** Our target name → Bun's, Deno's where Deno has it, and the image platform for glibc Linux. */
export const TARGETS: Record<
  string,
  { bun: string; deno?: string; windows?: boolean; platform?: string }
> = {
  "linux-x64": { bun: "bun-linux-x64", deno: "x86_64-unknown-linux-gnu", platform: "linux/amd64" },
  "linux-arm64": {
    bun: "bun-linux-arm64",
    deno: "aarch64-unknown-linux-gnu",
    platform: "linux/arm64",
  },
  "linux-x64-musl": { bun: "bun-linux-x64-musl" },
  "linux-arm64-musl": { bun: "bun-linux-arm64-musl" },
  "darwin-x64": { bun: "bun-darwin-x64", deno: "x86_64-apple-darwin" },
  "darwin-arm64": { bun: "bun-darwin-arm64", deno: "aarch64-apple-darwin" },
  "windows-x64": { bun: "bun-windows-x64", deno: "x86_64-pc-windows-msvc", windows: true },
};

/** What goes into every archive beside the binary. */
const DOCUMENTS = ["LICENSE", "NOTICE", "README.md", "CHANGELOG.md", "contrib"];

/** The user the image runs as: distroless's "nonroot". */
const IMAGE_USER = 65532;

/** The commit (short, `-dirty` for a modified tree) and the date (SOURCE_DATE_EPOCH, else today). */
export function buildStamp(): { commit: string; date: string } {
  const head = run("git", ["rev-parse", "--short=7", "HEAD"]);
  const clean = run("git", ["diff", "--quiet", "HEAD", "--"]).ok;
  const commit = head.ok ? `${head.output.trim()}${clean ? "" : "-dirty"}` : "unknown";
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const date = new Date(Number.isFinite(epoch) && epoch > 0 ? epoch * 1000 : Date.now())
    .toISOString().slice(0, 10);
  return { commit, date };
}

/** JavaScriptCore's tier-up thresholds × this: high enough that the agent's code never tiers up. */
const JIT_POLICY = 1_000_000;

/** The bun that compiles: the one running this script, else the project's (under Deno). */
const BUN = "Bun" in globalThis ? process.execPath : join(BIN, "bun");

/**
 * `bun build --compile` of `entry` for `target` with the project's flags, as every heartbeat
 * binary is built; scripts/bench.ts builds its bare floors with it too. Throws with Bun's output
 * when the build fails.
 */
export function compileWithBun(
  entry: string,
  outfile: string,
  target: string,
  defines: Record<string, string> = {},
): void {
  const built = run(BUN, [
    "build",
    "--compile",
    `--target=${target}`,
    ...Object.entries(defines).flatMap(([key, value]) => ["--define", `${key}=${value}`]),
    // Bytecode halves the time to the first heartbeat (23 → 13 ms here, scripts/bench.ts).
    "--bytecode",
    "--format=esm",
    // Holds back JIT tier-up, for 6 MB less memory; the monitor lifts it (allowOptimizingJit).
    `--compile-jit-policy=${JIT_POLICY}`,
    // A binary takes its settings from its flags, environment and config file, not from a
    // .env or bunfig.toml that happens to be in the directory it was started in.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    entry,
    "--outfile",
    outfile,
  ]);
  if (!built.ok) throw new Error(`bun build --compile of ${entry} failed:\n${built.output}`);
}

function buildBun(name: string, stamp: { commit: string; date: string }): string {
  const target = TARGETS[name];
  const outfile = join(DIST, `heartbeat-${name}${target.windows ? ".exe" : ""}`);
  // Commit, date and target are baked in for --version (src/version.ts); the version comes
  // from deno.json through the bundle.
  compileWithBun(
    "src/main.ts",
    outfile,
    target.bun,
    Object.fromEntries(
      Object.entries({ TARGET: name, COMMIT: stamp.commit, DATE: stamp.date }).map((
        [key, value],
      ) => [`process.env.HEARTBEAT_BUILD_${key}`, JSON.stringify(value)]),
    ),
  );
  return outfile;
}

/** The Deno build, or undefined with the reason said when denort cannot be had. */
function buildDeno(name: string): string | undefined {
  const target = TARGETS[name].deno;
  if (!target) return undefined;
  mkdirSync(join(DIST, "deno"), { recursive: true });
  const output = join(DIST, "deno", `heartbeat-${name}${TARGETS[name].windows ? ".exe" : ""}`);
  const built = run(join(BIN, "deno"), [
    "compile",
    "-A",
    "--unstable-net",
    "--target",
    target,
    "--output",
    output,
    "src/main.ts",
  ], { NO_COLOR: "1" });
  if (built.ok) return output;
  if (readdirSync(join(DIST, "deno")).length === 0) rmSync(join(DIST, "deno"), { recursive: true });
  const reason = process.env.DENORT_BIN
    ? `with DENORT_BIN=${process.env.DENORT_BIN}`
    : "it needs denort from Deno's download server, which cannot be reached here; set DENORT_BIN to a local denort for this target";
  // Deno's error names the step; its "Caused by" chain ends with why.
  const url = /request for url \(([^)]+)\)/.exec(built.output)?.[1];
  const chain = built.output.split("Caused by:")[1]?.split("Stack backtrace")[0] ?? "";
  const causes = chain.split("\n").filter((line) => /^\s+\d+: /.test(line)).map((line) =>
    line.replace(/^\s+\d+: /, "")
  );
  const said = [
    url && `downloading ${url}`,
    causes[causes.length - 1] ?? built.output.trim().split("\n")[0],
  ].filter(Boolean).join(": ");
  console.log(`deno compile ${name}: skipped: ${reason}\n  (${said})`);
  return undefined;
}

/** `<dist>/<folder>.tar.xz` (or .zip) holding `<folder>/` with the binary as heartbeat[.exe] and the documents. */
export function archive(binary: string, folder: string, windows: boolean, dist = DIST): string {
  const staging = join(dist, folder);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  copyFileSync(binary, join(staging, windows ? "heartbeat.exe" : "heartbeat"));
  for (const document of DOCUMENTS) {
    cpSync(join(REPO, document), join(staging, document), { recursive: true });
  }
  const out = join(dist, `${folder}.${windows ? "zip" : "tar.xz"}`);
  rmSync(out, { force: true });
  if (windows) execFileSync("zip", ["-q", "-r", "-9", out, folder], { cwd: dist });
  else {execFileSync("tar", ["-cJf", out, "-C", dist, "--owner=0", "--group=0", folder], {
      env: { ...process.env, XZ_OPT: "-9" },
    });}
  rmSync(staging, { recursive: true });
  return out;
}

/**
 * `<dist>/SHA256SUMS` for `made`, the archives and images this build wrote into `dist`, as
 * sha256sum writes it. Only those: a file an earlier build left in `dist` is not this release's.
 */
export function sha256sums(made: string[], dist = DIST): string {
  const lines = made.map((file) => basename(file)).sort().map((file) =>
    `${createHash("sha256").update(readFileSync(join(dist, file))).digest("hex")}  ${file}`
  );
  const out = join(dist, "SHA256SUMS");
  writeFileSync(out, lines.length ? `${lines.join("\n")}\n` : "");
  return out;
}

/** The libraries a dynamically linked binary loads, as ldd names them (the loader included). */
export function sharedLibraries(binary: string): string[] {
  return execFileSync("ldd", [binary], { encoding: "utf8" }).split("\n")
    .map((line) => /(\/\S+)/.exec(line.includes("=>") ? line.split("=>")[1] : line)?.[1])
    .filter((path): path is string => !!path);
}

/**
 * The image's root file system: the binary as /heartbeat, the libraries ldd names, the
 * licences, and passwd/group entries for the non-root user. Undefined, with the reason, where
 * this machine cannot stage `name` (ldd reads only binaries of its own architecture).
 */
export function stageImage(binary: string, name: string): { root: string } | { skipped: string } {
  if (!TARGETS[name].platform) {
    return { skipped: "images are built for the glibc Linux targets (linux-x64, linux-arm64)" };
  }
  if (name !== `${process.platform}-${process.arch}`) {
    return {
      skipped:
        `ldd on this ${process.platform}-${process.arch} machine cannot list a ${name} binary's libraries`,
    };
  }
  const root = join(DIST, `image-${name}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root);
  copyFileSync(binary, join(root, "heartbeat"));
  for (const library of sharedLibraries(binary)) {
    mkdirSync(join(root, dirname(library)), { recursive: true });
    copyFileSync(library, join(root, library));
  }
  const doc = join(root, "usr", "share", "doc", "heartbeat");
  mkdirSync(doc, { recursive: true });
  for (const document of ["LICENSE", "NOTICE"]) {
    copyFileSync(join(REPO, document), join(doc, document));
  }
  mkdirSync(join(root, "etc"));
  writeFileSync(
    join(root, "etc", "passwd"),
    `root:x:0:0:root:/:/sbin/nologin\nnonroot:x:${IMAGE_USER}:${IMAGE_USER}:nonroot:/:/sbin/nologin\n`,
  );
  writeFileSync(join(root, "etc", "group"), `root:x:0:\nnonroot:x:${IMAGE_USER}:\n`);
  // Bun needs a /proc at run time: the container runtime mounts one there.
  mkdirSync(join(root, "proc"));
  return { root };
}

/**
 * The image's org.opencontainers.image.source label, a URL a browser opens: IMAGE_SOURCE (the
 * release workflow sets it) as given, else git's origin if it is an https URL (without any
 * user:token in it) or an scp-like `git@host:owner/repo` (as https://host/owner/repo), else
 * empty: a clone's origin may be a local path or another protocol, which is no place to link to.
 */
export function imageSource(imageSourceVariable: string | undefined, origin: string | undefined) {
  if (imageSourceVariable) return imageSourceVariable;
  if (!origin) return "";
  const https = /^https:\/\/(?:[^@/]*@)?([^/]+\/.+)$/.exec(origin);
  const scp = /^[\w.-]+@([\w.-]+):(?!\/)(.+)$/.exec(origin);
  const where = https ? https[1] : scp ? `${scp[1]}/${scp[2]}` : undefined;
  return where ? `https://${where.replace(/\/+$/, "").replace(/\.git$/, "")}` : "";
}

/** podman or docker: CONTAINER_ENGINE, else whichever is installed, podman first. */
function containerEngine(): string | undefined {
  if (process.env.CONTAINER_ENGINE) return process.env.CONTAINER_ENGINE;
  return ["podman", "docker"].find((engine) => run(engine, ["--version"]).ok);
}

/** Builds the image from the staged root with the Dockerfile and saves it; its tag and file. */
function buildImage(
  root: string,
  name: string,
  stamp: { commit: string; date: string },
): { tag: string; file: string } | { skipped: string } {
  const engine = containerEngine();
  if (!engine) {
    return {
      skipped:
        `neither podman nor docker is installed; the staged root is ${root}: build it with 'docker build -f Dockerfile ${root}'`,
    };
  }
  const tag = `localhost/heartbeat:${VERSION}-${name}`;
  const origin = run("git", ["remote", "get-url", "origin"]);
  const args = {
    VERSION,
    REVISION: stamp.commit,
    CREATED: `${stamp.date}T00:00:00Z`,
    SOURCE: imageSource(process.env.IMAGE_SOURCE, origin.ok ? origin.output.trim() : undefined),
  };
  const built = run(engine, [
    "build",
    ...(engine.endsWith("podman") ? ["--network", "none"] : []),
    "--platform",
    TARGETS[name].platform!,
    "-f",
    join(REPO, "Dockerfile"),
    "-t",
    tag,
    ...Object.entries(args).flatMap(([key, value]) => ["--build-arg", `${key}=${value}`]),
    root,
  ]);
  if (!built.ok) throw new Error(`${engine} build for ${name} failed:\n${built.output}`);
  const file = join(DIST, `heartbeat-${VERSION}-${name}.image.tar`);
  rmSync(file, { force: true });
  const saved = run(engine, [
    "save",
    ...(engine.endsWith("podman") ? ["--format", "docker-archive"] : []),
    "-o",
    file,
    tag,
  ]);
  if (!saved.ok) throw new Error(`${engine} save ${tag} failed:\n${saved.output}`);
  return { tag, file };
}

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

const USAGE = `Usage: npx bun scripts/build.ts [--target NAME ...] [--no-archives] [--image]
  --target NAME   build only this target (repeatable); default: all of them
  --no-archives   binaries only: no archives, no SHA256SUMS
  --image         also a container image for the Linux glibc targets this machine can stage
Targets: ${Object.keys(TARGETS).join(", ")}`;

export function main(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        target: { type: "string", multiple: true },
        "no-archives": { type: "boolean" },
        image: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`build: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const names = values.target ?? Object.keys(TARGETS);
  const unknown = names.filter((name) => !(name in TARGETS));
  if (unknown.length) {
    console.error(
      `build: unknown target ${unknown.join(", ")}; the targets are ${
        Object.keys(TARGETS).join(", ")
      }`,
    );
    return 2;
  }
  const missing = DOCUMENTS.filter((document) => !existsSync(join(REPO, document)));
  if (missing.length) throw new Error(`build: missing ${missing.join(", ")} in ${REPO}`);
  mkdirSync(DIST, { recursive: true });
  const stamp = buildStamp();
  console.log(`heartbeat ${VERSION} (${stamp.commit}, ${stamp.date})`);
  const size = (file: string) => megabytes(statSync(file).size);
  // The archives and images this run makes: SHA256SUMS lists these, not whatever is in dist/.
  const made: string[] = [];
  for (const name of names) {
    const windows = TARGETS[name].windows === true;
    const binary = buildBun(name, stamp);
    const packed = (file: string, folder: string) => {
      if (values["no-archives"]) return "";
      const packedFile = archive(file, folder, windows);
      made.push(packedFile);
      return ` → ${packedFile} (${size(packedFile)})`;
    };
    console.log(
      `bun  ${name}: ${binary} (${size(binary)})${packed(binary, `heartbeat-${VERSION}-${name}`)}`,
    );
    const denoBinary = buildDeno(name);
    if (denoBinary) {
      console.log(
        `deno ${name}: ${denoBinary} (${size(denoBinary)})${
          packed(denoBinary, `heartbeat-${VERSION}-${name}-deno`)
        }`,
      );
    }
    if (values.image) {
      const staged = stageImage(binary, name);
      const image = "root" in staged ? buildImage(staged.root, name, stamp) : staged;
      if ("file" in image) made.push(image.file);
      console.log(
        "skipped" in image
          ? `image ${name}: skipped: ${image.skipped}`
          : `image ${name}: ${image.tag} → ${image.file} (${size(image.file)})`,
      );
    }
  }
  if (!values["no-archives"]) console.log(`checksums: ${sha256sums(made)}`);
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
