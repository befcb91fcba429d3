/** The monitor's outputs, from its settings, in the order each tick runs them. */
import type { Logger } from "../../log.ts";
import type { Clock } from "../../scheduler.ts";
import type { SettingNames, Settings } from "../../settings.ts";
import type { StoredServer } from "../storage.ts";
import { HAProxyPush } from "./haproxy.ts";
import { NginxUpstream } from "./nginx.ts";
import type { MonitorOutput } from "./output.ts";
import { StorageOutput } from "./storage.ts";

/**
 * The outputs the settings ask for, each started: the storage file first (its problem is the
 * one /healthz names first), then HAProxy's weights, then nginx's upstream. `restore`: the servers the storage file
 * kept from an earlier run.
 */
export function monitorOutputs(
  settings: Pick<
    Settings,
    | "storage"
    | "haproxySockets"
    | "haproxyBackends"
    | "nginxUpstream"
    | "nginxPort"
    | "nginxServers"
    | "nginxReload"
    | "nginxReloadIntervalSeconds"
  >,
  names: SettingNames,
  logger: Logger,
  clock: Clock,
): { outputs: MonitorOutput[]; restore?: { servers: StoredServer[]; from: string } } {
  const now = () => clock.now();
  const outputs: MonitorOutput[] = [];
  let restore: { servers: StoredServer[]; from: string } | undefined;
  if (settings.storage) {
    const storage = new StorageOutput({ path: settings.storage, logger, now });
    restore = { servers: storage.start(), from: storage.path };
    outputs.push(storage);
  }
  if (settings.haproxySockets?.length) {
    outputs.push(
      new HAProxyPush({
        sockets: settings.haproxySockets,
        backends: settings.haproxyBackends ?? [],
        backendsName: names("haproxyBackends"),
        logger,
        now,
      }),
    );
  }
  if (settings.nginxUpstream) {
    outputs.push(
      new NginxUpstream({
        file: settings.nginxUpstream,
        port: settings.nginxPort,
        servers: settings.nginxServers ?? [],
        reload: settings.nginxReload,
        intervalSeconds: settings.nginxReloadIntervalSeconds,
        logger,
      }),
    );
  }
  return { outputs, restore };
}
