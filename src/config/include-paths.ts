/**
 * What an Include names: the file itself, a folder's files (recursively), or a glob's matches, as
 * httpd walks them, with its depth limit and, beyond httpd, a refusal of folders linked into
 * themselves and a cap on the paths walked. Read through ConfigFs, so that it is a pure function
 * of the files.
 */
import { join } from "node:path";

/** The file system a configuration is read through: the disk, or a test's files. */
export interface ConfigFs {
  readFile(path: string): string;
  isDirectory(path: string): boolean;
  exists(path: string): boolean;
  readdir(path: string): string[];
  /** The path with every symbolic link resolved. */
  realpath(path: string): string;
}

/** Apache gives up on includes, and on folders within an included one, nested deeper than this. */
export const MAX_INCLUDE_DEPTH = 128;
/** Files and folders one Include may walk: folders linked into themselves would be endless. */
export const MAX_INCLUDE_PATHS = 10_000;

/** Why an Include is refused before any file it names is read. */
export class IncludeWalkError extends Error {}

/**
 * The files an Include path names: itself, a directory's files (recursively), or glob matches,
 * sorted. Throws IncludeWalkError for a folder reached twice, through a link (to itself or to a
 * folder above it, a loop: Apache would walk it to its depth limit, 128, doubling at each level
 * with two such links), and past MAX_INCLUDE_PATHS files and folders.
 */
export function expandIncludePath(pattern: string, fs: ConfigFs): string[] {
  const segments = pattern.split("/");
  let paths = [pattern.startsWith("/") ? "/" : "."];
  for (const segment of segments) {
    if (segment === "") continue;
    const next: string[] = [];
    for (const base of paths) {
      if (!/[*?[]/.test(segment)) {
        next.push(join(base, segment));
        continue;
      }
      const matcher = globMatcher(segment);
      let entries: string[] = [];
      try {
        entries = fs.readdir(base);
      } catch { /* not a directory: no matches */ }
      next.push(
        ...entries.filter((entry) => !entry.startsWith(".") && matcher.test(entry)).sort().map((
          entry,
        ) => join(base, entry)),
      );
    }
    paths = next;
  }
  const walk: Walk = { fs, paths: 0, folders: new Map() };
  return paths.flatMap((path) => filesUnder(path, walk, 0));
}

interface Walk {
  fs: ConfigFs;
  /** Files and folders looked at so far. */
  paths: number;
  /** The folders walked into, by real path, each with the path it was first reached by. */
  folders: Map<string, string>;
}

/** The files at or under `path`, a folder `depth` below the one included. */
function filesUnder(path: string, walk: Walk, depth: number): string[] {
  const { fs, folders } = walk;
  if (++walk.paths > MAX_INCLUDE_PATHS) {
    throw new IncludeWalkError(`more than ${MAX_INCLUDE_PATHS} files and folders to include`);
  }
  if (!fs.exists(path)) return [];
  if (!fs.isDirectory(path)) return [path];
  if (depth > MAX_INCLUDE_DEPTH) {
    throw new IncludeWalkError(
      `Directory ${path} exceeds the maximum include directory nesting level of ` +
        `${MAX_INCLUDE_DEPTH}. You have probably a recursion somewhere.`,
    );
  }
  const real = fs.realpath(path);
  const first = folders.get(real);
  if (first !== undefined) {
    throw new IncludeWalkError(
      path.startsWith(`${first}/`)
        ? `${path} is a link back to ${first}, a folder it is in: a loop`
        : `${path} and ${first} are one folder, ${real}, reached twice through links`,
    );
  }
  folders.set(real, path);
  return fs.readdir(path).filter((entry) => !entry.startsWith(".")).sort().flatMap((entry) =>
    filesUnder(join(path, entry), walk, depth + 1)
  );
}

function globMatcher(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else if (char === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) source += "\\[";
      else {
        const body = glob.slice(i + 1, end);
        source += `[${body.startsWith("!") ? `^${body.slice(1)}` : body.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  try {
    return new RegExp(`^${source}$`);
  } catch {
    // A range out of order, `[z-a]`: apr_fnmatch matches nothing with it, and neither do we.
    return /(?!)/;
  }
}
