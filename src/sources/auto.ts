/**
 * `auto`, the default: the first source that works here. static when --ready is given; else
 * Apache if its status page answers; else, with --capacity, nginx if its status page answers;
 * else a PHP-FPM pool if its status page answers on the default port; else, with --capacity,
 * the tcp source if something listens.
 */
import { describeError } from "../errors.ts";
import { APACHE_DEFAULT_URL, apacheSource } from "./apache.ts";
import { NGINX_DEFAULT_URL, nginxSource } from "./nginx.ts";
import { PHP_FPM_DEFAULT_URI, phpFpmSource } from "./php-fpm.ts";
import {
  type Source,
  SourceConfigError,
  type SourceDefinition,
  type SourceSettings,
} from "./source.ts";
import { staticSource } from "./static.ts";
import { tcpSource } from "./tcp.ts";

/** How long each candidate may take to answer at startup. */
const PROBE_TIMEOUT_MS = 1000;

export const autoSource: SourceDefinition = {
  summary:
    "the default: static with --ready, else apache, nginx (with --capacity) or php-fpm if it answers, else tcp with --capacity",
  async create(argument, settings) {
    if (argument !== undefined) {
      throw new SourceConfigError(
        `${settings.names("source")} auto takes no argument, got 'auto:${argument}'`,
      );
    }
    if (settings.ready !== undefined) {
      return {
        ...await staticSource.create(undefined, settings),
        chosenBecause: `${settings.names("ready")} was given`,
      };
    }
    const tried: string[] = [];
    const candidates: [string, string, SourceDefinition][] = [
      ["apache", `${APACHE_DEFAULT_URL} answers with a scoreboard`, apacheSource],
    ];
    if (settings.capacity !== undefined) {
      candidates.push(["nginx", `${NGINX_DEFAULT_URL} answers`, nginxSource]);
    }
    candidates.push(["php-fpm", `${PHP_FPM_DEFAULT_URI} answers`, phpFpmSource]);
    if (settings.capacity !== undefined) {
      candidates.push(["tcp", "something listens on TCP", tcpSource]);
    }
    for (const [name, because, definition] of candidates) {
      const found = await working(name, definition, settings, tried);
      if (found) return { ...found, chosenBecause: because };
    }
    const [ready, capacity] = [settings.names("ready"), settings.names("capacity")];
    if (settings.capacity === undefined) tried.push(`nginx, tcp: need ${capacity} N`);
    throw new SourceConfigError(
      `no load source found (tried ${tried.join("; ")}). Choose one with ${
        settings.names("source")
      }: ` +
        `static ${ready} N, apache[:URL], nginx[:URL] ${capacity} N, php-fpm[:URI], ` +
        `tcp[:PORTS] ${capacity} N, exec:COMMAND or file:PATH`,
    );
  },
};

async function working(
  name: string,
  definition: SourceDefinition,
  settings: SourceSettings,
  tried: string[],
): Promise<Source | undefined> {
  let source: Source | undefined;
  try {
    source = await definition.create(undefined, settings);
    await source.read(AbortSignal.timeout(PROBE_TIMEOUT_MS));
    return source;
  } catch (error) {
    // What was tried, where: `apache http://127.0.0.1/server-status?auto: connection refused`.
    tried.push(`${source?.description ?? name}: ${describeError(error)}`);
    return undefined;
  }
}
