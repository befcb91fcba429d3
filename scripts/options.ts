/**
 * The README's options tables, made from the settings' rows (src/settings.ts) as --help is:
 * `npx bun scripts/options.ts` rewrites them between README's markers, `--check` exits 1 if they
 * differ from the rows (test/options.test.ts checks the same in every test run).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { defaultText } from "../src/help.ts";
import { type Command, type Setting, SETTINGS } from "../src/settings.ts";

export const README = new URL("../README.md", import.meta.url);
export const BEGIN = "<!-- options: made by scripts/options.ts from src/settings.ts -->";
export const END = "<!-- /options -->";

/** A table per command, settings both take in each. */
const TABLES: { command: Command; title: string }[] = [
  { command: "agent", title: "The agent's (`heartbeat`)" },
  { command: "monitor", title: "The monitor's (`heartbeat monitor`)" },
];

/** Markdown table cells: a `|` inside one would end it. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

function code(text: string): string {
  return `\`${text}\``;
}

/** One setting's line of `command`'s table: flag, variable, directive, default, help. */
function cells(row: Setting, command: Command): string[] {
  const flag = `${row.short ? `${code(`-${row.short}`)}, ` : ""}${
    code(`--${row.flag} ${row.value}`)
  }`;
  const shown = defaultText(row);
  return [
    flag,
    code(row.env),
    code(row.directive),
    shown === undefined ? "" : code(shown),
    typeof row.help === "string" ? row.help : row.help[command],
  ].map(cell);
}

/** A markdown table, its columns padded as `deno fmt` pads them. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, column) => Math.max(3, ...rows.map((row) => row[column].length)));
  const line = (row: string[]) =>
    `| ${row.map((text, column) => text.padEnd(widths[column])).join(" | ")} |`;
  return [
    line(rows[0]),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.slice(1).map(line),
  ];
}

/** The tables, one per command, each setting in the order of the rows. */
export function optionsTables(): string {
  return TABLES.map(({ command, title }) =>
    [
      `${title}:`,
      "",
      ...table([
        ["flag", "variable", "directive", "default", "what it does"],
        ...SETTINGS.filter((row) => row.commands.includes(command)).map((row) =>
          cells(row, command)
        ),
      ]),
    ].join("\n")
  ).join("\n\n");
}

/** `readme` with the tables between its markers made again. */
export function withOptionsTables(readme: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README.md lacks ${BEGIN} ... ${END}`);
  return `${readme.slice(0, begin)}${BEGIN}\n\n${optionsTables()}\n\n${readme.slice(end)}`;
}

if (import.meta.main) {
  const readme = readFileSync(README, "utf8");
  const made = withOptionsTables(readme);
  if (process.argv.includes("--check")) {
    if (made !== readme) {
      console.error("README.md's options tables differ from the rows: npx bun scripts/options.ts");
      process.exit(1);
    }
  } else if (made !== readme) writeFileSync(README, made);
}
