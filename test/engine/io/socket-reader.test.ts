/** Read sizes of the relay's SocketReader over a real loopback connection. */
import { once } from "node:events";
import { Socket, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SocketReader } from "../../../src/engine/io/socket-reader.js";

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** Sends `total` bytes at once to a socket that reads through a SocketReader; returns the largest read. */
async function largestRead(total: number, configure: (reader: SocketReader) => void): Promise<{ largest: number; received: number }> {
  const server = createServer((s) => {
    s.end(Buffer.alloc(total, 1));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  const reader = new SocketReader();
  configure(reader);
  let largest = 0;
  let received = 0;
  reader.sink = (view) => {
    largest = Math.max(largest, view.length);
    received += view.length;
  };
  const socket = new Socket({ onread: reader.onread } as ConstructorParameters<typeof Socket>[0]);
  cleanups.push(() => socket.destroy());
  socket.connect((server.address() as AddressInfo).port, "127.0.0.1");
  // Let the bytes pile up in the kernel first, so each read can fill the buffer.
  socket.pause();
  await new Promise((r) => setTimeout(r, 100));
  socket.resume();
  await once(socket, "end");
  return { largest, received };
}

describe("SocketReader", () => {
  it("grows reads past 64 KiB for a bulk transfer, and holds them at 64 KiB when reads are copied out", async () => {
    const total = 8 * 1024 * 1024;
    const grown = await largestRead(total, () => {});
    expect(grown.received).toBe(total);
    expect(grown.largest).toBeGreaterThan(64 * 1024);
    const copied = await largestRead(total, (r) => r.copiedReads());
    expect(copied.received).toBe(total);
    expect(copied.largest).toBe(64 * 1024);
  });
});
