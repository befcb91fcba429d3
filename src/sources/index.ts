/** The load sources, by the name `--source NAME[:ARG]` uses. */
import { apacheSource } from "./apache.ts";
import { autoSource } from "./auto.ts";
import { cpuSource } from "./cpu.ts";
import { execSource } from "./exec.ts";
import { fileSource } from "./file.ts";
import { nginxSource } from "./nginx.ts";
import { phpFpmSource } from "./php-fpm.ts";
import { pressureSource } from "./pressure.ts";
import {
  type Source,
  SourceConfigError,
  type SourceDefinition,
  type SourceSettings,
} from "./source.ts";
import { staticSource } from "./static.ts";
import { tcpSource } from "./tcp.ts";

export const SOURCES: Readonly<Record<string, SourceDefinition>> = {
  auto: autoSource,
  static: staticSource,
  apache: apacheSource,
  nginx: nginxSource,
  "php-fpm": phpFpmSource,
  tcp: tcpSource,
  exec: execSource,
  file: fileSource,
  cpu: cpuSource,
  pressure: pressureSource,
};

/** Builds the source that `--source` names (`NAME` or `NAME:ARG`). */
export async function createSource(spec: string, settings: SourceSettings): Promise<Source> {
  const colon = spec.indexOf(":");
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const argument = colon < 0 ? undefined : spec.slice(colon + 1);
  const definition = Object.hasOwn(SOURCES, name) ? SOURCES[name] : undefined;
  if (!definition) {
    throw new SourceConfigError(
      `unknown source '${name}'; the sources are: ${Object.keys(SOURCES).join(", ")}`,
    );
  }
  return await definition.create(argument, settings);
}

/** Builds every source `--source` names, in order. */
export async function createSources(
  specs: readonly string[],
  settings: SourceSettings,
): Promise<{ name: string; source: Source }[]> {
  const created = [];
  for (const [item, spec] of specs.entries()) {
    created.push({ name: spec, source: await createListedSource(specs, item, settings) });
  }
  return created;
}

/** Builds the source `specs[item]` names; naming one twice is a mistake. */
export function createListedSource(
  specs: readonly string[],
  item: number,
  settings: SourceSettings,
): Promise<Source> {
  const spec = specs[item];
  if (specs.indexOf(spec) !== item) {
    throw new SourceConfigError(
      `${settings.names("source")} ${spec} is given twice: give each source once`,
    );
  }
  return createSource(spec, settings);
}
