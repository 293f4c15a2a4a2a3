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
 * the original Socket never reads).
 */
import { Socket, type Server } from "node:net";

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

/**
 * Re-wraps a socket accepted by a `pauseOnConnect` server in a Socket that reads through
 * `reader` (not reading yet when `paused`). The returned socket owns the connection and counts toward the server's
 * connections (so server.close() still waits for it); the original must not be used again.
 */
export function adoptSocket(accepted: Socket, reader: SocketReader, allowHalfOpen: boolean, paused = false): Socket {
  const old = accepted as unknown as SocketInternals;
  const handle = old._handle;
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
