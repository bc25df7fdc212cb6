// The PeerJS signaling server as bench/signaling.py runs it: `node server.js PORT [ALIVE_TIMEOUT_MS]`.
// Listens on 127.0.0.1 only, with the concurrent client limit raised (default 5,000) so 10,000 sockets fit.
// Prints "ready PORT" once it listens; exits on SIGTERM or SIGINT.
"use strict";
const { PeerServer } = require("peer");

const port = Number(process.argv[2]);
const aliveTimeout = Number(process.argv[3] || 24 * 3600 * 1000);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.js PORT [ALIVE_TIMEOUT_MS]");
  process.exit(2);
}
const server = PeerServer(
  { host: "127.0.0.1", port, path: "/", key: "peerjs", concurrent_limit: 1000000, alive_timeout: aliveTimeout },
  () => console.log(`ready ${port}`),
);
server.on("error", (error) => console.error(`peerjs: ${error}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
