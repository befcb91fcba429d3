/**
 * heartbeat: mod_heartbeat outside Apache. Entry point for `deno run -A src/main.ts`,
 * `bun src/main.ts` and the compiled binary: reads the command line and the configuration,
 * and hands them to the command (src/commands/), with the process's real I/O, clock, signals
 * and UDP adapters.
 */
// First, so that it is evaluated before anything else: on Deno it executes heartbeat again with
// SIGUSR1 blocked, before Deno can take SIGUSR1 to open its inspector.
import "./inspector-guard.ts";
import process from "node:process";
import { parseCommandLine, UsageError } from "./cli.ts";
import { usage } from "./help.ts";
import { runAgent } from "./commands/agent.ts";
import {
  type CommandContext,
  type CommandIO,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
} from "./commands/context.ts";
import { problemsOf, RuntimeFailure } from "./prerequisites.ts";
import { agentChecks } from "./senders/build.ts";
import { monitorChecks, runMonitorCommand } from "./commands/monitor.ts";
import { showServers } from "./commands/servers.ts";
import { configFileOf, loadSettings } from "./config/load.ts";
import { createLogger } from "./log.ts";
import { systemClock } from "./scheduler.ts";
import { describeSettings } from "./settings.ts";
import { processSignals } from "./signals.ts";
import { SourceConfigError } from "./sources/source.ts";
import { loadAdapter } from "./transport/index.ts";
import { lineWriter } from "./output.ts";
import { versionLine } from "./version.ts";

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE };
export type { CommandIO as MainIO };

const stdout = lineWriter(1);
const stderr = lineWriter(2);
const processIO: CommandIO = { stdout, stderr };

/** Where to read more, for the command that went wrong: `heartbeat monitor --help` for the monitor's. */
function hint(argv: string[]): string {
  // The command word, wherever it stands (the command line may be why parsing failed).
  const word = argv.find((arg) => arg === "monitor" || arg === "servers");
  const command = word ? ` ${word}` : "";
  return `Try 'heartbeat${command} --help' for the options.`;
}

/** Runs the command line `argv`; resolves to the exit status. */
export async function main(
  argv: string[],
  io: CommandIO = processIO,
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  const context: CommandContext = {
    io,
    env,
    clock: systemClock,
    signals: processSignals,
    adapter: loadAdapter,
  };
  try {
    const command = parseCommandLine(argv);
    switch (command.kind) {
      case "help":
        io.stdout(usage(command.command).trimEnd());
        return EXIT_OK;
      case "version":
        io.stdout(versionLine());
        return EXIT_OK;
      case "servers":
        return showServers(command, io);
    }
    const { invocation } = command;
    const configFile = configFileOf(invocation.configFile, env);
    const load = () => loadSettings({ flags: invocation.flags, env, configFile });
    const resolved = load();
    if (invocation.testConfig) {
      // Like nginx -t: the syntax, then everything a start would check before opening anything.
      const logger = createLogger({ level: "warn", write: io.stderr });
      const checks = command.mode === "monitor" ? monitorChecks : agentChecks;
      const problems = resolved.problems.length ? resolved.problems : await problemsOf(
        (names) => checks(resolved.settings, names, logger),
        resolved,
      );
      problems.forEach((problem) => io.stderr(problem));
      if (problems.length) return EXIT_USAGE;
      io.stdout("Syntax OK");
      return EXIT_OK;
    }
    if (resolved.problems.length) {
      resolved.problems.forEach((problem) => io.stderr(`heartbeat: ${problem}`));
      io.stderr(hint(argv));
      return EXIT_USAGE;
    }
    if (invocation.printConfig) {
      io.stdout(describeSettings(resolved, command.mode));
      return EXIT_OK;
    }
    return command.mode === "monitor"
      ? await runMonitorCommand(resolved, invocation, context)
      : await runAgent(resolved, load, invocation, context);
  } catch (error) {
    if (error instanceof UsageError || error instanceof SourceConfigError) {
      io.stderr(`heartbeat: ${error.message}`);
      io.stderr(hint(argv));
      return EXIT_USAGE;
    }
    if (error instanceof RuntimeFailure) {
      io.stderr(`heartbeat: ${error.message}`);
      return EXIT_FAILURE;
    }
    throw error;
  }
}

async function runFromCommandLine(): Promise<never> {
  let status: number;
  try {
    status = await main(process.argv.slice(2));
  } catch (error) {
    stderr(`heartbeat: internal error, please report it: ${(error as Error)?.stack ?? error}`);
    status = EXIT_FAILURE;
  }
  // What is still queued goes out first, unless nobody reads it.
  await Promise.all([stdout.flush(1000), stderr.flush(1000)]);
  process.exit(status);
}

if (import.meta.main) await runFromCommandLine();
