#!/usr/bin/env node
/**
 * The TLS ends of the benchmark's TLS section (bench/tls.mjs), one process per role so that the
 * client, the target server and the proxy each have an event loop of their own. The C load
 * generator speaks no TLS; these are Node's TLS stack on both ends, the same for every subject, so
 * the ratios compare what sits between them.
 *
 *   node bench/tls-peer.mjs serve --lib FILE --ca-dir DIR --name NAME
 *       TLS servers on 127.0.0.1 with a leaf for NAME from the CA in DIR (made by the bundled
 *       tls code in FILE): "bulk" writes without end once the handshake is done, "echo" echoes.
 *       Prints {"bulk":PORT,"echo":PORT}.
 *   node bench/tls-peer.mjs bulk --port P [--proxy X] --ca FILE --name NAME --seconds S --warmup W [--watch NAME=PID,...]
 *       One TLS download (SNI NAME, trusting only FILE), through SOCKS5 on 127.0.0.1:X when given.
 *       Prints {"mibps":N,"bytes":N,"seconds":N,"protocol":"TLSv1.3","cpu":{"client":µs,NAME:µs...}}:
 *       the CPU time (user + kernel) of this process and of each watched one in the measured window.
 *   node bench/tls-peer.mjs handshakes --port P [--proxy X] --ca FILE --name NAME --workers N --seconds S --warmup W
 *       N closed-loop workers: connect, (SOCKS5 greeting + CONNECT,) full TLS handshake (no
 *       session resumption), 1-byte echo, close. Prints {"rate":N,"completed":N,"errors":N,
 *       "p50_us":N,"p99_us":N,"last_error":...}.
 *
 * Every socket is on 127.0.0.1. A client exits on its own after warm-up + seconds (+ 10 s at most
 * for a stuck handshake); the server lives until its parent stops it.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import net from "node:net";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { pathToFileURL } from "node:url";

const HOST = "127.0.0.1";

function parse(argv) {
  const [mode, ...rest] = argv;
  const opts = { mode };
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i]?.replace(/^--/, "");
    const value = rest[i + 1];
    if (key === undefined || value === undefined) fail(`bad arguments: ${argv.join(" ")}`);
    opts[key] = value;
  }
  return opts;
}

function fail(message) {
  console.error(`tls-peer: ${message}`);
  process.exit(2);
}

// --- server -------------------------------------------------------------------------------------

async function serve(o) {
  const { loadOrCreateCa, LeafCertificates } = await import(pathToFileURL(o.lib).href);
  const ca = await loadOrCreateCa(o["ca-dir"]);
  const context = await new LeafCertificates(ca).secureContextFor({ sni: o.name, target: HOST });
  const block = Buffer.alloc(256 * 1024, 0x61);
  // tls.Server ignores a ready-made secureContext, so each accepted socket is wrapped directly.
  const listen = async (onSecure) => {
    const server = net.createServer((raw) => {
      raw.setNoDelay(true);
      const socket = new TLSSocket(raw, { isServer: true, secureContext: context });
      socket.on("error", () => {});
      raw.on("error", () => {});
      socket.once("secure", () => onSecure(socket));
      socket.on("end", () => socket.end());
    });
    server.listen(0, HOST);
    await once(server, "listening");
    return server.address().port;
  };
  const bulk = await listen((socket) => {
    const pump = () => {
      while (!socket.destroyed && socket.write(block));
    };
    socket.on("drain", pump);
    pump();
  });
  const echo = await listen((socket) => socket.on("data", (data) => socket.write(data)));
  console.log(JSON.stringify({ bulk, echo }));
}

// --- clients ------------------------------------------------------------------------------------

/** A TCP connection to the target, through a SOCKS5 CONNECT when `proxy` is set; resolves once the tunnel is up. */
function tunnel(port, proxy) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy ?? port, HOST);
    socket.setNoDelay(true);
    socket.once("error", reject);
    if (proxy === undefined) {
      socket.once("connect", () => resolve(socket));
      return;
    }
    socket.once("connect", () => {
      // Greeting (no auth) and CONNECT 127.0.0.1:port in one write; the answers are 2 + 10 bytes.
      const request = Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]);
      socket.write(request);
    });
    const onReadable = () => {
      const answer = socket.read(12);
      if (answer === null) return;
      socket.off("readable", onReadable);
      if (answer[0] !== 5 || answer[1] !== 0 || answer[3] !== 0) reject(new Error(`SOCKS5 CONNECT refused: ${answer.toString("hex")}`));
      else resolve(socket);
    };
    socket.on("readable", onReadable);
    socket.once("end", () => reject(new Error("the proxy closed the connection during the SOCKS5 handshake")));
  });
}

