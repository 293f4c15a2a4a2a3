/**
 * Fuzzed handshakes over live sockets: each connection writes one fuzz script (handshakes.ts)
 * in its pieces, reads whatever comes back, and lets go when the proxy closes or after
 * `idleMs` without a byte either way. Counts how connections ended; a connection the proxy
 * refused at connect (it is gone, or full) counts as `refused`.
 */
import { connect } from "node:net";
import { fuzzScript, type Script } from "./handshakes.js";
import type { Random } from "./random.js";
import { pool } from "./servers.js";

export interface FuzzFigures {
  connections: number;
  /** The proxy closed (FIN) or reset the connection. */
  closedByProxy: number;
  reset: number;
  /** Still open after idleMs of silence: the client let go (the handshake timeout ends those). */
  clientLetGo: number;
  /** The connect itself failed. */
  refused: number;
  /** Connections that received at least one byte (a method selection, a reply). */
  answered: number;
  bytesSent: number;
  bytesReceived: number;
  wellFormed: number;
  mutated: number;
  random: number;
}

export interface FuzzOptions {
  readonly proxyPort: number;
  /** The loopback port requests name before mutation (the only one the guard lets through). */
  readonly targetPort: number;
  readonly count: number;
  readonly concurrency: number;
  readonly rng: Random;
  /** Let go of a connection after this long without a byte either way (default 250 ms). */
  readonly idleMs?: number;
}

export async function fuzzHandshakes(options: FuzzOptions): Promise<FuzzFigures> {
  const figures: FuzzFigures = {
    connections: 0,
    closedByProxy: 0,
    reset: 0,
    clientLetGo: 0,
    refused: 0,
    answered: 0,
    bytesSent: 0,
    bytesReceived: 0,
    wellFormed: 0,
    mutated: 0,
    random: 0,
  };
  // Scripts are drawn in order before any I/O, so a seed gives the same scripts however the
  // connections interleave.
  const scripts = Array.from({ length: options.count }, () => fuzzScript(options.targetPort, options.rng));
  await pool(options.count, options.concurrency, async (i) => {
    const script = scripts[i]!;
    if (script.kind === "random") figures.random++;
    else if (script.mutations.length === 0) figures.wellFormed++;
    else figures.mutated++;
    const ending = await drive(options.proxyPort, script, options.idleMs ?? 250, figures);
    figures.connections++;
    figures[ending]++;
  });
  return figures;
}

type Ending = "closedByProxy" | "reset" | "clientLetGo" | "refused";

function drive(port: number, script: Script, idleMs: number, figures: FuzzFigures): Promise<Ending> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: false, noDelay: true });
    let connected = false;
    let answered = false;
    let idle: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (ending: Ending) => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      socket.destroy();
      resolve(ending);
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish("clientLetGo"), idleMs);
    };
    socket.on("connect", () => {
      connected = true;
      let i = 0;
      const writeNext = () => {
        if (settled || i >= script.pieces.length) return;
        const piece = script.pieces[i++]!;
        figures.bytesSent += piece.length;
        socket.write(piece);
        arm();
        // Pieces after the first go out on later turns of the event loop (separate reads).
        if (i < script.pieces.length) setTimeout(writeNext, i % 3);
      };
      writeNext();
    });
    socket.on("data", (d: Buffer) => {
      figures.bytesReceived += d.length;
      if (!answered) {
        answered = true;
        figures.answered++;
      }
      arm();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => finish(!connected ? "refused" : err.code === "ECONNRESET" ? "reset" : "closedByProxy"));
    socket.on("close", () => finish(connected ? "closedByProxy" : "refused"));
  });
}
