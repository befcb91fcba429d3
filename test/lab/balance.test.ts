/**
 * The balance benchmark's short form (scripts/bench/balance.ts): its lab works, a real Apache
 * balancer in front of two Apache + mod_php origins in CPU-limited cgroups, with bybusyness and
 * with lbmethod=heartbeat fed by the agents. It checks that both origins serve and that the
 * figures are read, not what they are: timings belong to the benchmark, on a quiet machine.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { balanceUnavailable } from "../../scripts/bench/balance.ts";
import { collect, runtimeCommand } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { requiredOrSkipped } from "../support/lab.ts";

const skip = requiredOrSkipped(balanceUnavailable());
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-balance-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test(
  "balance bench: bybusyness and lbmethod=heartbeat each send requests to both origins, and the tables are filled",
  {
    skip,
  },
  async () => {
    const svg = join(scratch, "balance.svg");
    const [command, ...args] = runtimeCommand("bun", "scripts/bench.ts", [
      "--balance",
      "--seconds",
      "10",
      "--warmup",
      "1",
      "--runs",
      "1",
      "--scenarios",
      "closed",
      "--methods",
      "bybusyness,hb apache",
      "--svg",
      svg,
    ]);
    const bench = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    const output = collect(bench);
    const timer = setTimeout(() => bench.kill("SIGTERM"), 110_000);
    const code = await new Promise((resolve) => bench.once("close", resolve));
    clearTimeout(timer);
    const result = { code, ...output() };
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    for (const method of ["bybusyness", "hb apache"]) {
      const row = new RegExp(
        `^${method} +(\\d+\\.\\d) .* (\\d+) % +(\\d\\.\\d\\d)/(\\d\\.\\d\\d) `,
        "m",
      )
        .exec(result.stdout);
      assert.ok(row, `a row for ${method}:\n${result.stdout}`);
      const [, throughput, share, cpu1, cpu2] = row.map(Number);
      assert.ok(throughput > 0, `${method} answered requests`);
      assert.ok(share > 0 && share < 100, `${method} sent requests to both origins: ${share} %`);
      assert.ok(cpu1 > 0 && cpu2 > 0, `both origins used CPU: ${cpu1}, ${cpu2}`);
    }
    assert.match(result.stdout, /^verdict: /m);
    assert.match(readFileSync(svg, "utf8"), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  },
);
