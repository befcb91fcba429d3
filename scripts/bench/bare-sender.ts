/**
 * For scripts/bench.ts: the floor of the agent. Bun's own UDP socket sending a fixed heartbeat to
 * 239.0.0.1:PORT (27999) every INTERVAL seconds (the first at once), as the agent's Bun adapter opens
 * it, and nothing else: compiled with the project's flags, it is what any Bun program pays.
 * Usage: bare-sender INTERVAL [PORT]
 */
interface BunUdp {
  udpSocket(options: { hostname: string; port: number }): Promise<{
    send(data: Uint8Array, port: number, address: string): boolean;
    setMulticastTTL(ttl: number): number;
    setMulticastLoopback(enabled: boolean): boolean;
  }>;
}

const { Bun } = globalThis as unknown as { Bun: BunUdp };
const interval = Number(process.argv[2]) * 1000;
const port = Number(process.argv[3] ?? 27999);
const socket = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0 });
socket.setMulticastTTL(1);
socket.setMulticastLoopback(true);
const heartbeat = new TextEncoder().encode("v=1&ready=10&busy=0");
const send = () => socket.send(heartbeat, port, "239.0.0.1");
send();
setInterval(send, interval);
// A module, for the top-level await.
export {};
