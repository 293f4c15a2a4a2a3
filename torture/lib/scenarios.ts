/**
 * The torture scenarios that run against the real CLI, parameterized by counts so the same code
 * runs big in `npm run torture` and small in `npm test` (test/trust). Each returns its figures;
 * the test files assert on them.
 */
import type { ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import { fuzzHandshakes, type FuzzFigures } from "./fuzz.js";
import { GUARD, MiB, settledRss, sleep, startCli, type ProxyProcess } from "./proxy-process.js";
import { random } from "./random.js";
import { curl, echoServer, httpServer, pool } from "./servers.js";

export interface Place {
  /** A fresh working directory for the proxy (its capture file goes there). */
  readonly cwd: string;
  /** Where started processes are registered for cleanup. */
  readonly children: ChildProcess[];
}

export interface FuzzRun extends FuzzFigures {
  seed: number;
  /** RSS after the warm-up, after the fuzz (settled), and its ratio. */
  rssBaseline: number;
  rssAfter: number;
  /** A normal client through the proxy after the fuzz: curl's exit code and body. */
  curlCode: number;
  curlBody: string;
  /** The proxy still runs. */
  alive: boolean;
  /** The proxy's exit code on SIGINT at the end. */
  exitCode: number | string;
  stderrTail: string[];
  seconds: number;
}

/**
 * `count` fuzzed handshakes (after a warm-up of `warmup` more) against `socksmith run` with
 * capture on and the loopback guard; then a normal client, the RSS, and a clean stop.
 */
export async function fuzzRun(place: Place, counts: { count: number; warmup: number; concurrency: number }): Promise<FuzzRun> {
  const started = Date.now();
  const http = await httpServer();
  const echo = await echoServer();
  const rng = random();
  const proxy = await startCli(["-s", GUARD, "--set", `loopback-guard.ports=${http.port},${echo.port}`, "--handshake-timeout", "1s", "-q"], place);
  try {
    await fuzzHandshakes({ proxyPort: proxy.port, targetPort: echo.port, count: counts.warmup, concurrency: counts.concurrency, rng });
    const rssBaseline = await settledRss(proxy, 1500);
    const figures = await fuzzHandshakes({ proxyPort: proxy.port, targetPort: echo.port, count: counts.count, concurrency: counts.concurrency, rng });
    // Connections the client let go of are closed by the handshake timeout (1 s) at the latest.
    const r = await curl(proxy.port, http.port, "/after-fuzz");
    const rssAfter = await settledRss(proxy, 2500);
    const alive = proxy.alive();
    const exitCode = await proxy.stop();
    return {
      seed: rng.seed,
      ...figures,
      rssBaseline,
      rssAfter,
      curlCode: r.code,
      curlBody: r.body.toString(),
      alive,
      exitCode,
      stderrTail: proxy.stderr.slice(-5),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await proxy.stop();
    await http.close();
    await echo.close();
  }
}

export interface SlowlorisRun {
  connections: number;
  /** Slow connections the proxy closed before the deadline. */
  closedByProxy: number;
  /** Slow connections still open at the deadline (should be none). */
  stillOpen: number;
  /** Bytes the slow clients managed to send in all. */
  bytesTrickled: number;
  /** A normal client while they trickled: curl's exit codes (all 0). */
  curlCodes: number[];
  /** Milliseconds from the start of the trickle until the last slow connection was closed. */
  lastClosedMs: number;
  alive: boolean;
}

/**
 * `connections` clients send a valid SOCKS5 handshake one byte every `byteEveryMs`, slower than
 * `--handshake-timeout` allows for the whole handshake; meanwhile a normal client (curl) is
 * served. Every slow connection must be closed by the proxy within the timeout plus `graceMs`.
 */
export async function slowlorisRun(
  place: Place,
  opts: { connections: number; byteEveryMs: number; handshakeTimeoutMs: number; graceMs: number; curls: number },
): Promise<SlowlorisRun> {
  const http = await httpServer();
  const proxy = await startCli(["-s", GUARD, "--set", `loopback-guard.ports=${http.port}`, "--handshake-timeout", `${opts.handshakeTimeoutMs}ms`, "-q"], place);
  // Greeting (no auth) + CONNECT 127.0.0.1:http: 13 bytes at one byte per tick takes
  // 13 × byteEveryMs, which must exceed the handshake timeout.
  const script = Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, http.port >> 8, http.port & 0xff]);
  let closedByProxy = 0;
  let bytesTrickled = 0;
  let lastClosed = 0;
  const start = Date.now();
  const sockets: Socket[] = [];
  const closed: Array<Promise<void>> = [];
  try {
    await pool(opts.connections, 200, async () => {
      const socket = connect({ port: proxy.port, host: "127.0.0.1" });
      sockets.push(socket);
      socket.on("error", () => {});
      let i = 0;
      const timer = setInterval(() => {
        if (i < script.length && !socket.destroyed) {
          socket.write(script.subarray(i, i + 1));
          bytesTrickled++;
          i++;
        }
      }, opts.byteEveryMs);
      closed.push(
        new Promise<void>((resolve) =>
          socket.on("close", () => {
            clearInterval(timer);
            closedByProxy++;
            lastClosed = Date.now() - start;
            resolve();
          }),
        ),
      );
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("error", reject);
      });
    });
    const curlCodes: number[] = [];
    for (let i = 0; i < opts.curls; i++) {
      curlCodes.push((await curl(proxy.port, http.port, `/during-slowloris-${i}`, 5)).code);
      await sleep(opts.handshakeTimeoutMs / opts.curls);
    }
    const deadline = sleep(opts.handshakeTimeoutMs + opts.graceMs - (Date.now() - start));
    await Promise.race([Promise.all(closed), deadline]);
    const stillOpen = sockets.filter((s) => !s.destroyed && !s.closed).length;
    return { connections: opts.connections, closedByProxy, stillOpen, bytesTrickled, curlCodes, lastClosedMs: lastClosed, alive: proxy.alive() };
  } finally {
    for (const s of sockets) s.destroy();
    await proxy.stop();
    await http.close();
  }
}

