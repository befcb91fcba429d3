/** A monitor on a fake clock for unit tests, its log and --print lines recorded. */
import { createLogger } from "../../src/log.ts";
import { parseCidr } from "../../src/monitor/cidr.ts";
import { Monitor } from "../../src/monitor/monitor.ts";
import type { MonitorOutput } from "../../src/monitor/outputs/output.ts";
import { StorageOutput } from "../../src/monitor/outputs/storage.ts";
import { FakeClock, recordingLog } from "./fakes.ts";

/** With `storage`: the storage file as its first output, then `outputs`. */
export function monitorWith(
  options: {
    maxServers?: number;
    allow?: string[];
    storage?: string;
    outputs?: MonitorOutput[];
  } = {},
) {
  const clock = new FakeClock();
  const log = recordingLog();
  const printed: string[] = [];
  const logger = createLogger({ level: "info", write: log.write });
  const storage = options.storage
    ? new StorageOutput({ path: options.storage, logger, now: () => clock.now() })
    : undefined;
  const monitor = new Monitor({
    maxServers: options.maxServers ?? 100,
    allow: (options.allow ?? []).map(parseCidr),
    outputs: [...storage ? [storage] : [], ...options.outputs ?? []],
    print: (line) => printed.push(line),
    logger,
    clock,
  });
  return { monitor, clock, log: log.lines, printed, storage };
}
