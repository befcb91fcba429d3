/**
 * An open-loop load: GET `url` at a fixed `rate` a second for `seconds`, each request at its own
 * time whether or not the earlier ones have been answered (as users arrive), each latency counted
 * from when the request was due (so a client falling behind cannot hide a slow server). At most
 * MAX_OUTSTANDING at once; a request unanswered after TIMEOUT_MS is an error. Prints one line of
 * JSON: {"answered":N,"errors":N,"seconds":S,"latenciesMs":[...]}.
 *
 *   bun scripts/bench/open-loop.ts URL RATE SECONDS
 */
import { argv, exit } from "node:process";

const MAX_OUTSTANDING = 2000;
const TIMEOUT_MS = 10_000;

const [url, rateText, secondsText] = argv.slice(2);
const rate = Number(rateText);
const seconds = Number(secondsText);
if (!url || !(rate > 0 && rate <= 10_000) || !(seconds > 0 && seconds <= 3600)) {
  console.error("usage: open-loop.ts URL RATE(1-10000) SECONDS(1-3600)");
  exit(2);
}

const latenciesMs: number[] = [];
let errors = 0;
let outstanding = 0;
const requests: Promise<void>[] = [];
const start = performance.now() + 10;
const total = Math.round(rate * seconds);
for (let index = 0; index < total; index++) {
  const due = start + (index * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  if (outstanding >= MAX_OUTSTANDING) {
    errors++;
    continue;
  }
  outstanding++;
  requests.push(
    fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(async (response) => {
      await response.arrayBuffer();
      if (response.ok) latenciesMs.push(performance.now() - due);
      else errors++;
    }, () => {
      errors++;
    }).finally(() => outstanding--),
  );
}
await Promise.all(requests);
console.log(JSON.stringify({
  answered: latenciesMs.length,
  errors,
  seconds: (performance.now() - start) / 1000,
  latenciesMs: latenciesMs.map((ms) => Math.round(ms * 10) / 10),
}));
