/**
 * `apache[:URL]`: Apache httpd's own numbers, from mod_status's machine-readable page
 * (`/server-status?auto`), counted by mod_heartbeat's rules.
 */
import type { Load } from "../codec.ts";
import { httpGet, statusUrl } from "./status-page.ts";
import type { SourceDefinition } from "./source.ts";

export const APACHE_DEFAULT_URL = "http://127.0.0.1/server-status?auto";

/**
 * Scoreboard slot states (mod_status's key): `_` waiting for a connection, `S` starting, `R`
 * reading, `W` sending a reply, `K` keepalive, `D` DNS lookup, `C` closing, `L` logging, `G`
 * gracefully finishing, `I` idle cleanup, `.` open slot with no process.
 */
const SCOREBOARD = /^Scoreboard: ([_SRWKDCLGI.]*)\s*$/m;

/**
 * ready and busy from a `?auto` page, as mod_heartbeat counts the scoreboard: ready is `_`;
 * busy is every slot that is not ready, open (`.`), starting (`S`) or in idle cleanup (`I`).
 * Throws when the page has no scoreboard.
 */
export function parseApacheStatus(text: string): Load {
  const scoreboard = SCOREBOARD.exec(text)?.[1];
  if (scoreboard === undefined) {
    throw new Error(
      /^Scoreboard:/m.test(text)
        ? "the Scoreboard: line has characters mod_status does not use"
        : "no Scoreboard: line: is this mod_status's ?auto page?",
    );
  }
  let ready = 0;
  let busy = 0;
  for (const slot of scoreboard) {
    if (slot === "_") ready++;
    else if (slot !== "." && slot !== "S" && slot !== "I") busy++;
  }
  return { ready, busy };
}

/**
 * The load without our own scrape: the worker answering it shows as busy (`W`), where
 * mod_heartbeat, counting from inside, would have found it ready.
 */
export function withoutOwnScrape(load: Load): Load {
  return load.busy > 0 ? { ready: load.ready + 1, busy: load.busy - 1 } : load;
}

export const apacheSource: SourceDefinition = {
  summary: `Apache's mod_status scoreboard (default URL ${APACHE_DEFAULT_URL})`,
  create(argument, settings) {
    const url = statusUrl("apache", argument, APACHE_DEFAULT_URL, settings.names);
    return {
      description: `apache ${url.href}`,
      read: async (signal) => withoutOwnScrape(parseApacheStatus(await httpGet(url, signal))),
    };
  },
};
