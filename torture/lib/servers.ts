/**
 * Loopback targets for the torture suite (127.0.0.1, port 0): a TCP echo server, an HTTP server
 * that serves seeded random bodies of any size at `/bytes/N`, a UDP echo, and a normal client
 * (curl through the proxy) that checks a download byte for byte.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo, type Socket } from "node:net";

export interface Closable {
  readonly port: number;
  close(): Promise<void>;
}

/** Echoes every byte; `prefix` is written first on each connection (tells servers apart). */
export async function echoServer(prefix = ""): Promise<Closable> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    if (prefix !== "") socket.write(prefix);
    socket.pipe(socket);
  });
  server.maxConnections = 50_000;
  server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 });
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The body served at `/bytes/N`: N bytes, the same for the same N. */
export function body(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = (n ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** HTTP on loopback: `/bytes/N` answers body(N) (cached), anything else answers "ok". */
export async function httpServer(): Promise<Closable> {
  const cache = new Map<number, Buffer>();
  const server = createHttpServer((req, res) => {
    const m = /^\/bytes\/(\d+)/.exec(req.url ?? "");
    if (!m) return res.end("ok");
    const n = Number(m[1]);
    let data = cache.get(n);
    if (data === undefined) cache.set(n, (data = body(n)));
    res.setHeader("content-length", n);
    res.end(data);
  });
  server.listen({ port: 0, host: "127.0.0.1", backlog: 1024 });
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers each datagram with `prefix` + the datagram. */
export async function udpEcho(prefix = ""): Promise<Closable & { socket: UdpSocket }> {
  const socket = createSocket("udp4");
  socket.on("message", (msg, from) => socket.send(Buffer.concat([Buffer.from(prefix), msg]), from.port, from.address));
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  return { socket, port: socket.address().port, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

export interface CurlResult {
  /** curl's exit code (0 = success, 97 = the proxy refused, 28 = timeout, …). */
  readonly code: number;
  readonly body: Buffer;
}

/** `curl --socks5-hostname` through the proxy to `http://127.0.0.1:PORT/PATH`. */
export function curl(proxyPort: number, port: number, path = "/", maxTimeS = 10): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-s", "--max-time", String(maxTimeS), "--socks5-hostname", `127.0.0.1:${proxyPort}`, `http://127.0.0.1:${port}${path}`],
      { encoding: "buffer", maxBuffer: 1024 * 1024 * 1024 },
      (err, stdout) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout }),
    );
  });
}

/** Downloads `/bytes/N` through the proxy and says whether it arrived byte for byte. */
export async function exactDownload(proxyPort: number, httpPort: number, n: number): Promise<{ ok: boolean; code: number; got: number }> {
  const r = await curl(proxyPort, httpPort, `/bytes/${n}`, 60);
  return { ok: r.code === 0 && r.body.length === n && sha256(r.body) === sha256(body(n)), code: r.code, got: r.body.length };
}

/** Runs `tasks` with at most `limit` in flight; results in order. */
export async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}
