/** The load sources, by the name `--source NAME[:ARG]` uses. */
import { type Source, SourceConfigError, type SourceDefinition, type SourceSettings } from "./source.ts";
import { staticSource } from "./static.ts";

export const SOURCES: Readonly<Record<string, SourceDefinition>> = {
  static: staticSource,
};

/** Builds the source that `--source` names (`NAME` or `NAME:ARG`). */
export function createSource(spec: string, settings: SourceSettings): Source {
  const colon = spec.indexOf(":");
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const argument = colon < 0 ? undefined : spec.slice(colon + 1);
  const definition = Object.hasOwn(SOURCES, name) ? SOURCES[name] : undefined;
  if (!definition) {
    throw new SourceConfigError(
      `unknown source '${name}'; the sources are: ${Object.keys(SOURCES).join(", ")}`,
    );
  }
  return definition.create(argument, settings);
}
