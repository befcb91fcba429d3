/**
 * Requests URL every INTERVAL ms for DURATION ms, for drain timing tests. Usage:
 * request-probe.ts URL INTERVAL DURATION; prints "ready", then one line per answer:
 * `EPOCH_MS STATUS BODY`, the time the request was made and the body's first line.
 */
const [url, interval, duration] = process.argv.slice(2);
const started = Date.now();
console.log("ready");
while (Date.now() - started < Number(duration)) {
  const at = Date.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = (await response.text()).split("\n")[0];
    console.log(`${at} ${response.status} ${body}`);
  } catch (error) {
    console.log(`${at} 0 ${(error as Error).name}`);
  }
  await new Promise((resolve) => setTimeout(resolve, Number(interval)));
}

// A module, for the top-level await.
export {};
