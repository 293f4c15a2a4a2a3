/**
 * Fast reads: every socket the engine relays reads through Node's `onread` option instead of
 * Node's default of a fresh 64 KiB allocation per read.
 *
 * - A read delivers what the kernel has, up to 64 KiB, from the very first read of every socket
 *   (as Node's default reads do): a 78-byte request is one read, not 64 + 14.
 * - Idle sockets hold nothing of their own: every socket reads into one process-wide 64 KiB
 *   landing buffer. Node keeps a pointer to each socket's next buffer in C++ and asks for a new
 *   one only after that socket's next read (lib/internal/stream_base_commons.js onStreamRead,
 *   src/stream_base.cc CustomBufferJSListener), so an idle socket points at the landing buffer
 *   until it reads again, and nothing may ever be kept in it. A read that lands there is copied
 *   into a process-wide slab, and the sink sees the copy: a region of the slab that no socket
 *   reads into. Without a `retain()` the next read is copied to the same place (nothing is
 *   allocated per read); with one, the slab moves on past it (a new slab when the tail is too
 *   small), and the retained view stays valid for as long as its holder keeps it.
 * - Bulk transfers get big reads without a copy: a read that fills the landing buffer (the
 *   kernel may have more) moves the socket to a buffer of its own, twice as big, and a read that
 *   fills that one doubles it, up to 1 MiB, so a megabyte moves in one read and one write. A
 *   read smaller than a quarter of it halves it; halved down to the landing buffer's size, the
 *   socket reads into the landing buffer again (its own buffer is dropped). An own buffer is reused
 *   while its reads are consumed during the call; after a `retain()` the next read goes into a
 *   fresh one.
 *
 * The contract for sinks is unchanged by where a read landed: a read reaches `sink` as a view
 * valid only during the call; a sink that keeps the view (a write that the kernel did not finish
 * holds on to it) calls `retain()` during the call, and the view is never written again.
 *
 * Accepted sockets cannot be given `onread` by net.Server, so `adoptSocket` re-wraps the
 * accepted handle in a new Socket that has it (the server is created with pauseOnConnect, so
 * the original Socket never reads). That moves two private fields of net.Socket (`_handle`,
 * `_server`), which Node may change: `checkAdoption` (the engine awaits it before it listens)
 * adopts a real loopback connection once per process and checks that its bytes arrive through
 * `onread` and that the server still counts it. Where they do not, accepted sockets read
 * plainly: Node's default `data` events (a fresh buffer per read) feed the same sink, and
 * `retain()` has nothing to protect. Connected sockets (`net.connect`'s documented `onread`)
 * are not affected.
 */
import { once } from "node:events";
import { Socket, connect, createServer, type Server } from "node:net";

/** The landing buffer's size: the largest read of a socket that has no buffer of its own. */
export const LANDING_SIZE = 64 * 1024;
/** The largest own buffer (and so the largest read). */
const MAX_SIZE = 1 << 20;
/** Where landed reads are copied; a retained copy pins its slab until released. */
const SLAB_SIZE = 256 * 1024;

/**
 * The landing buffer: every socket without a buffer of its own reads here. Its bytes are copied
 * out before any sink runs, so it is never retained and never replaced.
 */
const landing = Buffer.allocUnsafeSlow(LANDING_SIZE);
/** The slab landed reads are copied to; bytes from `top` on are free. */
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let top = 0;

export type ReadSink = (view: Buffer) => void;

export function discard(): void {}

export class SocketReader {
  /** Receives each read. Replace it when the socket changes hands (handshake → relay). */
  sink: ReadSink = discard;
  /** This socket's own buffer (bulk mode), or undefined while it reads into the landing buffer. */
  private own: Buffer | undefined;
  /** The size of the read being (or last) delivered. */
  private lastRead = 0;
  /** The read being (or last) delivered was copied from the landing buffer into the slab. */
  private landed = false;
  /** The read being (or last) delivered was retained. */
  private retained = false;

