/**
 * For scripts/bench.ts: listens on the group 239.0.0.1 at each port given, and prints
 * "PORT TIME" for each heartbeat that arrives (TIME in ms since the epoch), after "ready".
 */
import { createSocket } from "node:dgram";

const ports = process.argv.slice(2).map(Number);
let ready = 0;
for (const port of ports) {
  const socket = createSocket({ type: "udp4", reuseAddr: true });
  socket.on("message", () => console.log(`${port} ${performance.timeOrigin + performance.now()}`));
  socket.bind(port, () => {
    socket.addMembership("239.0.0.1", "127.0.0.1");
    if (++ready === ports.length) console.log("ready");
  });
}
