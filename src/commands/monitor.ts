/**
 * `heartbeat monitor`: collects heartbeats by UDP and HTTP into mod_heartmonitor's storage file
 * until SIGTERM or SIGINT; other signals are logged and change nothing.
 */
import { closeSync, constants, openSync, statSync, unlinkSync } from "node:fs";
import process from "node:process";
import { dirname, resolve } from "node:path";
import { type Invocation, UsageError } from "../cli.ts";
import { describeError, listenFailure } from "../errors.ts";
import { isMulticast } from "../address.ts";
import { createLogger, type Logger } from "../log.ts";
import { runMonitor } from "../monitor/monitor.ts";
import { monitorOutputs } from "../monitor/outputs/index.ts";
import { storageFolderProblem } from "../monitor/storage.ts";
import { reloadCommandProblem } from "../monitor/outputs/nginx.ts";
import { allowOptimizingJit, runtimeVersion } from "../runtime.ts";
import { type Resolved, rowOf, type SettingNames, type Settings } from "../settings.ts";
import type { SignalName } from "../signals.ts";
import { SignatureCheck } from "../signing.ts";
import { receiveBufferUnsupported } from "../transport/receive-buffer.ts";
import { loadAdapter } from "../transport/index.ts";
import type { AdapterName } from "../transport/transport.ts";
import { VERSION } from "../version.ts";
import {
  type Check,
  chooseAdapter,
  keyFrom,
  requireBindablePort,
  resolveDestinations,
  runChecks,
  RuntimeFailure,
} from "../prerequisites.ts";
import { type CommandContext, EXIT_OK } from "./context.ts";

/** Signals the monitor has no use for: logged, so that a stray one does not stop it. */
const UNUSED_BY_MONITOR: SignalName[] = ["SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN"];

/**
 * What a start of the monitor checks before it opens anything; `-t` runs them all. The start
 * makes the same calls: the requirements first, then the adapter, the lookup and the key, which it
 * keeps.
 */
export function monitorChecks(settings: Settings, names: SettingNames, logger: Logger): Check[] {
  return [
    ...requirements(settings, names),
    { key: "runtimeAdapter", run: () => chooseAdapter(settings, names) },
    { key: "listen", run: () => settings.listen && tryListening(settings, names) },
    {
      key: "http",
      run: () => settings.http && requireBindablePort(settings.http, names("http")),
    },
    { key: "keyFile", run: () => settings.keyFile && keyFrom(settings.keyFile, names, logger) },
  ];
}

/**
 * For `-t`: looks the name up and binds and joins as a start would, on a socket closed at once,
 * so that a name that resolves to nothing, a group no interface routes or a port the user may
 * not bind is said (once) before a start fails on it. Its SO_REUSEADDR lets it share a group's
 * port with a monitor that is running, which still hears every datagram. A unicast address is
 * not bound: there Linux would hand the running monitor's datagrams to the newer socket for as
 * long as it lives, so only what the port needs is checked.
 */
async function tryListening(settings: Settings, names: SettingNames): Promise<void> {
  const listen = settings.listen!;
  const [{ addresses }] = await resolveDestinations([listen], names("listen"));
  if (!isMulticast(addresses[0])) return requireBindablePort(listen, names("listen"));
  let adapter: AdapterName;
  try {
    adapter = chooseAdapter(settings, names);
  } catch {
    return; // an adapter this runtime lacks: the runtimeAdapter check says so, once
  }
  const { openUdpListener } = await loadAdapter(adapter);
  try {
    const listener = await openUdpListener(
      {
        address: addresses[0],
        port: listen.port,
        interfaceAddress: settings.interfaceAddress,
        zone: listen.zone,
      },
      () => {},
    );
    await listener.close();
  } catch (error) {
    throw new UsageError(
      `${names("listen")} '${listen.text}': ${
        listenFailure(error, {
          port: listen.port,
          multicast: true,
          interfaceName: names("interfaceAddress"),
        })
      }`,
    );
  }
}

/** What the settings must say for a monitor to start, that nothing else checks. */
function requirements(settings: Settings, names: SettingNames): Check[] {
  return [
    {
      key: "listen",
      run: () => {
        if (!settings.listen && !settings.http) {
          throw new UsageError(
            `heartbeat monitor needs ${names("listen")} ADDR:PORT (${rowOf("listen").directive}) ` +
              `or ${names("http")} ADDR:PORT, or both`,
          );
        }
      },
    },
    {
      key: "storage",
      run: () => settings.storage && requireWritableFolder(settings.storage, names("storage")),
    },
    // The nginx upstream output (#26): its file's folder, and its reload command.
    {
      key: "nginxUpstream",
      run: () =>
        settings.nginxUpstream &&
        requireWritableFolder(settings.nginxUpstream, names("nginxUpstream")),
    },
    {
      key: "nginxReload",
      run: () => {
        const problem = settings.nginxUpstream && reloadCommandProblem(settings.nginxReload);
        if (problem) {
          throw new UsageError(
            `${names("nginxReload")} '${settings.nginxReload}': ${problem}`,
          );
        }
      },
    },
    {
      key: "receiveBuffer",
      run: () => {
        const unsupported = settings.receiveBuffer ? receiveBufferUnsupported() : undefined;
        if (unsupported) throw new UsageError(`${names("receiveBuffer")}: ${unsupported}`);
      },
    },
    {
      // At the one given, where -t puts the problem.
      key: settings.haproxySockets?.length ? "haproxySockets" : "haproxyBackends",
      run: () => {
        if (!settings.haproxySockets?.length !== !settings.haproxyBackends?.length) {
          throw new UsageError(
            `${names("haproxySockets")} and ${names("haproxyBackends")} go together: ` +
              "where to set weights, and for which backend",
          );
        }
      },
    },
  ];
}

