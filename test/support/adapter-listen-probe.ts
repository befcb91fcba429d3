/**
 * Listens with one UDP adapter, for the transport contract suite. Usage:
 * adapter-listen-probe.ts ADAPTER ADDRESS PORT [ZONE]; prints {"listening":true,"receiveBuffer":N},
 * then one JSON line per datagram: {from, length, text}. RECEIVE_BUFFER=BYTES in the environment
 * asks for that receive buffer.
 */
import { loadAdapter } from "../../src/transport/index.ts";
import type { AdapterName } from "../../src/transport/transport.ts";

const [adapter, address, port, zone] = process.argv.slice(2);
const receiveBuffer = process.env.RECEIVE_BUFFER ? Number(process.env.RECEIVE_BUFFER) : undefined;
const { openUdpListener } = await loadAdapter(adapter as AdapterName);
const listener = await openUdpListener(
  { address, port: Number(port), zone, receiveBuffer },
  ({ data, from }) => {
    console.log(
      JSON.stringify({ from, length: data.length, text: new TextDecoder().decode(data) }),
    );
  },
);
console.log(JSON.stringify({ listening: true, receiveBuffer: listener.receiveBuffer }));
process.on("SIGTERM", () => listener.close().then(() => process.exit(0)));
