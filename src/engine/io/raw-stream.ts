/**
 * A relayed socket seen as a plain Duplex, for TLS interception: Node's TLSSocket wraps it
 * (tls-gate.ts) and the bytes already read from the socket (the ClientHello) are read again
 * first. Reads come from the socket's SocketReader (copied, since a read view lives for one
 * call); a full readable buffer pauses the socket and `_read` resumes it. Writes complete when
 * the socket has flushed them, so the Duplex's own buffer carries the backpressure. A FIN ends
 * the readable side only (half-close); an error or close of the socket destroys the Duplex.
 *
 * Also the one place that knows how to reset what a TLS socket sits on: `resetSocket` sends a
 * RST on the raw TCP socket under a TLSSocket (Node's `resetAndDestroy` refuses a TLS handle).
 */
import { Duplex } from "node:stream";
import { Socket } from "node:net";
import { TLSSocket, createSecureContext } from "node:tls";
import type { SocketReader } from "./socket-reader.js";

let native: boolean | undefined;

/**
 * Whether TLS can run on a relayed socket's own handle, its ClientHello (already read) handed
 * over with `receivePrelude`: Node's TLSSocket over a net.Socket is native (no JavaScript per
 * read), but feeding it bytes read before uses an undocumented method of its handle
 * (`receive`). Checked once per process on a throwaway socket; without it the engine wraps
 * sockets in a RawStream (slower: every read crosses JavaScript twice).
 */
export function nativeTlsHandles(): boolean {
  if (native === undefined) {
    let probe: TLSSocket | undefined;
    try {
      probe = new TLSSocket(new Socket(), { isServer: true, secureContext: createSecureContext() });
      native = typeof (probe as unknown as { _handle?: { receive?: unknown } })._handle?.receive === "function";
    } catch {
      native = false;
    } finally {
      probe?.destroy();
    }
  }
  return native;
}

/** For tests: behave as on a Node where TLS cannot be fed a prelude (the RawStream path). */
export function simulateNoNativeTls(): void {
  native = false;
}

/**
 * Hands `prelude` (bytes read from the socket before it was wrapped: the ClientHello) to a
 * TLSSocket made over that socket, as if it had just read them. Only when `nativeTlsHandles()`.
 */
export function receivePrelude(socket: TLSSocket, prelude: Buffer): void {
  (socket as unknown as { _handle: { receive(data: Buffer): void } })._handle.receive(prelude);
}

/** The raw TCP socket under each TLS socket the engine relays. */
const rawUnder = new WeakMap<Socket, Socket>();

/** Records that `wrapper` (a TLSSocket) runs over `raw`, for `resetSocket`. */
export function setRawSocket(wrapper: Socket, raw: Socket): void {
  rawUnder.set(wrapper, raw);
}

/** Ends `socket` with a TCP RST: on its raw socket when it is a TLS socket the engine wrapped. */
export function resetSocket(socket: Socket): void {
  const raw = rawUnder.get(socket);
  if (raw === undefined) return void socket.resetAndDestroy();
  if (!raw.destroyed) raw.resetAndDestroy();
  socket.destroy();
}

export class RawStream extends Duplex {
  constructor(
    private readonly socket: Socket,
    reader: SocketReader,
    /** Bytes read from the socket before (they come out first). */
    initial: Buffer | undefined,
    /** The socket's FIN came before. */
    ended: boolean,
  ) {
    super({ allowHalfOpen: true });
    if (initial !== undefined && initial.length > 0) this.push(initial);
    reader.sink = (view) => {
      if (!this.push(Buffer.from(view))) socket.pause();
    };
    if (ended) this.push(null);
    else socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  override _read(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.socket.destroyed || this.socket.writableEnded) return callback();
    this.socket.write(chunk, () => callback());
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
    callback();
  }

  /**
   * After our FIN (the TLS socket ended gracefully) the socket flushes what it still holds and
   * closes by itself; anything else tears it down now.
   */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const socket = this.socket;
    if (!socket.destroyed) {
      if (err === null && socket.writableEnded) socket.destroySoon();
      else socket.destroy();
    }
    callback(err);
  }
}
