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
 *   fresh one. A relay that writes a read and finds the write still pending `lend`s the buffer
 *   instead: once the destination holds nothing unsent (`recycle`, at its next write), the lent
 *   buffer is free again and the next read goes into it rather than into a new allocation, so a
 *   bulk transfer alternates between two buffers (a fresh megabyte per read made V8 run
 *   mark-compacts for the external memory, and each new page costs a fault).
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
 *
 * Cheaper still, `acceptReading` makes the listener build each accepted Socket with `onread`
 * itself, so there is no Socket to throw away (a Socket costs about as much JavaScript as the
 * rest of a SOCKS handshake): it replaces the listening handle's `onconnection` callback (the
 * private `_handle` of net.Server, and its `_connections` count). `checkAdoption` probes that
 * path as well; where it does not hold, the listener falls back to adoption.
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
  /** The latest own buffer lent to a write that was pending when it was made (`lend`). */
  private lent: Buffer | undefined;
  /** A lent buffer whose write has finished (`recycle`): the next own buffer of its size. */
  private spare: Buffer | undefined;

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

  /**
   * `retain()` for a view written to a socket whose write is still pending: the view's own
   * buffer (not a slab copy) may be read into again once `recycle` says that socket has flushed.
   */
  lend(): void {
    if (this.retained) return;
    this.retain();
    // An earlier lent buffer is forgotten (left to the collector once its write is done).
    if (!this.landed && this.own !== undefined) this.lent = this.own;
  }

  /**
   * Every write the lent views went to has finished (the destination holds nothing unsent): the
   * latest lent buffer becomes the spare.
   */
  recycle(): void {
    if (this.lent === undefined) return;
    this.spare = this.lent;
    this.lent = undefined;
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
      this.own = this.fresh(LANDING_SIZE * 2);
      return this.own;
    }
    const size = own.length;
    let wanted = size;
    if (read === size && size < MAX_SIZE) wanted = size * 2;
    else if (read < size / 4) wanted = size / 2;
    if (wanted <= LANDING_SIZE) {
      // Back to the landing buffer: nothing of its own is kept (an idle tunnel holds no buffer).
      this.own = this.spare = this.lent = undefined;
      return landing;
    }
    if (this.retained || wanted !== size) this.own = this.fresh(wanted);
    return this.own!;
  }

  /** An own buffer of `size` bytes: the spare when it has that size, else a new one. */
  private fresh(size: number): Buffer {
    const spare = this.spare;
    this.spare = undefined;
    return spare !== undefined && spare.length === size ? spare : Buffer.allocUnsafe(size);
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
/** Whether listeners may build accepted sockets themselves (`acceptReading`), until `checkAdoption` finds that broken. */
let hookedAccepts = true;
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
  adoptionChecked ??= probeAdoption(adoptHandle).then(async (problem) => {
    plainReads = problem !== undefined;
    // Adoption is the fallback of the accept hook: no use probing the hook without it.
    if (problem === undefined && hookedAccepts) hookedAccepts = (await probeAccepting(acceptReading)) === undefined;
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

/** For tests: behave as on a Node where `acceptReading` does not work (listeners adopt), for the rest of the process. */
export function simulateBrokenAcceptHook(): void {
  hookedAccepts = false;
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

/** How a probe has a listener build its sockets (`acceptReading`; tests pass broken ones). */
export type AcceptHook = (server: Server, options: AcceptOptions, accepted: OnAccepted) => boolean;

const PROBE_BYTES = "socksmith adoption check";
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Adopts one real connection over loopback (127.0.0.1, port 0) with `adopt` and checks what
 * `adoptSocket` relies on: adoption finds the accepted socket's `_handle` (else it throws); the
 * client's bytes arrive through `onread` (not as `data` events); the server counts the adopted
 * socket until it closes (so `server.close()` waits for sessions). Resolves with the first thing
 * that did not hold (or the error thrown), or undefined; bounded by a 2 s timeout; never rejects.
 */
export function probeAdoption(adopt: Adopt): Promise<string | undefined> {
  return probe("adopted socket", (server) =>
    (once(server, "connection") as Promise<[Socket]>).then(([accepted]) => {
      const reader = new SocketReader();
      return { socket: adopt(accepted, reader, true, true), reader, accepted };
    }),
  );
}

/**
 * `probeAdoption` for the accept hook: `hook` (`acceptReading`) is installed on a loopback
 * listener, and one real connection is checked the same way (bytes through `onread`, the server
 * counting the socket until it closes). Resolves with the first thing that did not hold, or
 * undefined; bounded by a 2 s timeout; never rejects.
 */
export function probeAccepting(hook: AcceptHook): Promise<string | undefined> {
  return probe("accepted socket", async (server) => {
    await once(server, "listening");
    return new Promise((resolve, reject) => {
      server.once("connection", () => reject(new Error("the listener made its own Socket: the accept hook was not called")));
      if (!hook(server, { allowHalfOpen: true, noDelay: true }, (socket, reader) => resolve({ socket, reader })))
        reject(new Error("the listener has no onconnection callback to replace"));
    });
  });
}

/** A probe's connection: the socket that reads through `reader` (paused), and any other socket to destroy at the end. */
type Obtained = { socket: Socket; reader: SocketReader; accepted?: Socket };

async function probe(noun: string, obtain: (server: Server) => Promise<Obtained>): Promise<string | undefined> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const sockets: Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
  });
  const check = async (): Promise<string | undefined> => {
    const obtaining = obtain(server);
    // Caught by the race below when it never settles; a rejection is the answer.
    obtaining.catch(() => {});
    server.listen({ host: "127.0.0.1", port: 0 });
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    const client = connect({ host: "127.0.0.1", port });
    sockets.push(client);
    client.on("error", () => {});
    const { socket, reader, accepted } = await obtaining;
    if (accepted !== undefined) sockets.push(accepted);
    sockets.push(socket);
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
    socket.on("error", () => {});
    socket.on("data", () => {
      dataEvents = true;
      arrivedAll();
    });
    socket.resume();
    client.write(PROBE_BYTES);
    await done;
    if (dataEvents) return `an ${noun}'s bytes arrived as data events, not through onread`;
    if (Buffer.concat(arrived).toString() !== PROBE_BYTES) return `an ${noun}'s bytes arrived changed`;
    const counted = await new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n)));
    if (counted !== 1) return `the server counts ${counted} connections with one ${noun} open`;
    socket.destroy();
    await once(socket, "close");
    const left = await new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n)));
    if (left !== 0) return `the server still counts ${left} connection(s) after the ${noun} closed`;
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

