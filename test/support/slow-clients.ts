/**
 * A slow, greedy client, for the connection-limit tests: keeps COUNT connections open to
 * HOST:PORT for SECONDS, each sending the next byte of TEXT (then `a`s) once a second, and opens a
 * new one 250 ms after each is closed. Usage: slow-clients.ts HOST PORT COUNT SECONDS TEXT.
 * Prints `{"started":true}`, then at the end {opened, closedByServer, longestMs}: how long the
 * server let one of them stay open, at the most (those still open at the end included).
 */
import { connect } from "node:net";

const [host, port, count, seconds, text] = process.argv.slice(2);
const ends = Date.now() + Number(seconds) * 1000;
const bytes = Buffer.from(text.replace(/\\r\\n/g, "\r\n"), "latin1");
let opened = 0;
let closedByServer = 0;
let longestMs = 0;
/** Each connection open, by when it was opened. */
const live = new Map<() => void, number>();

function open(): void {
  if (Date.now() >= ends) return;
  opened++;
  const started = Date.now();
  let sent = 0;
  let ours = false;
  // Half-open: the server's FIN does not end it; it keeps its side open and goes on sending.
  const socket = connect({ port: Number(port), host, allowHalfOpen: true });
  const next = () => {
    if (socket.writable) socket.write(sent < bytes.length ? bytes.subarray(sent, sent + 1) : "a");
    sent++;
  };
  const ticker = setInterval(next, 1000);
  const stop = () => (ours = true, socket.destroy());
  live.set(stop, started);
  socket.on("connect", next);
  socket.on("error", () => {});
  socket.on("close", () => {
    clearInterval(ticker);
    live.delete(stop);
    if (ours) return;
    closedByServer++;
    longestMs = Math.max(longestMs, Date.now() - started);
    setTimeout(open, 250);
  });
}

for (let i = 0; i < Number(count); i++) open();
console.log(JSON.stringify({ started: true }));
setTimeout(() => {
  for (const [stop, started] of live) {
    longestMs = Math.max(longestMs, Date.now() - started);
    stop();
  }
  console.log(JSON.stringify({ opened, closedByServer, longestMs }));
  process.exit(0);
}, ends - Date.now());
