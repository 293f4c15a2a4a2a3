/**
 * The benchmark's reference point: what a naive Node SOCKS5 relay reaches. No auth, CONNECT only,
 * `net` and `socket.pipe()` and nothing else (noDelay is set, as any interactive relay would).
 * For the benchmark only: it listens on 127.0.0.1 port 0, prints {"event":"listening","port":N},
 * dials 127.0.0.1 targets only, and exits when its stdin closes (the parent went away).
 *
 * With `--half-close` it keeps two things socksmith does and the plain relay skips, so the bench
 * can show what they cost: both sockets allow half-open connections (the client's FIN is passed on
 * and the target's answer after it still reaches the client, where the plain relay closes both
 * sockets), and the reply's BND.ADDR/BND.PORT is the upstream socket's local address (one
 * `getsockname`), where the plain relay sends 0.0.0.0:0.
 */
import { connect, createServer } from "node:net";

const halfClose = process.argv.includes("--half-close");
const REPLY_OK = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const reply = (rep) => Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]);

/** The success reply: BND.ADDR/BND.PORT 0.0.0.0:0, or with --half-close the upstream's local IPv4 address. */
function replyOk(upstream) {
  if (!halfClose) return REPLY_OK;
  const { address, port } = upstream.address();
  const reply = Buffer.from(REPLY_OK);
  address.split(".").forEach((octet, i) => (reply[4 + i] = Number(octet)));
  reply.writeUInt16BE(port, 8);
  return reply;
}

const server = createServer({ noDelay: true, allowHalfOpen: halfClose }, (client) => {
  let buffered = Buffer.alloc(0);
  let stage = "greeting";
  client.on("error", () => client.destroy());

  const onData = (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (stage === "greeting") {
      if (buffered.length < 2 || buffered.length < 2 + buffered[1]) return;
      if (buffered[0] !== 5) return client.destroy();
      const methods = buffered.subarray(2, 2 + buffered[1]);
      buffered = buffered.subarray(2 + buffered[1]);
      if (!methods.includes(0)) return client.end(Buffer.from([5, 0xff]));
      client.write(Buffer.from([5, 0]));
      stage = "request";
    }
    if (stage === "request") {
      if (buffered.length < 5) return;
      const atyp = buffered[3];
      const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buffered[4] : -1;
      if (addrLen < 0 || buffered[0] !== 5) return client.destroy();
      if (buffered.length < 4 + addrLen + 2) return;
      if (buffered[1] !== 1) return client.end(reply(7)); // CONNECT only
      const host = atyp === 1 ? buffered.subarray(4, 8).join(".") : atyp === 3 ? buffered.subarray(5, 4 + addrLen).toString("latin1") : "::";
      const port = buffered.readUInt16BE(4 + addrLen);
      const early = buffered.subarray(4 + addrLen + 2);
      if (host !== "127.0.0.1") return client.end(reply(2)); // loopback only: this is a benchmark
      stage = "connecting";
      client.off("data", onData);
      client.pause();
      const upstream = connect({ host, port, noDelay: true, allowHalfOpen: halfClose });
      upstream.on("error", () => {
        if (stage === "connecting") client.end(reply(5));
        else client.destroy();
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      upstream.on("connect", () => {
        stage = "relaying";
        client.write(replyOk(upstream));
        if (early.length > 0) upstream.write(early);
        client.pipe(upstream);
        upstream.pipe(client);
      });
    }
  };
  client.on("data", onData);
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ event: "listening", address: "127.0.0.1", port: server.address().port })}\n`);
});

// Exit with the benchmark: when the parent closes our stdin (or dies).
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGINT", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
