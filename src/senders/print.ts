/** The sender behind --dry-run: each heartbeat printed as `DEST PAYLOAD`, nothing sent. */
import type { Sender } from "./sender.ts";

export function createPrintSender(name: string, writeLine: (line: string) => void): Sender {
  const decoder = new TextDecoder();
  return {
    name,
    send(payload) {
      writeLine(`${name} ${decoder.decode(payload)}`);
      return Promise.resolve();
    },
  };
}