export interface CycleRun {
  tunnels: number;
  cycles: number;
  /** Settled RSS after each cycle, bytes. */
  rss: number[];
  /** Tunnels that failed to open or echo, per cycle. */
  failures: number[];
  bytesEchoed: number;
  alive: boolean;
  seconds: number;
}

/**
 * `cycles` rounds of: open `tunnels` SOCKS5 CONNECT tunnels to an echo server (at most
 * `concurrency` handshakes at once), echo `payload` bytes through each, close them all; the
 * proxy's settled RSS after each round.
 */
export async function tunnelCycles(
  place: Place,
  opts: { tunnels: number; cycles: number; concurrency: number; payload: number; settleMs: number },
): Promise<CycleRun> {
  const started = Date.now();
  const echo = await echoServer();
  const proxy = await startCli(["-q"], place);
  const rss: number[] = [];
  const failures: number[] = [];
  let bytesEchoed = 0;
  const data = Buffer.alloc(opts.payload, 0x61);
  try {
    for (let c = 0; c < opts.cycles; c++) {
      const open: Socket[] = [];
      let failed = 0;
      await pool(opts.tunnels, opts.concurrency, async () => {
        try {
          const s = await tunnel(proxy.port, echo.port);
          open.push(s);
          const echoed = await echoThrough(s, data);
          bytesEchoed += echoed;
        } catch {
          failed++;
        }
      });
      await Promise.all(open.map((s) => closeSocket(s)));
      failures.push(failed);
      rss.push(await settledRss(proxy, opts.settleMs));
    }
    return { tunnels: opts.tunnels, cycles: opts.cycles, rss, failures, bytesEchoed, alive: proxy.alive(), seconds: (Date.now() - started) / 1000 };
  } finally {
    await proxy.stop();
    await echo.close();
  }
}

/** A SOCKS5 no-auth CONNECT tunnel to 127.0.0.1:port, after its success reply. */
export function tunnel(proxyPort: number, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: proxyPort, host: "127.0.0.1", noDelay: true });
    const timer = setTimeout(() => fail(new Error("tunnel: no reply")), timeoutMs);
    let got = Buffer.alloc(0);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on("error", fail);
    socket.on("connect", () => socket.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff])));
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 12) return;
      socket.off("data", onData);
      clearTimeout(timer);
      if (got[0] !== 5 || got[1] !== 0 || got[3] !== 0 || got[2] !== 5) return fail(new Error(`tunnel: answer ${got.toString("hex")}`));
      socket.off("error", fail);
      socket.on("error", () => {});
      if (got.length > 12) socket.unshift(got.subarray(12));
      resolve(socket);
    };
    socket.on("data", onData);
  });
}

/** Writes `data` and waits for it to come back; returns the bytes echoed. */
export function echoThrough(socket: Socket, data: Buffer, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`echo: ${got} of ${data.length} bytes`)), timeoutMs);
    const onData = (d: Buffer) => {
      got += d.length;
      if (got >= data.length) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(got);
      }
    };
    socket.on("data", onData);
    socket.write(data);
  });
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) return resolve();
    socket.once("close", () => resolve());
    socket.end();
    setTimeout(() => socket.destroy(), 2000).unref();
  });
}

export { MiB, type ProxyProcess };
