/**
 * Apache httpd's configuration language, read as httpd reads it: comments, `\` continuations,
 * quoted arguments, case-insensitive names, nested `<Section>`s, Include and IncludeOptional
 * (globs, directories, loops detected), Define and UnDefine, `${NAME}`, and the conditional
 * sections IfDefine, IfModule, IfFile and IfDirective. The file system and environment are
 * passed in, so that reading is a pure function of them. A file's lines and words come from
 * lines.ts, the files an Include names from include-paths.ts; here is what the lines mean.
 */
import { dirname, isAbsolute, join } from "node:path";
import { describeError, errorCode } from "../errors.ts";
import {
  type ConfigFs,
  expandIncludePath,
  IncludeWalkError,
  MAX_INCLUDE_DEPTH,
} from "./include-paths.ts";
import { logicalLines, tokenize } from "./lines.ts";

export interface Directive {
  /** As written: `HeartbeatAddress`. */
  name: string;
  args: string[];
  file: string;
  line: number;
  /** `${NAME}`s in the line that nothing defines; they are left as written. */
  undefinedVariables: string[];
  /**
   * Enclosing sections that are not conditionals, outermost first:
   * `[{ name: "Proxy", args: ["balancer://origins"] }]`.
   */
  sections: { name: string; args: string[] }[];
}

export interface ConfigProblem {
  file: string;
  line: number;
  message: string;
}

export interface ReadOptions {
  fs: ConfigFs;
  env: Record<string, string | undefined>;
  /** Lower-cased names of the directives the reader's user knows, for <IfDirective>. */
  knownDirectives: ReadonlySet<string>;
  /** Modules that count as loaded before any LoadModule: this agent is mod_heartbeat. */
  builtinModules: readonly string[];
}

export interface ConfigRead {
  directives: Directive[];
  problems: ConfigProblem[];
  /** ServerRoot: as the file sets it, else the main file's folder (Debian's /etc/apache2). */
  serverRoot: string;
  /**
   * Where Apache puts run-time files, and so relative HeartbeatStorage paths
   * (ap_runtime_dir_relative): DefaultRuntimeDir, else httpd's built-in `logs` under ServerRoot.
   */
  runtimeDir: string;
}

/** The conditional sections, by lower-cased name. */
const CONDITIONALS = new Map([["ifdefine", "IfDefine"], ["ifmodule", "IfModule"], [
  "iffile",
  "IfFile",
], ["ifdirective", "IfDirective"]]);
const LANGUAGE = ["define", "undefine", "include", "includeoptional", "loadmodule", "serverroot"];
/**
 * Apache reads a configuration line of at most 16 MiB (VARBUF_MAX_LEN); `${NAME}`s may add at most
 * as much to all the lines read, so that Defines doubling each other cannot exhaust memory.
 */
export const MAX_EXPANDED_BYTES = 16 * 1024 * 1024;

interface OpenSection {
  name: string;
  args: string[];
  file: string;
  line: number;
  active: boolean;
  conditional: boolean;
}

/** httpd's run-time folder under ServerRoot when DefaultRuntimeDir is not set (as built by default). */
const DEFAULT_REL_RUNTIMEDIR = "logs";

