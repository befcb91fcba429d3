/**
 * `heartbeat monitor`: collects heartbeats by UDP and HTTP into mod_heartmonitor's storage file
 * until SIGTERM or SIGINT; other signals are logged and change nothing.
 */
import { type Invocation, UsageError } from "../cli.ts";
import { createLogger } from "../log.ts";
import { runMonitor } from "../monitor/monitor.ts";
import { allowOptimizingJit, runtimeVersion } from "../runtime.ts";
import type { Settings } from "../settings.ts";
import type { SignalName } from "../signals.ts";
import { SignatureCheck } from "../signing.ts";
import { VERSION } from "../version.ts";
import {
  chooseAdapter,
  type CommandContext,
  EXIT_OK,
  keyFrom,
  resolveDestinations,
  RuntimeFailure,
} from "./context.ts";

/** Signals the monitor has no use for: logged, so that a stray one does not stop it. */
const UNUSED_BY_MONITOR: SignalName[] = ["SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN"];

/** `heartbeat monitor`: runs until SIGINT or SIGTERM. */
export async function runMonitorCommand(
  settings: Settings,
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { io, clock } = context;
  if (!settings.listen && !settings.http) {
    throw new UsageError(
      "heartbeat monitor needs --listen ADDR:PORT (HeartbeatListen) or --http ADDR:PORT, or both",
    );
  }
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
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
    }
    : undefined;
  const where = [
    udp ? `udp ${udp.address}:${udp.port} (${adapter} adapter)` : undefined,
    settings.http ? `http ${settings.http.text}` : undefined,
  ].filter(Boolean).join(", ");
  const signals = context.signals(["SIGINT", "SIGTERM", "SIGHUP", ...UNUSED_BY_MONITOR], logger);
  const stop = new AbortController();
  allowOptimizingJit();
  const running = runMonitor({
    udp,
    http: settings.http,
    openUdpListener: (await context.adapter(adapter)).openUdpListener,
    storage: settings.storage,
    maxServers,
    allow: settings.allow ?? [],
    signatures,
    print: invocation.print ? io.stdout : undefined,
    logger,
    clock,
    signal: stop.signal,
  });
  running.catch(() => stop.abort());
  logger.info(
    `heartbeat ${VERSION} monitor on ${runtimeVersion()}: listening on ${where}; ` +
      `${
        settings.storage ? `storage ${settings.storage}` : "no storage file"
      }; up to ${maxServers} servers` +
      `${signatures ? "; signed heartbeats only" : ""}`,
  );
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
    const code = (error as { code?: string }).code;
    throw new RuntimeFailure(
      `cannot listen on ${where}: ${
        code === "EADDRINUSE" ? "the address is in use" : (error as Error).message
      }`,
    );
  } finally {
    signals.close();
  }
}
