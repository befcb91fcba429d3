/**
 * A UDP listener for lab tests: listen-probe.ts PORT [GROUP] binds PORT, joins multicast GROUP
 * if given, prints `{"listening":true}` and then one JSON line per datagram: {from, payload}.
 */
import { createSocket } from "node:dgram";

const [port, group] = process.argv.slice(2);
const socket = createSocket({ type: "udp4", reuseAddr: true });
socket.on("message", (message, remote) => {
  console.log(JSON.stringify({ from: remote.address, payload: message.toString("latin1") }));
});
socket.bind(Number(port), () => {
  if (group) socket.addMembership(group);
  console.log(JSON.stringify({ listening: true }));
});
process.on("SIGTERM", () => socket.close(() => process.exit(0)));