/** Reads `mainFile` and everything it includes; never throws for what the files say. */
export function readHttpdConfig(mainFile: string, options: ReadOptions): ConfigRead {
  const directives: Directive[] = [];
  const problems: ConfigProblem[] = [];
  const defines = new Map<string, string>();
  const modules = new Set(options.builtinModules);
  let serverRoot: string | undefined;
  let defaultRuntimeDir: string | undefined;
  const known = new Set([...options.knownDirectives, ...LANGUAGE]);

  const problem = (file: string, line: number, message: string) =>
    problems.push({ file, line, message });

  let expandedBytes = 0;
  /** `text` with its `${NAME}`s replaced; undefined once expansions add up past the limit. */
  function expand(text: string, undefinedVariables: string[]): string | undefined {
    let over = false;
    const expanded = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (written, name: string) => {
      const value = defines.get(name) ?? options.env[name];
      if (value === undefined) {
        undefinedVariables.push(name);
        return written;
      }
      expandedBytes += value.length;
      over ||= expandedBytes > MAX_EXPANDED_BYTES;
      return over ? "" : value;
    });
    return over ? undefined : expanded;
  }

  function readFile(file: string, includedFrom: string[], includedAt = 0): void {
    let text: string;
    try {
      text = options.fs.readFile(file);
    } catch (error) {
      // The top file has no line to point at; an included one, the file that included it.
      const at = includedFrom.length ? includedFrom[includedFrom.length - 1] : undefined;
      problems.push({
        file: at ?? "",
        line: includedAt,
        message: at
          ? `Could not open configuration file ${file}: ${reason(error)}`
          : `cannot open config file ${file}: ${describeError(error)}`,
      });
      return;
    }
    const sections: OpenSection[] = [];
    const active = () => sections.every((section) => section.active);
    for (const { text: raw, line } of logicalLines(text)) {
      const trimmed = raw.trim();
      if (trimmed === "" || trimmed.startsWith("#")) continue;
      const undefinedVariables: string[] = [];
      const expanded = expand(trimmed, undefinedVariables);
      if (expanded === undefined) {
        problem(
          file,
          line,
          `Line too long: \${} variables add more than ${MAX_EXPANDED_BYTES} bytes to the ` +
            "configuration, the longest line Apache reads (Defines that double each other?)",
        );
        return;
      }
      const words = tokenize(expanded);
      // A line of nothing but variables that expand to nothing: as good as blank.
      if (words.length === 0) continue;
      const first = words[0];

      if (first.startsWith("</")) {
        const name = first.slice(2).replace(/>$/, "");
        const open = sections.pop();
        if (!open) problem(file, line, `</${name}> without matching <${name}> section`);
        else if (open.name.toLowerCase() !== name.toLowerCase()) {
          problem(file, line, `Expected </${open.name}> but saw </${name}>`);
        }
        continue;
      }

      if (first.startsWith("<")) {
        // As Apache: the arguments are what stands before the line's last '>', so that a quoted
        // one, <IfModule "mod_heartbeat.c">, is one argument.
        const [, name, rest] = /^<([^\s>]*)(.*)$/s.exec(expanded) ?? ["", first.slice(1), ""];
        const closing = rest.lastIndexOf(">");
        if (closing < 0) problem(file, line, `<${name}> directive missing closing '>'`);
        const raw = (closing < 0 ? rest : rest.slice(0, closing)).trim();
        const args = tokenize(raw);
        const conditional = CONDITIONALS.has(name.toLowerCase());
        const holds = !conditional || !active() || condition(name.toLowerCase(), raw, file, line);
        sections.push({ name, args, file, line, active: holds, conditional });
        continue;
      }

      if (!active()) continue;
      const key = first.toLowerCase();
      const args = words.slice(1);
      if (key === "define") {
        if (args.length < 1 || args.length > 2) {
          problem(file, line, "Define takes one or two arguments");
        } else defines.set(args[0], args[1] ?? "");
      } else if (key === "undefine") {
        if (args.length !== 1) problem(file, line, "UnDefine takes one argument");
        else defines.delete(args[0]);
      } else if (key === "loadmodule") {
        if (args[0]) {
          modules.add(args[0]);
          modules.add(`mod_${args[0].replace(/_module$/, "")}.c`);
        }
      } else if (key === "serverroot") {
        if (args.length === 1) serverRoot = args[0];
        else problem(file, line, "ServerRoot takes one argument");
      } else if (key === "defaultruntimedir") {
        if (args.length === 1) defaultRuntimeDir = args[0];
        else problem(file, line, "DefaultRuntimeDir takes one argument");
      } else if (key === "include" || key === "includeoptional") {
        include(key === "includeoptional", first, args, undefinedVariables, file, line, [
          ...includedFrom,
          file,
        ]);
      } else {
        directives.push({
          name: first,
          args,
          file,
          line,
          undefinedVariables,
          sections: sections.filter((section) => !section.conditional).map((section) => ({
            name: section.name,
            args: section.args,
          })),
        });
      }
    }
    for (const open of sections) problem(open.file, open.line, `<${open.name}> was not closed.`);
  }

  /**
   * Whether the conditional section `kind` holds for its argument, `raw` as written. As Apache,
   * a `!` negates only before the quotes: `!"FOO"` is not FOO, `"!FOO"` is one named !FOO.
   */
  function condition(kind: string, raw: string, file: string, line: number): boolean {
    const negated = raw.startsWith("!");
    const args = tokenize(negated ? raw.slice(1) : raw);
    if (args.length !== 1) {
      problem(file, line, `<${CONDITIONALS.get(kind)}> takes one argument`);
      return false;
    }
    const subject = args[0];
    let holds: boolean;
    switch (kind) {
      case "ifdefine":
        holds = defines.has(subject);
        break;
      case "ifmodule":
        holds = modules.has(subject);
        break;
      case "iffile":
        holds = options.fs.exists(relative(subject));
        break;
      default:
        holds = known.has(subject.toLowerCase());
    }
    return holds !== negated;
  }

  /** Relative paths are relative to ServerRoot, or else to the main file's folder. */
  function relative(path: string): string {
    return isAbsolute(path) ? path : join(serverRoot ?? dirname(mainFile), path);
  }

  function include(
    optional: boolean,
    name: string,
    args: string[],
    undefinedVariables: string[],
    file: string,
    line: number,
    stack: string[],
  ): void {
    if (args.length !== 1) {
      problem(file, line, `${name} takes one argument`);
      return;
    }
    if (undefinedVariables.length) {
      problem(file, line, `${name}: ${undefinedVariable(undefinedVariables[0])}`);
      return;
    }
    if (stack.length > MAX_INCLUDE_DEPTH) {
      problem(file, line, `${name}: includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
      return;
    }
    const pattern = relative(args[0]);
    let files: string[];
    try {
      files = expandIncludePath(pattern, options.fs);
    } catch (error) {
      if (error instanceof IncludeWalkError) {
        problem(file, line, `${name}: ${pattern}: ${error.message}`);
        return;
      }
      // A folder that cannot be listed (one a DynamicUser may not read): say so, and go on.
      problem(
        file,
        line,
        `${name}: Could not open configuration file ${pattern}: ${reason(error)}`,
      );
      return;
    }
    if (files.length === 0) {
      if (!optional) {
        problem(
          file,
          line,
          /[*?[]/.test(pattern)
            ? `${name}: No matches for the wildcard pattern ${pattern}`
            : `${name}: Could not open configuration file ${pattern}: No such file or directory`,
        );
      }
      return;
    }
    for (const included of files) {
      if (stack.includes(included)) {
        problem(
          file,
          line,
          `${name}: ${included} includes itself (${
            [...stack.slice(stack.indexOf(included)), included].join(" -> ")
          })`,
        );
        continue;
      }
      readFile(included, stack, line);
    }
  }

  readFile(mainFile, []);
  return {
    directives,
    problems,
    serverRoot: relative("."),
    runtimeDir: relative(defaultRuntimeDir ?? DEFAULT_REL_RUNTIMEDIR),
  };
}

/** Apache's words for why a file could not be read. */
function reason(error: unknown): string {
  const code = errorCode(error);
  return code === "ENOENT"
    ? "No such file or directory"
    : code === "EACCES"
    ? "Permission denied"
    : error instanceof Error
    ? error.message
    : String(error);
}

/**
 * Apache's words for a `${NAME}` that neither a Define nor the environment sets, with what to do
 * for the one a systemd unit sets (LoadCredential=) and a check outside it does not.
 */
export function undefinedVariable(name: string): string {
  return `variable \${${name}} is not defined${
    name === "CREDENTIALS_DIRECTORY"
      ? " (systemd sets it for a unit with LoadCredential=; to check the file outside the unit, give it: CREDENTIALS_DIRECTORY=/etc/heartbeat heartbeat -t -f FILE)"
      : ""
  }`;
}
