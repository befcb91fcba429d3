/**
 * The agent (`heartbeat` with no command word): sends a heartbeat every interval until SIGTERM
 * or SIGINT, then a farewell ready=0; rereads its configuration on SIGHUP, keeping the running
 * one when the new one is broken; drains and undrains on the signals signals.ts names.
 */
import { type Agent, createAgent } from "../agent/heartbeat.ts";
import { openListeners } from "../agent/listeners.ts";
import { beatOnce } from "../agent/once.ts";
import { DRAIN_REPEAT_MS, rampShare, watchDrainFile } from "../agent/shaping.ts";
import { AgentStatus } from "../agent/status.ts";
import type { Invocation } from "../cli.ts";
import { describeError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { type AgentParts, buildAgent } from "../senders/build.ts";
import type { Resolved } from "../settings.ts";
import { drainSignals } from "../signals.ts";
import { type CommandContext, EXIT_FAILURE, EXIT_OK } from "./context.ts";

/**
 * Runs the agent with `resolved` until a signal stops it, with what `load` reads on SIGHUP;
 * resolves to the exit status.
 */
export async function runAgent(
  resolved: Resolved,
  load: () => Resolved,
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const { drain, undrain } = drainSignals();
  // Listened for before the start's slow part (a source that probes, a name to look up): a drain
  // or a stop then waits for the agent to act on it, where on Bun its default action would kill
  // the process. --once acts on none.
  const signals = invocation.once ? undefined : context.signals(
    ["SIGINT", "SIGTERM", "SIGHUP", ...drain, ...undrain],
    createLogger({ level: resolved.settings.logLevel, write: context.io.stderr }),
  );
  let active: AgentParts;
  try {
    active = await buildAgent(resolved, { dryRun: invocation.dryRun }, context);
  } catch (error) {
    signals?.close();
    throw error;
  }
  if (!signals) {
    try {
      return await beatOnce(active, invocation.dryRun, context.io.stdout) ? EXIT_OK : EXIT_FAILURE;
    } finally {
      await active.close();
    }
  }
  // For those who ask (HAProxy's agent-check, /healthz, /metrics), across reloads.
  const status = new AgentStatus({
    now: () => context.clock.now(),
    intervalMs: () => active.settings.intervalSeconds * 1000,
    draining: () => active.lasting.drain.draining(active.settings.drainFile),
    sources: () => active.sources.readings(),
    ramp: () =>
      rampShare({
        rampUpSeconds: active.settings.rampUpSeconds,
        startedAt: active.lasting.startedAt,
        resumedAt: () => active.lasting.drain.resumedAt(),
        now: () => context.clock.now(),
      }),
  });
  const services = await openListeners(
    active.settings,
    status,
    active.logger,
    () => context.clock.now(),
  );
  // Ends every drain-file watch at once, whatever happens (a start's watch ends with its run).
  const watching = new AbortController();
  let watchingDrainFile = Promise.resolve();
  try {
    let running = start(active, status);
    // A drain or its end is said at once, not at the next tick: every second counts while the
    // proxies drop it. A drain's second announcement follows soon too, so that the balancer's
    // 10 s of silence start counting almost at once (the next tick, if it comes first, makes it
    // the second).
    const sayAtOnce = (draining: boolean) => {
      const { agent, stopped } = running;
      void agent.beat().then(async () => {
        if (!draining) return;
        await context.clock.sleep(DRAIN_REPEAT_MS, stopped);
        if (!stopped.aborted) await agent.beat();
      });
    };
    // The drain file is looked for between ticks too, for as long as a run lasts.
    const watchFile = () =>
      watchDrainFile(
        active.settings.drainFile,
        context.clock,
        AbortSignal.any([running.stopped, watching.signal]),
        sayAtOnce,
      );
    watchingDrainFile = watchFile();
    for (;;) {
      const signal = await signals.next();
      if (drain.includes(signal) || undrain.includes(signal)) {
        const draining = drain.includes(signal);
        active.lasting.drain.set(draining, signal);
        sayAtOnce(draining);
        continue;
      }
      if (signal !== "SIGHUP") {
        active.logger.info(`stopping on ${signal}: telling the proxies ready=0`);
        watching.abort(); // nothing after the farewell
        await running.stop();
        await running.agent.farewell();
        break;
      }
      const next = await reload(load, invocation, context, active);
      if (next) {
        for (const key of ["agentCheck", "http"] as const) {
          if (next.settings[key]?.text !== active.settings[key]?.text) {
            next.logger.warn(`reload: ${next.names(key)} changes at a restart only`);
          }
        }
        await running.stop();
        await watchingDrainFile;
        await active.close();
        active = next;
        running = start(active, status);
        watchingDrainFile = watchFile();
      }
    }
    active.logger.info("stopped");
    return EXIT_OK;
  } finally {
    watching.abort();
    await watchingDrainFile;
    signals.close();
    await Promise.all(services.map((service) => service.close()));
    await active.close();
  }
}

/** Starts the agent; `stop` stops it after the heartbeat under way. */
function start(
  { settings, logger, options, startup }: AgentParts,
  status: AgentStatus,
): { agent: Agent; stopped: AbortSignal; stop(): Promise<void> } {
  if (settings.intervalSeconds >= 10) {
    logger.warn(
      `interval ${settings.intervalSeconds} s: mod_lbmethod_heartbeat ignores servers ` +
        "silent for 10 s, so this server will drop out of the balancer between heartbeats",
    );
  }
  logger.info(startup);
  const abort = new AbortController();
  const agent = createAgent({ ...options, status, signal: abort.signal });
  const running = agent.run();
  return {
    agent,
    stopped: abort.signal,
    stop: async () => {
      abort.abort();
      await running;
    },
  };
}

/** The configuration read again, ready to run; undefined, with the reason logged, if it is broken. */
async function reload(
  load: () => Resolved,
  invocation: Invocation,
  context: CommandContext,
  running: AgentParts,
): Promise<AgentParts | undefined> {
  const { logger } = running;
  logger.info("SIGHUP: reading the configuration again");
  const keeping = "the running configuration is kept";
  // Whatever goes wrong while reading or preparing, the running agent goes on.
  try {
    const resolved = load();
    if (resolved.problems.length) {
      resolved.problems.forEach((problem) => logger.error(`reload: ${problem}`));
      logger.error(`reload failed: ${keeping}`);
      return undefined;
    }
    return await buildAgent(
      resolved,
      { dryRun: invocation.dryRun, lasting: running.lasting },
      context,
    );
  } catch (error) {
    logger.error(`reload failed: ${describeError(error)}; ${keeping}`);
    return undefined;
  }
}