  /** The `onread` option for net.connect / new Socket. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    callback: (nread: number, buffer: Uint8Array): boolean => {
      this.lastRead = nread;
      this.retained = false;
      this.landed = buffer === landing;
      this.sink(this.landed ? copyOut(nread) : (buffer as Buffer).subarray(0, nread));
      // Pausing is done with socket.pause(), never by returning false here.
      return true;
    },
  };

  /** The view given to the sink stays in use after the call: never read into it again. Call it during the sink's call. */
  retain(): void {
    if (this.retained) return;
    this.retained = true;
    // The copy's region of the slab is taken for good; the next copy goes after it.
    if (this.landed) top += (this.lastRead + 7) & ~7;
  }

  /** Bytes this socket holds of its own (0 while it reads into the shared landing buffer). */
  get ownBytes(): number {
    return this.own?.length ?? 0;
  }

  /** The buffer for the next read (Node asks right after each read, and once at the start). */
  private next(): Buffer {
    const read = this.lastRead;
    const own = this.own;
    if (own === undefined) {
      if (read < LANDING_SIZE) return landing;
      // The read filled the landing buffer: the kernel may have more.
      this.own = Buffer.allocUnsafe(LANDING_SIZE * 2);
      return this.own;
    }
    const size = own.length;
    let wanted = size;
    if (read === size && size < MAX_SIZE) wanted = size * 2;
    else if (read < size / 4) wanted = size / 2;
    if (wanted <= LANDING_SIZE) {
      this.own = undefined;
      return landing;
    }
    if (this.retained || wanted !== size) this.own = Buffer.allocUnsafe(wanted);
    return this.own!;
  }
}

/** Copies the read in the landing buffer to the slab's free region and returns that region. */
function copyOut(length: number): Buffer {
  if (SLAB_SIZE - top < length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    top = 0;
  }
  landing.copy(slab, top, 0, length);
  return slab.subarray(top, top + length);
}

/** Private fields of net.Socket that adoption has to move; not part of Node's public API. */
interface SocketInternals {
  _handle: unknown;
  _server: Server | null;
  server: Server | null;
}

/** How accepted sockets are read in this process: adopted (fast reads) until `checkAdoption` finds adoption broken. */
let plainReads = false;
/** The answer of the one check per process (why adoption does not work, or undefined). */
let adoptionChecked: Promise<string | undefined> | undefined;

/**
 * Gives an accepted socket (from a `pauseOnConnect` server) reads through `reader`, not reading
 * yet when `paused`; use the returned socket only (the accepted one must not be used again). It
 * adopts the handle (`adoptHandle`) unless `checkAdoption` found that adoption does not work on
 * this Node; then it reads the accepted socket plainly (`readPlainly`).
 */
export function adoptSocket(accepted: Socket, reader: SocketReader, allowHalfOpen: boolean, paused = false): Socket {
  return plainReads ? readPlainly(accepted, reader, paused) : adoptHandle(accepted, reader, allowHalfOpen, paused);
}

/**
 * Checks, once per process (later calls share the answer), that adoption works on this Node;
 * from the answer on, `adoptSocket` adopts only if it did. Resolves with why it does not (for one
 * warning), or undefined. Never rejects.
 */
export function checkAdoption(): Promise<string | undefined> {
  adoptionChecked ??= probeAdoption(adoptHandle).then((problem) => {
    plainReads = problem !== undefined;
    return problem;
  });
  return adoptionChecked;
}

/** Set by `simulateBrokenAdoption`: `adoptHandle` then throws it (as adoption fails on such a Node). */
let simulatedProblem: string | undefined;

/**
 * For tests: behave as on a Node where adoption does not work, for the rest of the process:
 * `checkAdoption` says `problem`, accepted sockets read plainly, and `adoptHandle` throws.
 */
export function simulateBrokenAdoption(problem: string): void {
  simulatedProblem = problem;
  plainReads = true;
  adoptionChecked = Promise.resolve(problem);
}

