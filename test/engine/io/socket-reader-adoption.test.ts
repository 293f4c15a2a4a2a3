/**
 * The adoption check (socket-reader.ts probeAdoption): on this Node, adopting an accepted socket
 * works; adoptions that break what adoptSocket relies on (no _handle, onread ignored, the server's
 * count not moved) are caught, each with its reason. And the plain path on its own: an accepted
 * socket read by Node's default reads reaches the sink, and does not flow before resume() when paused.
 * The accept hook (acceptReading) likewise: probed on this Node, its breakages caught, and the
 * sockets it gives paused, with TCP_NODELAY, knowing and counted by their server.
 */
import { connect, createServer, type Socket } from "node:net";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AcceptHook,
  type Adopt,
  SocketReader,
  acceptReading,
  adoptHandle,
  probeAccepting,
  probeAdoption,
  readPlainly,
} from "../../../src/engine/io/socket-reader.js";

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

describe("probeAccepting (the accept hook)", () => {
  it("finds nothing wrong with a listener that builds its accepted sockets on this Node", async () => {
    expect(await probeAccepting(acceptReading)).toBeUndefined();
  });

  it("catches a listener whose hook is never called (Node made its own Socket)", async () => {
    const notInstalled: AcceptHook = () => true;
    expect(await probeAccepting(notInstalled)).toBe("the listener made its own Socket: the accept hook was not called");
  });

  it("catches a Node without an onconnection callback to replace", async () => {
    const noCallback: AcceptHook = (server, ...rest) => {
      const handle = (server as unknown as { _handle: { onconnection?: unknown } })._handle;
      delete handle.onconnection;
      return acceptReading(server, ...rest);
    };
    expect(await probeAccepting(noCallback)).toBe("the listener has no onconnection callback to replace");
  });

  it("catches a Node whose server no longer counts what the hook accepted (a renamed _connections)", async () => {
    const uncounted: AcceptHook = (server, options, accepted) =>
      acceptReading(server, options, (socket, reader) => {
        // What a renamed count would do: the socket's close takes one off a count that never had it.
        (server as unknown as { _connections: number })._connections--;
        accepted(socket, reader);
      });
    expect(await probeAccepting(uncounted)).toBe("the server counts 0 connections with one accepted socket open");
  });

  it("gives each accepted socket paused, with TCP_NODELAY, knowing its server, and counted until it closes", async () => {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const got: Array<{ socket: Socket; reader: SocketReader }> = [];
    const arrived = new Promise<void>((resolve) => {
      expect(
        acceptReading(server, { allowHalfOpen: true, noDelay: true }, (socket, reader) => {
          got.push({ socket, reader });
          resolve();
        }),
      ).toBe(true);
    });
    const client = connect({ host: "127.0.0.1", port: (server.address() as { port: number }).port });
    cleanups.push(() => {
      client.destroy();
      for (const { socket } of got) socket.destroy();
      server.close();
    });
    await arrived;
    const { socket, reader } = got[0]!;
    expect(socket.isPaused()).toBe(true);
    expect((socket as unknown as { server: unknown }).server).toBe(server);
    // Node records setNoDelay(true) under a symbol of its own (no public getter for TCP_NODELAY).
    const noDelay = Object.getOwnPropertySymbols(socket).find((k) => k.description === "kSetNoDelay");
    expect(noDelay === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[noDelay]).toBe(true);
    expect(socket.remotePort).toBe(client.localPort);
    const count = (): Promise<number> => new Promise((resolve) => server.getConnections((_err, n) => resolve(n)));
    expect(await count()).toBe(1);
    // Paused (isPaused above): bytes wait in the kernel until resume(), then come through the reader.
    client.write("early");
    const seen: string[] = [];
    const all = new Promise<void>((resolve) => {
      reader.sink = (view) => {
        seen.push(view.toString());
        if (seen.join("") === "early late") resolve();
      };
    });
    expect(seen).toEqual([]);
    socket.resume();
    client.write(" late");
    await all;
    socket.destroy();
    await once(socket, "close");
    expect(await count()).toBe(0);
  });
});
