/** scripts/options.ts: README's options tables are the ones the settings' rows make. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { defaultText } from "../src/help.ts";
import { SETTINGS } from "../src/settings.ts";
import { optionsTables, README, withOptionsTables } from "../scripts/options.ts";

test("options: README's options tables are made from the rows (else: npx bun scripts/options.ts)", () => {
  const readme = readFileSync(README, "utf8");
  assert.equal(withOptionsTables(readme), readme);
});

test("options: each command's table has a line for each of its settings: flag, variable, directive, default, help", () => {
  const [agent, monitor] = optionsTables().split("\n\n").filter((part) => part.startsWith("|"));
  for (const [command, table] of [["agent", agent], ["monitor", monitor]] as const) {
    const lines = table.split("\n").slice(2);
    const rows = SETTINGS.filter((row) => row.commands.includes(command));
    assert.equal(lines.length, rows.length, command);
    rows.forEach((row, i) => {
      // A `|` in a cell is escaped, or it would end the cell.
      const cells = lines[i].split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
      assert.equal(cells.length, 5, lines[i]);
      assert.ok(cells[0].includes(`\`--${row.flag} `), `${command}: --${row.flag}`);
      if (row.short) assert.ok(cells[0].startsWith(`\`-${row.short}\`, `), row.flag);
      const shown = defaultText(row);
      assert.deepEqual(
        cells.slice(1, 4),
        [`\`${row.env}\``, `\`${row.directive}\``, shown === undefined ? "" : `\`${shown}\``],
        row.flag,
      );
      const help = typeof row.help === "string" ? row.help : row.help[command];
      assert.equal(cells[4], help.replaceAll("|", "\\|"), row.flag);
    });
  }
});
