/** A TCP server that accepts connections and never answers: a hung server. Usage: silent-server.ts PORT */
import { createServer } from "node:net";

const server = createServer(() => {});
server.listen(Number(process.argv[2]), () => console.log(JSON.stringify({ listening: true })));
