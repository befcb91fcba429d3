/**
 * A DNS server for one name, as a cluster's DNS answers for a headless Service: an A record of
 * each address given (TTL 1 s), an empty answer to any other type asked for that name (AAAA),
 * and NXDOMAIN for any other name. Run in a lab namespace, for HAProxy's resolvers:
 *   dns-server.ts LISTEN_ADDR NAME ADDR...
 * Prints "ready" once it listens.
 */
import { createSocket } from "node:dgram";

const [listen, served, ...addresses] = process.argv.slice(2);
const A = 1;

/** The question's name (lower case), its type, and where the question ends. */
function question(query: Buffer): { name: string; type: number; end: number } {
  const labels: string[] = [];
  let at = 12;
  while (query[at] !== 0) {
    labels.push(query.subarray(at + 1, at + 1 + query[at]).toString("latin1"));
    at += 1 + query[at];
  }
  return { name: labels.join(".").toLowerCase(), type: query.readUInt16BE(at + 1), end: at + 5 };
}

function answer(query: Buffer): Buffer {
  const { name, type, end } = question(query);
  const known = name === served.toLowerCase();
  const records = known && type === A ? addresses : [];
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // the query's id
  // A response, recursion desired and available; NXDOMAIN (3) for a name not served.
  header.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const answers = records.map((address) => {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    record.writeUInt16BE(A, 2);
    record.writeUInt16BE(1, 4); // IN
    record.writeUInt32BE(1, 6); // TTL
    record.writeUInt16BE(4, 10);
    address.split(".").forEach((byte, index) => record.writeUInt8(Number(byte), 12 + index));
    return record;
  });
  return Buffer.concat([header, query.subarray(12, end), ...answers]);
}

const socket = createSocket("udp4");
socket.on("message", (query, peer) => {
  try {
    socket.send(answer(query), peer.port, peer.address);
  } catch { /* a malformed query: no answer */ }
});
socket.bind(53, listen, () => console.log("ready"));
