/**
 * For scripts/bench.ts: the floor of monitor ingest. Bun's own UDP socket on the group, as the
 * monitor's Bun adapter opens it, doing nothing with what it receives; compiled with the
 * project's flags, and with the JIT let loose as the monitor does (allowOptimizingJit).
 */
interface BunUdp {
  udpSocket(options: {
    hostname: string;
    port: number;
    binaryType: "uint8array";
    flags: number;
    socket: { data(): void };
  }): Promise<{ addMembership(group: string, address: string): boolean }>;
  unsafe: { setJITPolicy(scale: number): void };
}

const { Bun } = globalThis as unknown as { Bun: BunUdp };
Bun.unsafe.setJITPolicy(1);
const socket = await Bun.udpSocket({
  hostname: "0.0.0.0",
  port: 27999,
  binaryType: "uint8array",
  flags: 16, // SO_REUSEADDR, as the adapter sets it
  socket: { data() {} },
});
socket.addMembership("239.0.0.1", "127.0.0.1");
setInterval(() => {}, 1000);
// A module, for the top-level await.
export {};
