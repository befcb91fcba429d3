/** `static`: fixed numbers given on the command line, for testing or a server of fixed size. */
import { invalidCount } from "../codec.ts";
import { SourceConfigError, type SourceDefinition } from "./source.ts";

export const staticSource: SourceDefinition = {
  summary: "fixed numbers: --ready N [--busy M] (busy defaults to 0)",
  create(argument, settings) {
    const { names } = settings;
    if (argument !== undefined) {
      throw new SourceConfigError(
        `${names("source")} static takes no argument, got 'static:${argument}'`,
      );
    }
    if (settings.ready === undefined) {
      throw new SourceConfigError(
        `${names("source")} static needs ${names("ready")} N (and ${names("busy")} M, default 0)`,
      );
    }
    const load = { ready: settings.ready, busy: settings.busy ?? 0 };
    const problem = invalidCount(names("ready"), load.ready) ??
      invalidCount(names("busy"), load.busy);
    if (problem) throw new SourceConfigError(problem);
    return {
      description: `static ready=${load.ready} busy=${load.busy}`,
      read: () => Promise.resolve({ ...load }),
    };
  },
};
