/**
 * A local user racing the monitor for its temporary files: every file in FOLDER whose name
 * starts with PREFIX is replaced by a symlink to TARGET, in a loop, for SECONDS; then prints how
 * many it swapped. Usage: symlink-swapper.ts FOLDER PREFIX TARGET SECONDS
 */
import { readdirSync, renameSync, symlinkSync } from "node:fs";
import { join } from "node:path";

const [folder, prefix, target, seconds] = process.argv.slice(2);
const until = Date.now() + Number(seconds) * 1000;
let swapped = 0;
console.log(JSON.stringify({ started: true }));
while (Date.now() < until) {
  for (const name of readdirSync(folder)) {
    if (!name.startsWith(prefix)) continue;
    const link = join(folder, `${name}.link`);
    try {
      symlinkSync(target, link);
      renameSync(link, join(folder, name)); // over the temporary file, as rename(2) allows
      swapped++;
    } catch { /* the monitor renamed it first */ }
  }
}
console.log(JSON.stringify({ swapped }));
