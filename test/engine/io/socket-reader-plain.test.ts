/**
 * The engine on a Node where adopting accepted sockets does not work (simulated for this file's
 * process, socket-reader.ts simulateBrokenAdoption): start logs one warning, and accepted client
 * connections and BIND peers read through Node's plain reads. Real clients: curl, the `socks`
 * package (CONNECT and BIND), and a raw tunnel moving 8 MiB each way under backpressure.
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { connect, type Socket } from "node:net";
import { SocksClient } from "socks";
import { describe, expect, it } from "vitest";
import { simulateBrokenAdoption } from "../../../src/engine/io/socket-reader.js";
import type { LogLevel } from "../../../src/engine/index.js";
import { HOST, openTunnel, startEchoServer, useTestProxies } from "../../support/net.js";

simulateBrokenAdoption("simulated for this test");

const { cleanups, proxy } = useTestProxies();
const WHY = `adopting their sockets does not work on Node ${process.version}: simulated for this test`;

function logged(): { lines: Array<{ level: LogLevel; message: string }>; logger: { log(level: LogLevel, message: string): void } } {
  const lines: Array<{ level: LogLevel; message: string }> = [];
  return { lines, logger: { log: (level, message) => void lines.push({ level, message }) } };
}

describe("accepted sockets read plainly when adoption does not work", () => {
  it("start warns once; curl fetches a page through the proxy", async () => {
    const http = createHttpServer((_req, res) => res.end("plain reads work"));
    http.listen(0, HOST);
    await once(http, "listening");
    cleanups.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
    const { lines, logger } = logged();
    const p = await proxy({ logger });
    expect(lines).toEqual([
      {
        level: "warn",
        message: `accepted connections use Node's plain reads (slower): ${WHY}`,
      },
    ]);
    const port = (http.address() as { port: number }).port;
    const body = await new Promise<string>((resolve, reject) =>
      execFile("curl", ["-sS", "--max-time", "10", "--socks5", `${HOST}:${p.port}`, `http://${HOST}:${port}/`], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    expect(body).toBe("plain reads work");
    await p.observer.lastClosed();
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
  });

  it("8 MiB each way through a tunnel arrive intact (pause and resume under backpressure)", async () => {
    const echo = await startEchoServer();
    cleanups.push(() => echo.close());
    const p = await proxy();
    const c = await openTunnel(p.port, echo.port);
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    c.write(payload);
    expect((await c.read(payload.length, 15_000)).equals(payload)).toBe(true);
    c.destroy();
  });

  it("the socks package: CONNECT, and BIND with its peer relayed both ways", async () => {
    const echo = await startEchoServer();
    cleanups.push(() => echo.close());
    const p = await proxy();
    const { socket } = await SocksClient.createConnection({
      proxy: { host: HOST, port: p.port, type: 5 },
      command: "connect",
      destination: { host: HOST, port: echo.port },
    });
    cleanups.push(() => void socket.destroy());
    socket.write("through connect");
    const [echoed] = await once(socket, "data");
    expect(echoed.toString()).toBe("through connect");

    const client = new SocksClient({ proxy: { host: HOST, port: p.port, type: 5 }, command: "bind", destination: { host: "0.0.0.0", port: 0 } });
    client.on("error", () => {});
    const bound = new Promise<{ remoteHost: { port: number } }>((resolve) => client.once("bound", (info) => resolve(info as never)));
    const established = new Promise<{ socket: Socket }>((resolve) => client.once("established", (info) => resolve(info as never)));
    client.connect();
    const peer = connect({ host: HOST, port: (await bound).remoteHost.port });
    peer.on("error", () => {});
    cleanups.push(() => void peer.destroy());
    const inbound = (await established).socket;
    cleanups.push(() => void inbound.destroy());
    peer.write("from peer");
    const [fromPeer] = await once(inbound, "data");
    expect(fromPeer.toString()).toBe("from peer");
    inbound.write("from client");
    const [fromClient] = await once(peer, "data");
    expect(fromClient.toString()).toBe("from client");
  });
});
