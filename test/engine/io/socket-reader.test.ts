/** The relay's SocketReader over a real loopback connection: read sizes and retained views. */
import { once } from "node:events";
import { Socket, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SocketReader } from "../../../src/engine/io/socket-reader.js";

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** Sends `payload` at once to a socket that reads through a SocketReader whose sink is `sink`. */
async function receive(payload: Buffer, sink: (reader: SocketReader, view: Buffer) => void): Promise<void> {
  const server = createServer((s) => s.end(payload));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  const reader = new SocketReader();
  reader.sink = (view) => sink(reader, view);
  const socket = new Socket({ onread: reader.onread } as ConstructorParameters<typeof Socket>[0]);
  cleanups.push(() => socket.destroy());
  socket.connect((server.address() as AddressInfo).port, "127.0.0.1");
  // Let the bytes pile up in the kernel first, so reads can fill the buffer.
  socket.pause();
  await new Promise((r) => setTimeout(r, 100));
  socket.resume();
  await once(socket, "end");
}

const payload = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 2654435761) >>> 24;

describe("SocketReader", () => {
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

  it("reuses its buffer when nothing is retained (so views must not be kept)", async () => {
    const views: Buffer[] = [];
    await receive(payload, (_reader, view) => views.push(view));
    const buffers = new Set(views.map((v) => v.buffer));
    expect(buffers.size).toBeLessThan(views.length);
  });
});
