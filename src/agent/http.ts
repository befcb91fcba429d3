/**
 * The agent's HTTP side (`--http ADDR:PORT`): GET /healthz, 200 while heartbeats get out, 503
 * with the reason otherwise (for Kubernetes probes and container health checks), and GET
 * /metrics in Prometheus' format, and GET / its status page (src/agent/page.ts). Answered from AgentStatus: asking costs the heartbeats nothing.
 */
import { type ConnectionLimits, limitConnections } from "../connection-limits.ts";
import { listen, reply } from "../listen.ts";
import type { Server } from "node:http";
import { agentMetrics, type AgentStatus } from "./status.ts";
import { agentPage } from "./page.ts";
import { PAGE_PATHS } from "../page.ts";

export async function serveAgentHttp(
  address: { host: string; port: number },
  status: AgentStatus,
  build: Record<string, string>,
  limits: ConnectionLimits,
): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("Allow", "GET, HEAD");
      return reply(response, 405, "Method Not Allowed\n");
    }
    if (path === "/healthz") {
      const { healthy, reason } = status.health();
      return reply(response, healthy ? 200 : 503, `${reason}\n`);
    }
    if (path === "/metrics") {
      return reply(response, 200, agentMetrics(status, build), {
        "Content-Type": "text/plain; version=0.0.4",
      });
    }
    if (PAGE_PATHS.includes(path)) {
      const { status: code, body, headers } = agentPage(path, status);
      return reply(response, code, body, headers);
    }
    reply(response, 404, "Not Found: GET / (the status page), /healthz, /metrics\n");
  });
  limitConnections(server, limits);
  const port = await listen(server, address);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
