/**
 * The monitor's status page (`GET /` on --http): every server heard, with its ready and busy, how
 * long ago, whether it drains, how it was heard, the share of new requests mod_lbmethod_heartbeat
 * would give it and its ready over the last 5 minutes; and the monitor's own counters.
 */
import { type PageAnswer, pageAnswer, pageScript, type RenderTools, Ring } from "../page.ts";
import { BALANCER_MAX_LASTSEEN, balancerShares } from "./balancer.ts";
import { storedServer } from "./storage.ts";
import type { ServerEntry, Via } from "./table.ts";

/** A sparkline's samples: one every HISTORY_STEP_MS (the last ready heard in it), 5 minutes' worth. */
export const HISTORY_STEP_MS = 5_000;
export const HISTORY_SLOTS = 60;

/**
 * Each server's ready over the last 5 minutes (how it came is in its table entry). Fixed memory per
 * server (HISTORY_SLOTS numbers), dropped with the server: it holds the table's servers and no
 * others, however many come and go.
 */
export class ServerHistory {
  readonly #servers = new Map<string, { ready: Ring; bucket: number }>();

  /** Each tick, after silent servers are dropped from the table: samples `entries`, forgets the rest. */
  update(entries: readonly ServerEntry[], now: number): void {
    const bucket = Math.floor(now / HISTORY_STEP_MS);
    const kept = new Set<string>();
    for (const entry of entries) {
      kept.add(entry.ip);
      let server = this.#servers.get(entry.ip);
      if (!server) this.#servers.set(entry.ip, server = { ready: new Ring(HISTORY_SLOTS), bucket });
      else if (server.bucket === bucket) {
        server.ready.replaceLast(entry.ready);
        continue;
      }
      server.bucket = bucket;
      server.ready.push(entry.ready);
    }
    for (const ip of this.#servers.keys()) if (!kept.has(ip)) this.#servers.delete(ip);
  }

  /** Servers followed: never more than the table holds. */
  get size(): number {
    return this.#servers.size;
  }

  /** `ip`'s ready, one a HISTORY_STEP_MS, oldest first. */
  of(ip: string): number[] {
    return this.#servers.get(ip)?.ready.values() ?? [];
  }
}

/** What the page is made of: the monitor's table and counters as it sees them now. */
export interface MonitorView {
  entries: readonly ServerEntry[];
  now: number;
  history: ServerHistory;
  /** Whether a heartbeat needs a valid signature to be accepted (--key-file). */
  signed: boolean;
  accepted: Record<Via, number>;
  rejected: ReadonlyMap<string, number>;
  /** What each output (src/monitor/outputs/) has done, labelled. */
  outputs: Record<string, number | string>;
}

export interface ServerStatus {
  ip: string;
  port: number;
  ready: number;
  busy: number;
  lastSeenMs: number;
  /** ready=0: what a drain advertises; the balancer sends it no new request. */
  draining: boolean;
  signed: boolean;
  /** udp or http; none for a server restored from the storage file and not heard since. */
  via?: Via;
  /** Heard within BALANCER_MAX_LASTSEEN: the balancer draws among it. */
  up: boolean;
  /** The fraction of new requests mod_lbmethod_heartbeat would give it, 0 to 1. */
  share: number;
  /** Its ready, one a HISTORY_STEP_MS, oldest first. */
  history: number[];
}

/** GET /status.json */
export interface MonitorStatus {
  servers: ServerStatus[];
  accepted: Record<string, number>;
  rejected: Record<string, number>;
  outputs: Record<string, number | string>;
  /** For the page: when the balancer stops using a server, in ms. */
  balancerMaxLastSeenMs: number;
  historyStepMs: number;
}

export function monitorStatus(view: MonitorView): MonitorStatus {
  const ages = view.entries.map((entry) => view.now - entry.lastSeen);
  const shares = balancerShares(view.entries.map((entry) => storedServer(entry, view.now)));
  return {
    servers: view.entries.map((entry, i) => {
      return {
        ip: entry.ip,
        port: entry.port,
        ready: entry.ready,
        busy: entry.busy,
        lastSeenMs: ages[i],
        draining: entry.ready === 0,
        signed: view.signed,
        via: entry.via,
        up: shares[i].up,
        share: shares[i].share,
        history: view.history.of(entry.ip),
      };
    }),
    accepted: view.accepted,
    rejected: Object.fromEntries(view.rejected),
    outputs: view.outputs,
    balancerMaxLastSeenMs: BALANCER_MAX_LASTSEEN * 1000,
    historyStepMs: HISTORY_STEP_MS,
  };
}

/**
 * The page's content from its data; run on the server and, as its source, in the browser (see
 * src/page.ts): self-contained, it uses nothing but its parameters.
 */
export function renderMonitor<N>(data: MonitorStatus, { h, spark }: RenderTools<N>): N {
  const seconds = (ms: number) => `${Math.floor(ms / 1000)} s`;
  const percent = (share: number) => `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)} %`;
  const biggest = Math.max(1, ...data.servers.map((server) => server.ready + server.busy));
  const bar = (ready: number, busy: number) => {
    const width = (slots: number) => Math.round(slots * 120 / biggest * 10) / 10;
    return h(
      "svg",
      { class: "bar", width: 120, height: 10, viewBox: "0 0 120 10" },
      h("rect", { class: "empty", x: 0, y: 0, width: 120, height: 10 }),
      h("rect", { class: "busy", x: 0, y: 0, width: width(busy), height: 10 }),
      h("rect", { class: "ready", x: width(busy), y: 0, width: width(ready), height: 10 }),
    );
  };
  const cell = (className: string, ...content: (N | string)[]) =>
    h("td", className ? { class: className } : {}, ...content);
  const rows = data.servers.map((server) =>
    h(
      "tr",
      {
        class: [server.up ? "" : "old", server.draining ? "draining" : ""].join(" ").trim(),
        "data-ip": server.ip,
      },
      cell("address", `${server.ip}:${server.port}`),
      cell("number ready", String(server.ready)),
      cell("number busy", String(server.busy)),
      cell("", bar(server.ready, server.busy)),
      cell("number lastseen", seconds(server.lastSeenMs)),
      cell("state", server.draining ? "draining" : server.up ? "up" : "not used"),
      cell("", server.signed ? "signed" : "unsigned"),
      cell("via", server.via ?? "restored"),
      cell("number share", percent(server.share)),
      cell(
        "",
        h(
          "svg",
          { class: "spark", width: 120, height: 24, viewBox: "0 0 120 24" },
          h("polyline", { class: "ready", points: spark(server.history, 120, 24) }),
        ),
      ),
    )
  );
  const heads = [
    ["address", ""],
    ["ready", "number"],
    ["busy", "number"],
    ["busy | ready", ""],
    ["last seen", "number"],
    ["state", ""],
    ["signature", ""],
    ["via", ""],
    ["share", "number"],
    ["ready, 5 min", ""],
  ];
  const counters: [string, string][] = [
    ...Object.entries(data.accepted).map(([via, count]): [string, string] => [
      `accepted by ${via}`,
      String(count),
    ]),
    ...Object.entries(data.rejected).map(([reason, count]): [string, string] => [
      `rejected: ${reason}`,
      String(count),
    ]),
    ...Object.entries(data.outputs).map(([what, value]): [string, string] => [
      what,
      String(value),
    ]),
  ];
  return h(
    "div",
    {},
    h("h2", {}, `Servers heard: ${data.servers.length}`),
    data.servers.length
      ? h(
        "table",
        { id: "servers" },
        h(
          "thead",
          {},
          h("tr", {}, ...heads.map(([name, className]) => h("th", { class: className }, name))),
        ),
        h("tbody", {}, ...rows),
      )
      : h("p", { class: "note" }, "No server heard in the last 30 s."),
    h(
      "p",
      { class: "note" },
      `Greyed: silent for ${
        seconds(data.balancerMaxLastSeenMs)
      } or more, so mod_lbmethod_heartbeat no longer sends it requests. Share: of new requests, ` +
        `as the balancer would draw among these servers in this order. Sparkline: ready, one point ` +
        `every ${seconds(data.historyStepMs)}.`,
    ),
    h("h2", {}, "Monitor"),
    h(
      "dl",
      { id: "counters" },
      ...counters.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
    ),
  );
}

const MONITOR_SCRIPT = pageScript(renderMonitor);

/** The answer to GET `path`, one of PAGE_PATHS. */
export function monitorPage(path: string, view: () => MonitorView): PageAnswer {
  return pageAnswer(path, {
    title: "heartbeat monitor",
    data: () => monitorStatus(view()),
    render: renderMonitor,
    script: MONITOR_SCRIPT,
  });
}
