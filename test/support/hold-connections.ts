/**
 * Holds N connections open to HOST:PORT, each having sent half a request, so a server counts
 * them as reading. Usage: hold-connections.ts N HOST PORT. Prints {"held": N} once all are
 * connected, and keeps them until killed.
 */
import { connect } from "node:net";

const [count, host, port] = process.argv.slice(2);
let connected = 0;
for (let i = 0; i < Number(count); i++) {
  const socket = connect(Number(port), host, () => {
    socket.write(`GET /held-${i} HTTP/1.1\r\nHost: ${host}\r\n`);
    if (++connected === Number(count)) console.log(JSON.stringify({ held: connected }));
  });
  socket.on("error", (error) => {
    console.error(`connection ${i}: ${error.message}`);
    process.exit(1);
  });
}
