/** `file:PATH`: a file the application keeps up to date, in the exec source's formats. */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { parseLoadText } from "./load-text.ts";
import { SourceConfigError, type SourceDefinition } from "./source.ts";

/** A file not written for this long describes a server that may no longer exist. */
export const DEFAULT_MAX_AGE_SECONDS = 10;
const MAX_FILE_BYTES = 64 * 1024;

export const fileSource: SourceDefinition = {
  summary:
    `a file holding ready=N&busy=M or JSON; stale after --max-age (default ${DEFAULT_MAX_AGE_SECONDS} s)`,
  create(argument, settings) {
    if (!argument) {
      throw new SourceConfigError(
        `${settings.names("source")} file:PATH needs a path, e.g. file:/run/myapp/load`,
      );
    }
    const maxAge = settings.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
    return {
      description: `file ${argument}`,
      read: async () => {
        // O_NONBLOCK, and regular files only: a FIFO at the path would otherwise block the read,
        // and with it every heartbeat after, for as long as nobody writes to it.
        const file = await open(argument, constants.O_RDONLY | constants.O_NONBLOCK);
        try {
          const info = await file.stat();
          if (!info.isFile()) throw new Error(`${argument} is not a regular file`);
          if (info.size > MAX_FILE_BYTES) {
            throw new Error(`${argument} is ${info.size} bytes: too large to be a load report`);
          }
          const age = (Date.now() - info.mtimeMs) / 1000;
          if (age > maxAge) {
            throw new Error(
              `${argument} was last written ${Math.round(age)} s ago (more than ${
                settings.names("maxAgeSeconds")
              } ${maxAge})`,
            );
          }
          return parseLoadText(await file.readFile("utf8"));
        } finally {
          await file.close();
        }
      },
    };
  },
};