/** Private fields of a listening net.Server that `acceptReading` relies on; not part of Node's public API. */
interface ServerInternals {
  _handle: { onconnection?: unknown } | null;
  _connections: number;
}

export interface AcceptOptions {
  readonly allowHalfOpen: boolean;
  /** TCP_NODELAY on every accepted socket (what the server's own `noDelay` option does). */
  readonly noDelay: boolean;
}

/** Receives each accepted socket (paused: reading starts with resume()) and the reader its reads go through. */
export type OnAccepted = (socket: Socket, reader: SocketReader) => void;

/**
 * Makes a listening `server` (created with pauseOnConnect) build its accepted sockets itself,
 * each reading through a SocketReader of its own, and hand them to `accepted` instead of its
 * `connection` event: what adoption gives, without the Socket adoption throws away. The socket is
 * paused, counts toward the server (server.close() waits for it) and knows its server, as Node's
 * own would. Accept errors, and servers with `maxConnections`, stay Node's. Returns false and
 * changes nothing where this process cannot (plain reads, the hook found broken, no listening
 * handle with an `onconnection` callback): the server's `connection` event then goes on as usual.
 */
export function acceptReading(server: Server, options: AcceptOptions, accepted: OnAccepted): boolean {
  if (plainReads || !hookedAccepts) return false;
  const internals = server as unknown as ServerInternals;
  const handle = internals._handle;
  const original = handle?.onconnection;
  if (handle === null || handle === undefined || typeof original !== "function" || typeof internals._connections !== "number") return false;
  const { allowHalfOpen, noDelay } = options;
  handle.onconnection = function onconnection(this: unknown, err: number, clientHandle: unknown): void {
    if (err !== 0 || typeof clientHandle !== "object" || clientHandle === null || server.maxConnections) {
      original.call(this, err, clientHandle);
      return;
    }
    const reader = new SocketReader();
    const init = { handle: clientHandle, allowHalfOpen, readable: true, writable: true, pauseOnCreate: true, onread: reader.onread };
    const socket = new Socket(init as ConstructorParameters<typeof Socket>[0]);
    if (noDelay) socket.setNoDelay(true);
    internals._connections++;
    const own = socket as unknown as SocketInternals;
    own._server = server;
    own.server = server;
    accepted(socket, reader);
  };
  return true;
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
