/** The relay's SocketReader over real loopback connections: read sizes, retained views, memory held per socket. */
import { once } from "node:events";
import { Socket, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LANDING_SIZE, SocketReader } from "../../../src/engine/io/socket-reader.js";

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** A client socket reading through a SocketReader whose sink is `sink`, connected to a server that runs `serve` on its side. */
async function connectReader(
  serve: (s: Socket) => void,
  sink: (reader: SocketReader, view: Buffer) => void,
): Promise<{ socket: Socket; reader: SocketReader }> {
  const server = createServer(serve);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  const reader = new SocketReader();
  reader.sink = (view) => sink(reader, view);
  const socket = new Socket({ onread: reader.onread } as ConstructorParameters<typeof Socket>[0]);
  cleanups.push(() => socket.destroy());
  socket.connect((server.address() as AddressInfo).port, "127.0.0.1");
  return { socket, reader };
}

/** Sends `payload` at once to a socket that reads through a SocketReader whose sink is `sink`. */
async function receive(payload: Buffer, sink: (reader: SocketReader, view: Buffer) => void): Promise<SocketReader> {
  const { socket, reader } = await connectReader((s) => s.end(payload), sink);
  // Let the bytes pile up in the kernel first, so the first read can take them all.
  socket.pause();
  await new Promise((r) => setTimeout(r, 100));
  socket.resume();
  await once(socket, "end");
  return reader;
}

/** Writes `chunks` to `s` one per event-loop turn, or every `ms` (so the reader sees many small reads), then ends. */
function trickle(s: Socket, chunks: Buffer[], ms?: number): void {
  let i = 0;
  const step = (): void => {
    if (i === chunks.length) return void s.end();
    s.write(chunks[i++]!);
    if (ms === undefined) setImmediate(step);
    else setTimeout(step, ms);
  };
  step();
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((i + seed) * 2654435761) >>> 24;
  return b;
}

/** `count` chunks of 1 to 3,000 bytes (deterministic), cut from a pattern. */
function smallChunks(count: number, seed: number): Buffer[] {
  const all = pattern(count * 3000, seed);
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const n = 1 + ((i * 7919 + seed) % 3000);
    chunks.push(all.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

const payload = pattern(8 * 1024 * 1024, 0);

describe("SocketReader", () => {
  it("delivers what the kernel has from the very first read: 78 B, 250 B and 60,000 B each arrive as one read", async () => {
    for (const size of [78, 250, 60_000]) {
      const sizes: number[] = [];
      await receive(pattern(size, size), (_reader, view) => sizes.push(view.length));
      expect(sizes).toEqual([size]);
    }
  });

  it("grows reads past 64 KiB for a bulk transfer, up to 1 MiB", async () => {
    let largest = 0;
    let received = 0;
    await receive(payload, (_reader, view) => {
      largest = Math.max(largest, view.length);
      received += view.length;
    });
    expect(received).toBe(payload.length);
    expect(largest).toBeGreaterThan(64 * 1024);
    expect(largest).toBeLessThanOrEqual(1024 * 1024);
  });

  it("never reads into a view that was retained: kept views hold their bytes (how a data hook gets a read without a copy)", async () => {
    const kept: Buffer[] = [];
    await receive(payload, (reader, view) => {
      reader.retain();
      kept.push(view);
    });
    expect(Buffer.concat(kept).equals(payload)).toBe(true);
  });

  it("lent views keep their bytes until recycled; after recycle the next read reuses a lent buffer instead of a new one", async () => {
    // Each read is lent (its write 'pending') and checked at the next read, which then 'flushes'
    // (recycle): a lent view must hold its bytes until then, and the reads alternate between a
    // few buffers. A second reader lends without ever recycling: every read gets a new buffer.
    const received: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let pending: { view: Buffer; copy: Buffer } | undefined;
    let intact = true;
    let recycledBigReads = 0;
    await receive(payload, (reader, view) => {
      if (pending !== undefined) intact &&= pending.view.equals(pending.copy);
      reader.recycle();
      received.push(Buffer.from(view));
      if (view.length > LANDING_SIZE) {
        recycledBigReads++;
        buffers.add(view.buffer);
      }
      reader.lend();
      pending = { view, copy: Buffer.from(view) };
    });
    expect(intact).toBe(true);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    const lentOnly = new Set<ArrayBufferLike>();
    let bigReads = 0;
    const kept: Buffer[] = [];
    await receive(payload, (reader, view) => {
      reader.lend();
      kept.push(view);
      if (view.length > LANDING_SIZE) {
        bigReads++;
        lentOnly.add(view.buffer);
      }
    });
    expect(Buffer.concat(kept).equals(payload)).toBe(true);
    expect(lentOnly.size).toBe(bigReads);
    expect(bigReads).toBeGreaterThan(4);
    // Recycled: the big reads shared a handful of buffers (one per size on the way up, then two).
    expect(recycledBigReads).toBeGreaterThan(4);
    expect(buffers.size).toBeLessThan(recycledBigReads);
    expect(buffers.size).toBeLessThanOrEqual(8);
  });

  it("reuses memory when nothing is retained (so views must not be kept)", async () => {
    const views: Buffer[] = [];
    await receive(payload, (_reader, view) => views.push(view));
    const buffers = new Set(views.map((v) => v.buffer));
    expect(buffers.size).toBeLessThan(views.length);
  });

  it("retained views stay intact while other sockets read small chunks through the shared buffers", async () => {
    // Socket a retains every other read and keeps it; b and c copy theirs at once (as the
    // handshake does). All three read at the same time, mostly small reads.
    const sent = [smallChunks(1500, 1), smallChunks(1500, 2), smallChunks(1500, 3)];
    const kept: Array<Buffer | undefined> = [];
    const copies: Buffer[][] = [[], [], []];
    let reads = 0;
    const sockets = await Promise.all(
      sent.map((chunks, i) =>
        connectReader(
          (s) => trickle(s, chunks),
          (reader, view) => {
            if (i === 0 && reads++ % 2 === 0) {
              reader.retain();
              kept.push(view);
              copies[0]!.push(view);
            } else {
              if (i === 0) kept.push(undefined);
              copies[i]!.push(Buffer.from(view));
            }
          },
        ),
      ),
    );
    await Promise.all(sockets.map(({ socket }) => once(socket, "end")));
    for (let i = 0; i < 3; i++) expect(Buffer.concat(copies[i]!).equals(Buffer.concat(sent[i]!))).toBe(true);
    expect(kept.filter((k) => k !== undefined).length).toBeGreaterThan(10);
  });

  it("holds no buffer of its own while reads are small, one while a bulk transfer fills reads, and none after it", async () => {
    let most = 0;
    let during: number[] = [];
    const { socket, reader } = await connectReader(
      (s) => {
        s.write(payload);
        // After the bulk transfer, small writes: each small read halves the socket's own buffer.
        setTimeout(() => trickle(s, smallChunks(20, 9), 5), 300);
      },
      (r) => {
        most = Math.max(most, r.ownBytes);
        during.push(r.ownBytes);
      },
    );
    socket.pause();
    await new Promise((r) => setTimeout(r, 100));
    socket.resume();
    await once(socket, "end");
    expect(most).toBeGreaterThan(LANDING_SIZE);
    expect(reader.ownBytes).toBe(0);

    during = [];
    const small = await receive(Buffer.from("x".repeat(200)), (r) => during.push(r.ownBytes));
    expect(during).toEqual([0]);
    expect(small.ownBytes).toBe(0);
  });
});