/** The plain path: Node's own reads of the accepted socket, each a fresh buffer, delivered to `reader.sink` (retain() is a no-op). */
export function readPlainly(accepted: Socket, reader: SocketReader, paused = false): Socket {
  accepted.on("data", (chunk: Buffer) => reader.sink(chunk));
  // pauseOnConnect left it not flowing: a data listener alone does not start it.
  if (!paused) accepted.resume();
  return accepted;
}

/** How a probe adopts (`adoptHandle`; tests pass broken ones). */
export type Adopt = (accepted: Socket, reader: SocketReader, allowHalfOpen: boolean, paused: boolean) => Socket;

const PROBE_BYTES = "socksmith adoption check";
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Adopts one real connection over loopback (127.0.0.1, port 0) with `adopt` and checks what
 * `adoptSocket` relies on: adoption finds the accepted socket's `_handle` (else it throws); the
 * client's bytes arrive through `onread` (not as `data` events); the server counts the adopted
 * socket until it closes (so `server.close()` waits for sessions). Resolves with the first thing
 * that did not hold (or the error thrown), or undefined; bounded by a 2 s timeout; never rejects.
 */
export async function probeAdoption(adopt: Adopt): Promise<string | undefined> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const sockets: Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
  });
  const check = async (): Promise<string | undefined> => {
    server.listen({ host: "127.0.0.1", port: 0 });
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    const accepting = once(server, "connection") as Promise<[Socket]>;
    const client = connect({ host: "127.0.0.1", port });
    sockets.push(client);
    client.on("error", () => {});
    const [accepted] = await accepting;
    sockets.push(accepted);
    const reader = new SocketReader();
    const arrived: Buffer[] = [];
    let total = 0;
    let dataEvents = false;
    let arrivedAll!: () => void;
    const done = new Promise<void>((resolve) => (arrivedAll = resolve));
    reader.sink = (view) => {
      arrived.push(Buffer.from(view));
      total += view.length;
      if (total >= PROBE_BYTES.length) arrivedAll();
    };
    const socket = adopt(accepted, reader, true, false);
    sockets.push(socket);
    socket.on("error", () => {});
    socket.on("data", () => {
      dataEvents = true;
      arrivedAll();
    });
    client.write(PROBE_BYTES);
    await done;
    if (dataEvents) return "an adopted socket's bytes arrived as data events, not through onread";
    if (Buffer.concat(arrived).toString() !== PROBE_BYTES) return "an adopted socket's bytes arrived changed";
    const counted = await new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n)));
    if (counted !== 1) return `the server counts ${counted} connections with one adopted socket open`;
    socket.destroy();
    await once(socket, "close");
    const left = await new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n)));
    if (left !== 0) return `the server still counts ${left} connection(s) after the adopted socket closed`;
    return undefined;
  };
  // Caught here, not around the race: a check that fails after the timeout won must not reject unhandled.
  const checking = check().catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
  try {
    return await Promise.race([checking, timeout]);
  } finally {
    clearTimeout(timer);
    for (const socket of sockets) socket.destroy();
    server.close();
  }
}

/**
 * The fast path: re-wraps a socket accepted by a `pauseOnConnect` server in a Socket that reads
 * through `reader` (not reading yet when `paused`). The returned socket owns the connection and
 * counts toward the server's connections (so server.close() still waits for it); the original
 * must not be used again. @throws Error when the accepted socket has no `_handle` to move (or the problem simulated).
 */
export function adoptHandle(accepted: Socket, reader: SocketReader, allowHalfOpen: boolean, paused = false): Socket {
  const old = accepted as unknown as SocketInternals;
  const handle = old._handle;
  // Without it the new Socket would silently be an unconnected one.
  if (typeof handle !== "object" || handle === null) throw new Error("an accepted net.Socket has no _handle");
  if (simulatedProblem !== undefined) throw new Error(simulatedProblem);
  const server = old._server;
  old._handle = null;
  old._server = null;
  const options = { handle, allowHalfOpen, readable: true, writable: true, pauseOnCreate: paused, onread: reader.onread };
  const socket = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  const adopted = socket as unknown as SocketInternals;
  adopted._server = server;
  adopted.server = server;
  return socket;
}
