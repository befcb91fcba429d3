/**
 * Heartbeats POSTed over HTTP, to mod_heartmonitor's `SetHandler heartbeat` location or to
 * `heartbeat monitor --http`: for networks where multicast does not reach the proxy.
 */
import { keepAliveAgent, request } from "../http-request.ts";
import type { Sender } from "./sender.ts";

/** After failures, wait 1, 2, 4 … seconds, at most this long, before trying a destination again. */
const BACKOFF_MAX_MS = 30_000;

export interface HttpSender extends Sender {
  close(): void;
}

/**
 * POSTs each heartbeat to `url` over one kept-alive connection, with `timeoutMs` to answer.
 * Anything but `200` with `OK` is a failure; after one, the destination is not tried again for
 * a while (1 s, doubling to 30 s), so a proxy that is down is not hammered every interval.
 */
export function createHttpSender(
  url: URL,
  options: { timeoutMs: number; now: () => number },
): HttpSender {
  const agent = keepAliveAgent(url);
  let failures = 0;
  let retryAt = 0;
  return {
    name: url.href,
    async send(payload) {
      const now = options.now();
      if (now < retryAt) {
        throw new Error(
          `not tried for ${Math.ceil((retryAt - now) / 1000)} s more, after ${failures} failure(s)`,
        );
      }
      try {
        const response = await request(url, {
          method: "POST",
          body: payload,
          headers: {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": payload.length,
          },
          agent: await agent,
          signal: AbortSignal.timeout(options.timeoutMs),
          maxBodyBytes: 4096,
        });
        if (response.status !== 200 || response.body.trim() !== "OK") {
          const said = response.body.trim().split("\n")[0].slice(0, 80);
          throw new Error(
            `answered ${response.status} ${response.statusText}${said ? `: ${said}` : ""}`.trim(),
          );
        }
        failures = 0;
        retryAt = 0;
      } catch (error) {
        failures++;
        retryAt = options.now() + Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (failures - 1));
        throw error;
      }
    },
    close() {
      void agent.then((pool) => pool.destroy());
    },
  };
}
