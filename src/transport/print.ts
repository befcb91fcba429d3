/** The transport behind --dry-run: each heartbeat printed as `DEST PAYLOAD`, nothing sent. */
import { formatDestination } from "../address.ts";
import type { UdpTransport } from "./transport.ts";

export function createPrintTransport(writeLine: (line: string) => void): UdpTransport {
  const decoder = new TextDecoder();
  return {
    adapter: "print",
    send(payload, to) {
      writeLine(`${formatDestination(to)} ${decoder.decode(payload)}`);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}
