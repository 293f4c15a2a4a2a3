/**
 * An engine with neither hooks nor an observer (the defaults, what `run -q --no-capture` runs):
 * sessions then skip the hook calls and build no facts, and read the client's address only when
 * a request needs it. Replies, bound addresses, half-close, UDP and BIND must be what they are
 * with hooks and observers.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { decodeUdpDatagram, encodeUdpDatagram, noopObserver } from "../../../src/engine/index.js";
import { HOST, RawClient, closedPort, connect5, hex, startProxy, startServer, type TestProxy } from "../../support/net.js";

let proxy: TestProxy | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await proxy?.stop();
  proxy = undefined;
});

/** The engine under test: default hooks (allowAllHooks) and the default observer (noopObserver). */
async function bareProxy(): Promise<TestProxy> {
  proxy = await startProxy({ observer: noopObserver });
  // The fast paths this file is about: nothing to ask, nobody to tell.
  expect(proxy.engine.hooked).toBe(false);
  expect(proxy.engine.observed).toBe(false);
  return proxy;
}

/**
 * A client that sends a no-auth greeting and SOCKS5 command `cmd` (hex) for 0.0.0.0:0, and whose
 * first reply succeeded with BND.ADDR 127.0.0.1, the address it connected to.
 */
async function commandOnLoopback(cmd: string): Promise<{ client: RawClient; reply: Buffer }> {
  const client = await RawClient.connect(proxy!.port);
  cleanups.push(() => client.destroy());
  client.write(`050100 05${cmd}0001 00000000 0000`);
  expect((await client.read(2)).toString("hex")).toBe("0500");
  const reply = await client.read(10);
  expect(reply.subarray(0, 8).toString("hex")).toBe("050000017f000001");
  return { client, reply };
}

function nextMessage(socket: UdpSocket, ms = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no datagram")), ms);
    socket.once("message", (msg: Buffer) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

describe("an engine without hooks or an observer", () => {
  it("replies to a CONNECT with the upstream socket's own address, relays both ways and passes each FIN on", async () => {
    await bareProxy();
    let targetSide: Socket | undefined;
    const target = await startServer((socket) => (targetSide = socket), HOST, { allowHalfOpen: true });
    cleanups.push(() => target.close());
    const client = await RawClient.connect(proxy!.port);
    cleanups.push(() => client.destroy());
    client.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    const reply = await client.read(10);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
    await expect.poll(() => targetSide).toBeDefined();
    // BND.ADDR/BND.PORT: where the proxy's connection to the target comes from.
    expect(`${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}:${reply.readUInt16BE(8)}`).toBe(`${targetSide!.remoteAddress}:${targetSide!.remotePort}`);
    const up = once(targetSide!, "data");
    client.write(Buffer.from("up"));
    expect(String((await up)[0])).toBe("up");
    // The client's FIN reaches the target, which may still answer before its own FIN.
    const ended = once(targetSide!, "end");
    client.end();
    await ended;
    targetSide!.end("down");
    expect((await client.readToEnd()).toString()).toBe("down");
    await client.waitClosed();
  });

  it("answers REP 05 when the target refuses the connection", async () => {
    await bareProxy();
    const client = await RawClient.connect(proxy!.port);
    cleanups.push(() => client.destroy());
    client.write(Buffer.concat([hex("050100"), connect5(await closedPort())]));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10)).toString("hex")).toBe("05050001000000000000");
    await client.readToEnd();
  });

  it("relays UDP for the TCP client's address, from a relay on the address the client connected to", async () => {
    await bareProxy();
    const echo = createSocket("udp4");
    cleanups.push(() => void echo.close());
    echo.on("message", (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => echo.bind(0, HOST, resolve));
    const { reply } = await commandOnLoopback("03");
    const local = createSocket("udp4");
    cleanups.push(() => void local.close());
    await new Promise<void>((resolve) => local.bind(0, HOST, resolve));
    const answer = nextMessage(local);
    local.send(encodeUdpDatagram(HOST, echo.address().port, Buffer.from("ping")), reply.readUInt16BE(8), HOST);
    const decoded = decodeUdpDatagram(await answer);
    if (decoded.kind !== "ok") throw new Error("malformed datagram from the relay");
    expect(decoded.value.data.toString()).toBe("ping");
    expect(decoded.value.address).toMatchObject({ host: HOST, port: echo.address().port });
  });

  it("BIND listens on the address the client connected to and relays its peer", async () => {
    await bareProxy();
    const { client, reply: first } = await commandOnLoopback("02");
    const peer = connect({ host: HOST, port: first.readUInt16BE(8) });
    cleanups.push(() => void peer.destroy());
    await once(peer, "connect");
    const second = await client.read(10);
    expect(second.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(second.readUInt16BE(8)).toBe(peer.localPort);
    peer.write("from peer");
    expect((await client.read(9)).toString()).toBe("from peer");
  });
});
