/**
 * The agent's status page (`GET /` on its --http): the last heartbeat, each destination and
 * whether heartbeats reach it, each source's reading, the drain and the ramp-up, and ready and busy
 * over the last HISTORY_HEARTBEATS heartbeats.
 */
import { type PageAnswer, pageAnswer, pageScript, type RenderTools } from "../page.ts";
import type { AgentStatus } from "./status.ts";

/** GET /status.json */
export interface AgentPageStatus {
  healthy: boolean;
  reason: string;
  /** What the last heartbeat advertised. */
  advertised?: { ready: number; busy: number };
  /** How long ago the source last answered, and the last heartbeat reached every destination. */
  lastReadMs?: number;
  lastDeliveredMs?: number;
  sourceProblem?: string;
  destinations: {
    name: string;
    reached: boolean;
    sent: number;
    failed: number;
    lastSentMs?: number;
  }[];
  sources: { name: string; ready?: number; busy?: number; share?: number; problem?: string }[];
  draining: boolean;
  /** The share of ready advertised, 0 to 1: below 1 while ramping up. */
  ramp: number;
  history: { ready: number[]; busy: number[] };
}

export function agentPageStatus(status: AgentStatus, now: number): AgentPageStatus {
  const age = (at: number | undefined) => at === undefined ? undefined : now - at;
  return {
    ...status.health(),
    advertised: status.advertised && { ...status.advertised },
    lastReadMs: age(status.lastRead),
    lastDeliveredMs: age(status.lastDelivered),
    sourceProblem: status.sourceProblem,
    destinations: [...status.destinations].map(([name, counts]) => ({
      name,
      reached: status.reached(counts),
      sent: counts.sent,
      failed: counts.failed,
      lastSentMs: age(counts.lastSent),
    })),
    sources: status.sources().map((reading) => ({
      name: reading.name,
      ready: reading.load?.ready,
      busy: reading.load?.busy,
      share: reading.share,
      problem: reading.problem,
    })),
    draining: status.draining(),
    ramp: status.ramp(),
    history: { ready: status.history.ready.values(), busy: status.history.busy.values() },
  };
}

/**
 * The page's content from its data; run on the server and, as its source, in the browser (see
 * src/page.ts): self-contained, it uses nothing but its parameters.
 */
export function renderAgent<N>(data: AgentPageStatus, { h, spark }: RenderTools<N>): N {
  const ago = (ms: number | undefined) =>
    ms === undefined ? "never" : `${(ms / 1000).toFixed(1)} s ago`;
  const top = Math.max(1, ...data.history.ready, ...data.history.busy);
  const facts: [string, string | N][] = [
    [
      "health",
      h("span", { class: data.healthy ? "good" : "bad", id: "health" }, data.reason),
    ],
    [
      "last heartbeat",
      data.advertised
        ? `ready=${data.advertised.ready} busy=${data.advertised.busy}, read ${
          ago(data.lastReadMs)
        }, delivered everywhere ${ago(data.lastDeliveredMs)}`
        : "none yet",
    ],
    [
      "drain",
      h(
        "span",
        { class: data.draining ? "bad" : "", id: "drain" },
        data.draining ? "draining: advertising ready=0" : "not draining",
      ),
    ],
    [
      "ramp-up",
      data.ramp < 1 ? `ramping up: ${Math.round(data.ramp * 100)} % of ready` : "none",
    ],
    ...(data.sourceProblem
      ? [["source problem", h("span", { class: "bad" }, data.sourceProblem)]] satisfies [
        string,
        N,
      ][]
      : []),
  ];
  return h(
    "div",
    {},
    h(
      "dl",
      { id: "facts" },
      ...facts.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
    ),
    h(
      "p",
      {},
      h(
        "svg",
        { class: "spark", id: "history", width: 300, height: 40, viewBox: "0 0 300 40" },
        h("polyline", { class: "ready", points: spark(data.history.ready, 300, 40, top) }),
        h("polyline", { class: "busy", points: spark(data.history.busy, 300, 40, top) }),
      ),
      h(
        "span",
        { class: "note" },
        ` ready (green) and busy (orange), last ${data.history.ready.length} heartbeats`,
      ),
    ),
    h("h2", {}, "Destinations"),
    h(
      "table",
      { id: "destinations" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["destination", "reached", "sent", "failed", "last reached"].map((name) =>
            h("th", {}, name)
          ),
        ),
      ),
      h(
        "tbody",
        {},
        ...data.destinations.map((destination) =>
          h(
            "tr",
            {},
            h("td", {}, destination.name),
            h(
              "td",
              { class: destination.reached ? "good" : "bad" },
              destination.reached ? "yes" : "no",
            ),
            h("td", { class: "number" }, String(destination.sent)),
            h("td", { class: "number" }, String(destination.failed)),
            h("td", {}, ago(destination.lastSentMs)),
          )
        ),
      ),
    ),
    h("h2", {}, "Sources"),
    h(
      "table",
      { id: "sources" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["source", "ready", "busy", "free share", "problem"].map((name) => h("th", {}, name)),
        ),
      ),
      h(
        "tbody",
        {},
        ...data.sources.map((source) =>
          h(
            "tr",
            {},
            h("td", {}, source.name),
            h("td", { class: "number" }, source.ready === undefined ? "" : String(source.ready)),
            h("td", { class: "number" }, source.busy === undefined ? "" : String(source.busy)),
            h(
              "td",
              { class: "number" },
              source.share === undefined ? "" : `${Math.round(source.share * 100)} %`,
            ),
            h("td", { class: "bad" }, source.problem ?? ""),
          )
        ),
      ),
    ),
  );
}

const AGENT_SCRIPT = pageScript(renderAgent);

/** The answer to GET `path`, one of PAGE_PATHS. */
export function agentPage(path: string, status: AgentStatus): PageAnswer {
  return pageAnswer(path, {
    title: "heartbeat agent",
    data: () => agentPageStatus(status, status.now()),
    render: renderAgent,
    script: AGENT_SCRIPT,
  });
}
