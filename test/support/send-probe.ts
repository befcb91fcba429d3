/**
 * Opens one UDP adapter and sends what it is told, for the transport contract suite, which runs
 * it inside a lab namespace. Usage: send-probe.ts JSON, where JSON is a Probe; prints a
 * ProbeResult as JSON.
 */
import { loadAdapter } from "../../src/transport/index.ts";
import type { AdapterName, UdpTransportOptions } from "../../src/transport/transport.ts";

export interface Probe {
  adapter: AdapterName;
  sessions: {
    options: UdpTransportOptions;
    sends: { host: string; port: number; zone?: string; payload: string }[];
  }[];
}

export interface ProbeResult {
  adapter: string;
  /** Per session, per send: "ok" or the error message; a session whose open failed: ["open failed: …"]. */
  sends: string[][];
}

const probe: Probe = JSON.parse(process.argv[2]);
const { openUdpTransport: open } = await loadAdapter(probe.adapter);
const result: ProbeResult = { adapter: probe.adapter, sends: [] };
for (const session of probe.sessions) {
  let transport;
  try {
    transport = await open(session.options);
  } catch (error) {
    result.sends.push([`open failed: ${(error as Error).message}`]);
    continue;
  }
  const outcomes: string[] = [];
  for (const send of session.sends) {
    try {
      await transport.send(new TextEncoder().encode(send.payload), send);
      outcomes.push("ok");
    } catch (error) {
      outcomes.push(String((error as Error).message ?? error));
    }
  }
  await transport.close();
  result.sends.push(outcomes);
}
console.log(JSON.stringify(result));
