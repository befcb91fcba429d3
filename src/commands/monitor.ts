/**
 * `heartbeat monitor`: collects heartbeats by UDP and HTTP into mod_heartmonitor's storage file
 * until SIGTERM or SIGINT; other signals are logged and change nothing.
 */
import { accessSync, constants, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type Invocation, UsageError } from "../cli.ts";
import { describeError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { HAProxyPush } from "../haproxy/runtime-api.ts";
import { runMonitor } from "../monitor/monitor.ts";
import { storageFolderProblem } from "../monitor/storage.ts";
import { allowOptimizingJit, runtimeVersion } from "../runtime.ts";
import type { Settings } from "../settings.ts";
import type { SignalName } from "../signals.ts";
import { SignatureCheck } from "../signing.ts";
import { receiveBufferUnsupported } from "../transport/receive-buffer.ts";
import { VERSION } from "../version.ts";
import {
  type Check,
  chooseAdapter,
  type CommandContext,
  EXIT_OK,
  keyFrom,
  resolveDestinations,
  runChecks,
  RuntimeFailure,
} from "./context.ts";

/** Signals the monitor has no use for: logged, so that a stray one does not stop it. */
const UNUSED_BY_MONITOR: SignalName[] = ["SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN"];

/**
 * What a start of the monitor checks before it opens anything; `-t` runs them all. The start
 * makes the same calls: the requirements first, then the adapter, the lookup and the key, which it
 * keeps.
 */
export function monitorChecks(settings: Settings, logger: Logger): Check[] {
  return [
    ...requirements(settings),
    { key: "runtimeAdapter", run: () => chooseAdapter(settings) },
    {
      key: "listen",
      run: () => settings.listen && resolveDestinations([settings.listen], "--listen"),
    },
    { key: "keyFile", run: () => settings.keyFile && keyFrom(settings.keyFile, logger) },
  ];
}

/** What the settings must say for a monitor to start, that nothing else checks. */
function requirements(settings: Settings): Check[] {
  return [
    {
      key: "listen",
      run: () => {
        if (!settings.listen && !settings.http) {
          throw new UsageError(
            "heartbeat monitor needs --listen ADDR:PORT (HeartbeatListen) or --http ADDR:PORT, or both",
          );
        }
      },
    },
    { key: "storage", run: () => settings.storage && requireWritableFolder(settings.storage) },
    {
      key: "receiveBuffer",
      run: () => {
        const unsupported = settings.receiveBuffer ? receiveBufferUnsupported() : undefined;
        if (unsupported) throw new UsageError(`--receive-buffer: ${unsupported}`);
      },
    },
    {
      key: "haproxySockets",
      run: () => {
        if (!settings.haproxySockets?.length !== !settings.haproxyBackends?.length) {
          throw new UsageError(
            "--haproxy-socket and --haproxy-backend go together: where to set weights, and for which backend",
          );
        }
      },
    },
  ];
}

/**
 * The storage file's folder must exist and be writable, or no storage file would ever appear,
 * and safe: not one where any local user could swap the monitor's files.
 */
function requireWritableFolder(file: string): void {
  const folder = dirname(resolve(file));
  let unsafe: string | undefined;
  try {
    const stat = statSync(folder);
    if (!stat.isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
    accessSync(folder, constants.W_OK);
    unsafe = process.platform === "win32" ? undefined : storageFolderProblem(stat.mode);
  } catch (error) {
    throw new UsageError(
      `--storage '${file}': the folder ${folder} cannot take it: ${describeError(error)}`,
    );
  }
  if (unsafe) {
    throw new UsageError(`--storage '${file}': the folder ${folder} is unsafe: ${unsafe}`);
  }
}

/** `heartbeat monitor`: runs until SIGINT or SIGTERM. */
export async function runMonitorCommand(
  settings: Settings,
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { io, clock } = context;
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  await runChecks(requirements(settings));
  const adapter = chooseAdapter(settings);
  const { maxServers } = settings;
  const signatures = settings.keyFile
    ? new SignatureCheck(
      keyFrom(settings.keyFile, logger),
      settings.signatureWindowSeconds,
    )
    : undefined;
  const udp = settings.listen
    ? {
      address: (await resolveDestinations([settings.listen], "--listen"))[0].addresses[0],
      port: settings.listen.port,
      interfaceAddress: settings.interfaceAddress,
      zone: settings.listen.zone,
      receiveBuffer: settings.receiveBuffer || undefined,
    }
    : undefined;
  const where = [
    udp ? `udp ${udp.address}:${udp.port} (${adapter} adapter)` : undefined,
    settings.http
      ? `http ${settings.http.text} (POST ${settings.httpPaths.join(", ")})`
      : undefined,
  ].filter(Boolean).join(", ");
  const signals = context.signals(["SIGINT", "SIGTERM", "SIGHUP", ...UNUSED_BY_MONITOR], logger);
  const stop = new AbortController();
  allowOptimizingJit();
  const running = runMonitor({
    udp,
    http: settings.http,
    httpPaths: settings.httpPaths,
    haproxy: settings.haproxySockets?.length
      ? new HAProxyPush({
        sockets: settings.haproxySockets,
        backends: settings.haproxyBackends ?? [],
        logger,
        now: () => clock.now(),
      })
      : undefined,
    openUdpListener: (await context.adapter(adapter)).openUdpListener,
    storage: settings.storage,
    maxServers,
    allow: settings.allow ?? [],
    signatures,
    print: invocation.print ? io.stdout : undefined,
    logger,
    clock,
    signal: stop.signal,
    // Said once the sockets are bound: a monitor that says it listens, listens.
    onListening: (_monitor, { receiveBuffer }) => {
      logger.info(
        `heartbeat ${VERSION} monitor on ${runtimeVersion()}: listening on ${where}; ` +
          `${
            settings.storage ? `storage ${settings.storage}` : "no storage file"
          }; up to ${maxServers} servers` +
          `${receiveBuffer ? `; receive buffer ${receiveBuffer} bytes` : ""}` +
          `${signatures ? "; signed heartbeats only" : ""}`,
      );
      if (receiveBuffer && settings.receiveBuffer && receiveBuffer < settings.receiveBuffer) {
        logger.warn(
          `HeartbeatReceiveBuffer ${settings.receiveBuffer}: the kernel gave ${receiveBuffer} bytes, ` +
            `its limit (net.core.rmem_max); raise it with sysctl -w net.core.rmem_max=${settings.receiveBuffer}`,
        );
      }
    },
  });
  running.catch(() => stop.abort());
  try {
    const stopped = running.then(() => undefined);
    for (;;) {
      const signal = await Promise.race([signals.next(), stopped]);
      if (signal === "SIGHUP") {
        logger.warn(
          "SIGHUP: the monitor does not reload its configuration; restart it to apply changes",
        );
        continue;
      }
      if (signal && UNUSED_BY_MONITOR.includes(signal)) {
        logger.warn(`${signal}: the monitor does not drain; ignored`);
        continue;
      }
      if (signal) logger.info(`stopping on ${signal}`);
      stop.abort();
      break;
    }
    await running;
    logger.info("stopped");
    return EXIT_OK;
  } catch (error) {
    throw new RuntimeFailure(`cannot listen on ${where}: ${describeError(error)}`);
  } finally {
    signals.close();
  }
}
