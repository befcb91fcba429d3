/**
 * The agent: every interval, read the load and send one heartbeat to every destination.
 * Its promise is to send truthful data or nothing: a source that fails, hangs or returns
 * nonsense means no heartbeat that tick, and the proxy ages this server out as if it were down.
 */
import { formatHeartbeat, type Load } from "../codec.ts";
import { describeError } from "../errors.ts";
import { type Logger, ProblemLog } from "../log.ts";
import { type Clock, runEvery } from "../scheduler.ts";
import type { Source } from "../sources/source.ts";
import type { Sender } from "../senders/sender.ts";
import type { AgentStatus } from "./status.ts";

export interface AgentOptions {
  /** One per destination: every heartbeat goes to each. */
  senders: Sender[];
  source: Source;
  /** Added to each heartbeat as `port=P` when set. */
  port?: number;
  intervalMs: number;
  logger: Logger;
  clock: Clock;
  /** Aborting it stops the agent after the heartbeat under way. */
  signal: AbortSignal;
  /** Adjusts each reading before it is sent (drain, ramp-up, minimum busy); undefined: send nothing. */
  shape?: (load: Load) => Load | undefined;
  /** Told of each reading and send, for agent-check, /healthz and /metrics. */
  status?: AgentStatus;
}

/** Share of the interval a source may take to answer: the rest is left for sending. */
export const READ_BUDGET = 0.75;

export interface Agent {
  /** Reads the load and sends one heartbeat; true only if it reached every destination. */
  beat(): Promise<boolean>;
  /** Sends `ready=0` (with the last busy count) everywhere, so proxies stop routing here at once. */
  farewell(): Promise<boolean>;
  /** Sends heartbeats on schedule until `signal` aborts. */
  run(): Promise<void>;
}

export function createAgent(options: AgentOptions): Agent {
  const { senders, source, logger, clock } = options;
  const problems = new ProblemLog(logger, { now: () => clock.now() });
  const encoder = new TextEncoder();
  const readTimeoutMs = options.intervalMs * READ_BUDGET;
  let lastBusy = 0;

  const send = async (message: string): Promise<boolean> => {
    logger.debug(`heartbeat ${message}`);
    const payload = encoder.encode(message);
    const results = await Promise.all(senders.map(async (sender) => {
      const key = `send ${sender.name}`;
      try {
        await sender.send(payload);
        problems.ok(key, `${key} works again`);
        options.status?.sent(sender.name, true);
        return true;
      } catch (error) {
        problems.fail(key, `${key} failed: ${describeError(error)}`);
        options.status?.sent(sender.name, false);
        return false;
      }
    }));
    const all = results.every(Boolean);
    if (all) options.status?.delivered();
    return all;
  };

  const beat = async (): Promise<boolean> => {
    let message: string | undefined;
    try {
      const read = await readWithin(source, readTimeoutMs, clock, options.signal);
      const load = options.shape ? options.shape(read) : read;
      lastBusy = load?.busy ?? read.busy;
      message = load && formatHeartbeat({ ...load, port: options.port });
      options.status?.read(load);
    } catch (error) {
      problems.fail("source", `no heartbeat sent: ${source.description}: ${describeError(error)}`);
      options.status?.sourceFailed(describeError(error));
      return false;
    }
    problems.ok("source", `${source.description} answers again; heartbeats resumed`);
    // A drain gone silent: nothing to send, and nothing has failed.
    return message === undefined ? true : await send(message);
  };

  return {
    beat,
    farewell: () => send(formatHeartbeat({ ready: 0, busy: lastBusy, port: options.port })),
    run: () =>
      runEvery(() => beat().then(() => undefined), {
        intervalMs: options.intervalMs,
        clock,
        signal: options.signal,
        onSkipped: (count) =>
          logger.warn(`skipped ${count} heartbeat(s): the previous one overran its interval`),
      }),
  };
}

/**
 * Why a read's deadline is cancelled when the read is over: made once, since building an Error
 * (its stack trace) every heartbeat cost the compiled agent as much CPU as sending it.
 */
const READ_FINISHED = new Error("read finished");

/** The source's answer, or a rejection once `timeoutMs` has passed, whether or not it listens. */
async function readWithin(
  source: Source,
  timeoutMs: number,
  clock: Clock,
  stop: AbortSignal,
): Promise<Load> {
  const deadline = new AbortController();
  const abortOnStop = () => deadline.abort(new Error("stopping"));
  stop.addEventListener("abort", abortOnStop, { once: true });
  const timeout = clock.sleep(timeoutMs, deadline.signal).then(() => {
    // Ended early because the read did: the race is over, and no Error is built for nothing.
    if (deadline.signal.reason === READ_FINISHED) return READ_FINISHED as never;
    throw new Error(`no answer within ${Math.round(timeoutMs)} ms`);
  });
  try {
    return await Promise.race([source.read(deadline.signal), timeout]);
  } finally {
    deadline.abort(READ_FINISHED);
    stop.removeEventListener("abort", abortOnStop);
    timeout.catch(() => {});
  }
}
