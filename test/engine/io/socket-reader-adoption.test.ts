/**
 * The adoption check (socket-reader.ts probeAdoption): on this Node, adopting an accepted socket
 * works; adoptions that break what adoptSocket relies on (no _handle, onread ignored, the server's
 * count not moved) are caught, each with its reason. And the plain path on its own: an accepted
 * socket read by Node's default reads reaches the sink, and does not flow before resume() when paused.
 */
import { connect, createServer, type Socket } from "node:net";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { type Adopt, SocketReader, adoptHandle, probeAdoption, readPlainly } from "../../../src/engine/io/socket-reader.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe("probeAdoption", () => {
  it("finds nothing wrong with adopting a real loopback connection on this Node", async () => {
    expect(await probeAdoption(adoptHandle)).toBeUndefined();
  });

  it("catches a Node that ignores onread for an adopted handle (bytes come as data events)", async () => {
    // What adoption would do if `onread` stopped being honoured: the socket reads the Node way.
    const ignoresOnread: Adopt = (accepted) => accepted.resume();
    expect(await probeAdoption(ignoresOnread)).toBe("an adopted socket's bytes arrived as data events, not through onread");
  });

  it("catches a Node whose server no longer counts the adopted socket (a renamed _server)", async () => {
    const losesServer: Adopt = (accepted, reader, allowHalfOpen, paused) => {
      const socket = adoptHandle(accepted, reader, allowHalfOpen, paused);
      Object.assign(socket, { _server: null, server: null });
      return socket;
    };
    expect(await probeAdoption(losesServer)).toBe("the server still counts 1 connection(s) after the adopted socket closed");
  });

  it("catches a Node whose accepted sockets keep their handle elsewhere (no _handle)", async () => {
    const noHandle: Adopt = (accepted, ...rest) => adoptHandle(Object.assign(accepted, { _handle: undefined }), ...rest);
    expect(await probeAdoption(noHandle)).toBe("an accepted net.Socket has no _handle");
  });
});

describe("readPlainly (the fallback)", () => {
  async function acceptedPair(): Promise<{ client: Socket; accepted: Socket }> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const accepting = once(server, "connection") as Promise<[Socket]>;
    const client = connect({ host: "127.0.0.1", port: (server.address() as { port: number }).port });
    const [accepted] = await accepting;
    cleanups.push(() => {
      client.destroy();
      accepted.destroy();
      server.close();
    });
    return { client, accepted };
  }

  it("delivers every byte of the accepted socket to the sink, and does not flow before resume() when paused", async () => {
    const { client, accepted } = await acceptedPair();
    const reader = new SocketReader();
    const got: Buffer[] = [];
    let total = 0;
    const all = 3 * 1024 * 1024;
    const done = new Promise<void>((resolve) => {
      reader.sink = (view) => {
        got.push(Buffer.from(view));
        total += view.length;
        if (total === all) resolve();
      };
    });
    const socket = readPlainly(accepted, reader, true);
    expect(socket).toBe(accepted);
    const payload = Buffer.alloc(all, 0);
    for (let i = 0; i < all; i += 4) payload.writeUInt32LE(i, i);
    // Paused, as adoption leaves it: the data listener did not set it flowing.
    expect(socket.readableFlowing).toBe(false);
    client.write(payload.subarray(0, 1000));
    socket.resume();
    client.write(payload.subarray(1000));
    await done;
    expect(Buffer.concat(got).equals(payload)).toBe(true);
  });
});
