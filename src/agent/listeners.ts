/**
 * Where the agent is asked rather than telling: HAProxy's agent-check (agent-check.ts) and /healthz
 * and /metrics (http.ts), each opened when the settings ask for it, behind its connection bounds,
 * and answered from one AgentStatus.
 */
import { RuntimeFailure } from "../prerequisites.ts";
import {
  AGENT_CHECK_BOUNDS,
  type ConnectionBounds,
  ConnectionLimits,
  HTTP_BOUNDS,
} from "../connection-limits.ts";
import { listenFailure } from "../errors.ts";
import { type Logger, ProblemLog } from "../log.ts";
import { runtimeVersion } from "../runtime.ts";
import type { AddressSetting, Settings } from "../settings.ts";
import { bakedBuild, VERSION } from "../version.ts";
import { serveAgentCheck } from "./agent-check.ts";
import { serveAgentHttp } from "./http.ts";
import type { AgentStatus, Listener } from "./status.ts";

/** The agent-check and HTTP servers the settings ask for, open. */
export async function openListeners(
  settings: Settings,
  status: AgentStatus,
  logger: Logger,
  now: () => number,
): Promise<{ close(): Promise<void> }[]> {
  const problems = new ProblemLog(logger, { now });
  const limits = (listener: Listener, bounds: ConnectionBounds) =>
    new ConnectionLimits(bounds, (reason, address, detail) => {
      status.connectionsRefused[listener][reason]++;
      problems.fail(
        `${listener} ${reason}`,
        `${listener}: refused a connection from ${address} (${detail}): ${reason}`,
      );
    });
  const services: { close(): Promise<void> }[] = [];
  const open = async (
    what: string,
    address: AddressSetting,
    opening: () => Promise<{ port: number; close(): Promise<void> }>,
  ) => {
    try {
      const service = await opening();
      services.push(service);
      logger.info(`${what} on ${address.host}:${service.port}`);
    } catch (error) {
      await Promise.all(services.map((service) => service.close()));
      throw new RuntimeFailure(
        `cannot listen on ${address.text} for ${what}: ${
          listenFailure(error, { port: address.port, multicast: false })
        }`,
      );
    }
  };
  if (settings.agentCheck) {
    await open(
      "HAProxy agent-check",
      settings.agentCheck,
      () =>
        serveAgentCheck(settings.agentCheck!, status, limits("agent-check", AGENT_CHECK_BOUNDS)),
    );
  }
  if (settings.http) {
    const build = Object.fromEntries(
      Object.entries({ version: VERSION, ...bakedBuild(), runtime: runtimeVersion() })
        .filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    await open(
      "the status page, /healthz and /metrics",
      settings.http,
      () => serveAgentHttp(settings.http!, status, build, limits("http", HTTP_BOUNDS)),
    );
  }
  return services;
}