/**
 * The storage file's folder must exist and take a new file, or no storage file would ever appear,
 * and be safe: not one where any local user could swap the monitor's files. Taking a file is
 * tried by making one, named as writeFileAtomic's temporaries (a monitor killed meanwhile leaves
 * nothing a later start keeps): Deno's access(W_OK) judges by the mode bits alone, so it refused
 * root a folder another user owns. `name` is the storage setting's.
 */
function requireWritableFolder(file: string, name: string): void {
  const path = resolve(file);
  const folder = dirname(path);
  const probe = `${path}.tmp.${process.pid}.probe`;
  let unsafe: string | undefined;
  try {
    const stat = statSync(folder);
    if (!stat.isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
    closeSync(openSync(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
    unlinkSync(probe);
    unsafe = process.platform === "win32" ? undefined : storageFolderProblem(stat.mode);
  } catch (error) {
    throw new UsageError(
      `${name} '${file}': the folder ${folder} cannot take it: ${describeError(error)}`,
    );
  }
  if (unsafe) {
    throw new UsageError(`${name} '${file}': the folder ${folder} is unsafe: ${unsafe}`);
  }
}

/** `heartbeat monitor`: runs until SIGINT or SIGTERM. */
export async function runMonitorCommand(
  { settings, names }: Resolved,
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { io, clock } = context;
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  await runChecks(requirements(settings, names));
  const adapter = chooseAdapter(settings, names);
  const { maxServers } = settings;
  const signatures = settings.keyFile
    ? new SignatureCheck(
      keyFrom(settings.keyFile, names, logger),
      settings.signatureWindowSeconds,
      Math.floor(Date.now() / 1000),
    )
    : undefined;
  const udp = settings.listen
    ? {
      address: (await resolveDestinations([settings.listen], names("listen")))[0].addresses[0],
      port: settings.listen.port,
      interfaceAddress: settings.interfaceAddress,
      zone: settings.listen.zone,
      receiveBuffer: settings.receiveBuffer || undefined,
    }
    : undefined;
  const udpWhere = udp ? `udp ${udp.address}:${udp.port} (${adapter} adapter)` : undefined;
  const httpWhere = settings.http
    ? `http ${settings.http.text} (POST ${settings.httpPaths.join(", ")})`
    : undefined;
  const where = [udpWhere, httpWhere].filter(Boolean).join(", ");
  // Which listener failed, so that the message names that one only.
  const { openUdpListener } = await context.adapter(adapter);
  let udpFailed: string | undefined;
  const signals = context.signals(["SIGINT", "SIGTERM", "SIGHUP", ...UNUSED_BY_MONITOR], logger);
  const stop = new AbortController();
  const { outputs, restore } = monitorOutputs(settings, names, logger, clock);
  allowOptimizingJit();
  const running = runMonitor({
    names,
    udp,
    http: settings.http,
    httpPaths: settings.httpPaths,
    outputs,
    restore,
    openUdpListener: (options, onDatagram) =>
      openUdpListener(options, onDatagram).catch((error) => {
        udpFailed = listenFailure(
          error,
          isMulticast(options.address)
            ? { port: options.port, multicast: true, interfaceName: names("interfaceAddress") }
            : { port: options.port, multicast: false },
        );
        throw error;
      }),
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
          `${settings.nginxUpstream ? `; nginx upstream ${settings.nginxUpstream}` : ""}` +
          `${receiveBuffer ? `; receive buffer ${receiveBuffer} bytes` : ""}` +
          `${signatures ? "; signed heartbeats only" : ""}`,
      );
      if (receiveBuffer && settings.receiveBuffer && receiveBuffer < settings.receiveBuffer) {
        logger.warn(
          `${
            names("receiveBuffer")
          } ${settings.receiveBuffer}: the kernel gave ${receiveBuffer} bytes, ` +
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
    if (udpFailed) throw new RuntimeFailure(`cannot listen on ${udpWhere}: ${udpFailed}`);
    const failed = settings.http
      ? `${httpWhere}: ${listenFailure(error, { port: settings.http.port, multicast: false })}`
      : `${where}: ${describeError(error)}`;
    throw new RuntimeFailure(`cannot listen on ${failed}`);
  } finally {
    signals.close();
  }
}
