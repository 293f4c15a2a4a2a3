/**
 * BIND (SOCKS5 and SOCKS4) over loopback: the `socks` package as a real client, and raw bytes
 * for the two replies, the peer check and the BIND timeout.
 */
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { SocksClient } from "socks";
import { afterEach, describe, expect, it } from "vitest";
import { allowAllHooks, type ReplyInfo } from "../../../src/engine/index.js";
import { RawClient, hex, startProxy, type TestProxy } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

let proxy: TestProxy | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await proxy?.stop();
  proxy = undefined;
});

/** Connects to the BIND listener as the "remote peer", optionally from another loopback IP. */
async function peerConnect(port: number, localAddress = "127.0.0.1"): Promise<Socket> {
  const s = connect({ host: "127.0.0.1", port, localAddress, allowHalfOpen: true });
  sockets.push(s);
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

function bindRequest5(expectedIp: string, port = 0): Buffer {
  return Buffer.concat([hex("050100 05020001"), Buffer.from(expectedIp.split(".").map(Number)), Buffer.from([port >> 8, port & 0xff])]);
}

describe("BIND with the socks package", () => {
  for (const type of [5, 4] as const) {
    it(`SOCKS${type}: bound, then established, then a relay both ways`, async () => {
      proxy = await startProxy();
      const client = new SocksClient({ proxy: { host: "127.0.0.1", port: proxy.port, type }, command: "bind", destination: { host: "0.0.0.0", port: 0 } });
      const bound = new Promise<{ remoteHost: { host: string; port: number } }>((resolve) => client.once("bound", (info) => resolve(info as never)));
      type Established = { socket: Socket; remoteHost: { host: string; port: number } };
      const established = new Promise<Established>((resolve) => client.once("established", (info) => resolve(info as never)));
      client.on("error", () => {});
      client.connect();
      const first = await bound;
      expect(first.remoteHost.host).toBe("127.0.0.1");
      expect(first.remoteHost.port).toBeGreaterThan(0);
      const peer = await peerConnect(first.remoteHost.port);
      const info = await established;
      sockets.push(info.socket);
      expect(info.remoteHost).toEqual({ host: "127.0.0.1", port: peer.localPort });
      peer.write("from peer");
      const [fromPeer] = await once(info.socket, "data");
      expect(fromPeer.toString()).toBe("from peer");
      info.socket.write("from client");
      const [fromClient] = await once(peer, "data");
      expect(fromClient.toString()).toBe("from client");
    });
  }
});

describe("BIND raw (scenarios 51-53)", () => {
  it("#51 happy path: first reply with the listening IP (not 0.0.0.0), second with the peer, then relay and half-close", async () => {
    proxy = await startProxy();
    const c = await RawClient.connect(proxy.port);
    c.write(bindRequest5("127.0.0.1"));
    expect((await c.read(2)).toString("hex")).toBe("0500");
    const first = await c.read(10);
    expect(first.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    const port = first.readUInt16BE(8);
    const peer = await peerConnect(port);
    const second = await c.read(10);
    expect(second.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(second.readUInt16BE(8)).toBe(peer.localPort);
    c.write(Buffer.from("ping"));
    const [got] = await once(peer, "data");
    expect(got.toString()).toBe("ping");
    peer.end("pong");
    expect((await c.readToEnd()).toString()).toBe("pong");
    c.end();
    const closed = await proxy.observer.lastClosed();
    expect(closed).toMatchObject({ reason: "completed", bytesUpReceived: 4, bytesDownReceived: 4 });
    // The listener accepted exactly one connection and is gone.
    await expect(peerConnect(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("a peer that connects before the first reply went out is held, then reported in the second reply and relayed", async () => {
    // The reply hook connects the peer to the listener and only then lets the first reply go.
    let early: Socket | undefined;
    const reply = async (info: ReplyInfo) => {
      if (info.stage === "bind-first") early = await peerConnect(info.bound.port);
      return undefined;
    };
    proxy = await startProxy({ hooks: { ...allowAllHooks, reply } });
    const c = await RawClient.connect(proxy.port);
    c.write(bindRequest5("127.0.0.1"));
    expect((await c.read(2)).toString("hex")).toBe("0500");
    const first = await c.read(10);
    expect(first.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    const second = await c.read(10);
    expect(second.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(second.readUInt16BE(8)).toBe(early!.localPort);
    early!.write("held");
    expect((await c.read(4)).toString()).toBe("held");
    c.write(Buffer.from("back"));
    const [got] = await once(early!, "data");
    expect(got.toString()).toBe("back");
    // The one connection closed the listener: the port is released.
    await expect(peerConnect(first.readUInt16BE(8))).rejects.toThrow(/ECONNREFUSED/);
  });

  it("a peer that connects and resets before the first reply went out: the client gets a failure second reply, not a wait forever", async () => {
    const reply = async (info: ReplyInfo) => {
      if (info.stage !== "bind-first") return undefined;
      const early = await peerConnect(info.bound.port);
      early.resetAndDestroy();
      await once(early, "close");
      await new Promise((resolve) => setTimeout(resolve, 50)); // the proxy's side sees the reset
      return undefined;
    };
    proxy = await startProxy({ hooks: { ...allowAllHooks, reply } });
    const c = await RawClient.connect(proxy.port);
    c.write(bindRequest5("127.0.0.1"));
    expect((await c.read(2)).toString("hex")).toBe("0500");
    expect((await c.read(10))[1]).toBe(0);
    const second = await c.readToEnd(3000);
    expect(second[0]).toBe(5);
    expect(second[1]).not.toBe(0);
  });

  it("#52 peer mismatch: a connection from another IP gets a failure second reply and both close", async () => {
    proxy = await startProxy();
    const c = await RawClient.connect(proxy.port);
    c.write(bindRequest5("127.0.0.1"));
    await c.read(2);
    const port = (await c.read(10)).readUInt16BE(8);
    const stranger = await peerConnect(port, "127.0.0.2");
    const strangerEnded = once(stranger, "end");
    stranger.resume();
    expect((await c.readToEnd()).toString("hex")).toBe("05020001000000000000");
    await strangerEnded;
    expect(proxy.observer.of("anomaly").map((a) => a.code)).toContain("bind-peer-mismatch");
  });

  it("#53 timeout: no peer within the BIND timeout gets a failure reply and the port is released", async () => {
    const clock = new ManualClock();
    proxy = await startProxy({ bindTimeoutMs: 200, clock });
    const c = await RawClient.connect(proxy.port);
    // Closed before stop(): its session lingers after the failure reply, and stop's grace runs on this clock.
    sockets.push(c.socket);
    c.write(bindRequest5("0.0.0.0"));
    await c.read(2);
    const port = (await c.read(10)).readUInt16BE(8);
    await clock.armed(200);
    // The failure reply is reported as the timer fires (inside advance): none 1 ms before the deadline.
    clock.advance(199);
    expect(proxy.observer.of("reply")).toHaveLength(1);
    clock.advance(1);
    expect(proxy.observer.of("reply")).toHaveLength(2);
    expect((await c.readToEnd(2000)).toString("hex")).toBe("05060001000000000000");
    await expect(peerConnect(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("#53 the client closing while BIND waits closes the listener", async () => {
    proxy = await startProxy();
    const c = await RawClient.connect(proxy.port);
    c.write(bindRequest5("0.0.0.0"));
    await c.read(2);
    const port = (await c.read(10)).readUInt16BE(8);
    c.end();
    const closed = await proxy.observer.lastClosed();
    expect(closed.reason).toBe("client-closed");
    // The listener is closed before the session's close fact is reported: no wait needed.
    await expect(peerConnect(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("SOCKS4 BIND: 8-byte replies with VN 0, CD 90, and a CD 91 second reply on mismatch", async () => {
    proxy = await startProxy();
    const c = await RawClient.connect(proxy.port);
    c.write("04 02 0000 7f000001 00");
    const first = await c.read(8);
    expect(first.subarray(0, 2).toString("hex")).toBe("005a");
    expect(first.subarray(4).toString("hex")).toBe("7f000001");
    const peer = await peerConnect(first.readUInt16BE(2));
    const second = await c.read(8);
    expect(second.toString("hex")).toBe(`005a${peer.localPort!.toString(16).padStart(4, "0")}7f000001`);

    const d = await RawClient.connect(proxy.port);
    d.write("04 02 0000 7f000001 00");
    const port = (await d.read(8)).readUInt16BE(2);
    await peerConnect(port, "127.0.0.3");
    expect((await d.readToEnd()).toString("hex")).toBe("005b000000000000");
  });
});