/** TLS over an open tunnel; resolves on secureConnect. Verifies the chain against `ca` and the name. */
function secure(raw, o, ca) {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ socket: raw, servername: o.name, ca });
    socket.once("secureConnect", () => resolve(socket));
    socket.once("error", (err) => {
      raw.destroy();
      reject(err);
    });
  });
}

async function bulk(o) {
  const ca = readFileSync(o.ca, "utf8");
  const proxy = o.proxy === undefined ? undefined : Number(o.proxy);
  const socket = await secure(await tunnel(Number(o.port), proxy), o, ca);
  let bytes = 0;
  socket.on("data", (data) => {
    bytes += data.length;
  });
  socket.on("error", (err) => fail(`download: ${err.message}`));
  socket.on("close", () => fail("download: the connection closed before the end of the measurement"));
  await sleep(Number(o.warmup) * 1000);
  const watched = watchList(o.watch);
  const b0 = bytes;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const w0 = watched.map(([, pid]) => cpuMicros(pid));
  await sleep(Number(o.seconds) * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const own = process.cpuUsage(cpu0);
  const moved = bytes - b0;
  // CPU (user + kernel) each process spent in the measured window, in µs.
  const cpu = { client: own.user + own.system };
  watched.forEach(([name, pid], i) => {
    const now = cpuMicros(pid);
    if (now !== undefined && w0[i] !== undefined) cpu[name] = now - w0[i];
  });
  console.log(JSON.stringify({ mibps: moved / 2 ** 20 / seconds, bytes: moved, seconds, protocol: socket.getProtocol(), cpu }));
  process.exit(0);
}

/** `--watch server=PID,proxy=PID`: other processes whose CPU the download reports. */
function watchList(text) {
  if (text === undefined) return [];
  return text.split(",").map((pair) => {
    const [name, pid] = pair.split("=");
    return [name, Number(pid)];
  });
}

/** utime + stime of a process (all its threads) in µs, from /proc (Linux; USER_HZ 100). */
function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

async function handshakes(o) {
  const ca = readFileSync(o.ca, "utf8");
  const proxy = o.proxy === undefined ? undefined : Number(o.proxy);
  const port = Number(o.port);
  const workers = Number(o.workers);
  let measuring = false;
  let running = true;
  let completed = 0;
  let errors = 0;
  let lastError;
  const samples = [];
  const one = async () => {
    const t0 = performance.now();
    const socket = await secure(await tunnel(port, proxy), o, ca);
    try {
      socket.write("x");
      const [data] = await once(socket, "data", { signal: AbortSignal.timeout(5000) });
      if (data.length !== 1 || data[0] !== 0x78) throw new Error(`bad echo ${data.toString("hex")}`);
    } finally {
      socket.on("error", () => {});
      socket.end();
    }
    return performance.now() - t0;
  };
  const worker = async () => {
    while (running) {
      try {
        const us = (await one()) * 1000;
        if (measuring && running) {
          completed++;
          samples.push(us);
        }
      } catch (err) {
        if (running) {
          errors++;
          lastError = err.message;
        }
      }
    }
  };
  const all = [];
  for (let i = 0; i < workers; i++) all.push(worker());
  await sleep(Number(o.warmup) * 1000);
  measuring = true;
  const t0 = performance.now();
  await sleep(Number(o.seconds) * 1000);
  running = false;
  const seconds = (performance.now() - t0) / 1000;
  // Let the sessions in flight finish: a client that vanishes mid-handshake looks to socksmith like
  // one that rejects its CA, and would turn on auto-passthrough for the name.
  await Promise.race([Promise.all(all), sleep(5000)]);
  samples.sort((a, b) => a - b);
  const pct = (p) => (samples.length === 0 ? null : Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]));
  console.log(JSON.stringify({ rate: completed / seconds, completed, seconds, errors, p50_us: pct(0.5), p99_us: pct(0.99), last_error: lastError ?? null }));
  process.exit(0);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const opts = parse(process.argv.slice(2));
if (opts.mode !== "serve") {
  // A client is bounded in time whatever happens to its peers.
  const limit = (Number(opts.warmup ?? 0) + Number(opts.seconds ?? 0) + 10) * 1000;
  setTimeout(() => fail(`no result after ${limit} ms`), limit).unref();
}
const modes = { serve, bulk, handshakes };
const run = modes[opts.mode];
if (run === undefined) fail("usage: tls-peer.mjs serve|bulk|handshakes ... (see the header)");
run(opts).catch((err) => fail(err.stack ?? err.message));
