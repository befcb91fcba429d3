/** src/sources/auto.ts */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSource } from "../../src/sources/index.ts";
import { SourceConfigError } from "../../src/sources/source.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;

test("auto: static when --ready is given, and a clear error listing the choices when nothing fits", async () => {
  const source = await createSource("auto", { names: FLAG_NAMES, ready: 3 });
  assert.deepEqual(await source.read(never), { ready: 3, busy: 0 });
  assert.equal(source.description, "static ready=3 busy=0");
  assert.equal(source.chosenBecause, "--ready was given");
  await assert.rejects(
    createSource("auto", { names: FLAG_NAMES, procRoot: join(scratch, "no-proc") }),
    (error: unknown) => {
      assert.ok(error instanceof SourceConfigError);
      assert.match(
        error.message,
        /^no load source found \(tried apache http:\/\/127\.0\.0\.1\/server-status\?auto: connection refused \(ECONNREFUSED\); php-fpm tcp:\/\/127\.0\.0\.1:9000\/status: connection refused \(ECONNREFUSED\): is php-fpm running, with a pool that listens there\?; nginx, tcp: need --capacity N\)/,
      );
      assert.match(
        error.message,
        /Choose one with --source: static --ready N, apache\[:URL\], nginx\[:URL\] --capacity N, php-fpm\[:URI\], tcp\[:PORTS\] --capacity N, exec:COMMAND or file:PATH$/,
      );
      return true;
    },
  );
});
