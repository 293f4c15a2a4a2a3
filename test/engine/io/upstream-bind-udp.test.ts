/**
 * BIND and UDP ASSOCIATE through upstream proxies: the last hop's BIND (its two replies, the
 * relay over the chain socket, the BIND timeout, a refusal passed on), a SOCKS5 hop's
 * association carrying re-wrapped datagrams (names sent as names for socks5h, resolved here for
 * socks5, the rules on each destination, the hop's control connection ending the association),
 * and REP 07 with the reason for routes that cannot carry the command. The upstream is a second
 * in-process engine; the clients are the `socks` package or raw bytes. All over loopback.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { SocksClient } from "socks";
import { describe, expect, it } from "vitest";
import { Credentials, DestinationRules, allowAllHooks, parseUpstream, type HookRunner, type Route } from "../../../src/engine/index.js";
import { encodeUdpDatagram } from "../../../src/engine/codec/udp.js";
import { HOST, RawClient, closedPort, fakeLookup, found, hex, until, useTestProxies, withTimeout, type TestProxy } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

function route(...urls: string[]): Route {
  return urls.map(parseUpstream);
}

/** An engine whose observer also records datagrams. */
async function recordingDatagrams(options: Parameters<typeof proxy>[0] = {}): Promise<TestProxy> {
  const p = await proxy(options);
  p.observer.datagram = (fact) => p.observer.facts.push({ kind: "datagram", fact });
  return p;
}

/** The details of a proxy's anomalies with `code`. */
function anomalies(p: TestProxy, code: string): string[] {
  return p.observer.of("anomaly").flatMap((a) => (a.code === code ? [a.detail] : []));
}

/** Connects to a BIND listener as the remote peer. */
async function peerConnect(port: number, host = HOST): Promise<Socket> {
  const socket = connect({ host, port, allowHalfOpen: true });
  cleanups.push(() => void socket.destroy());
  socket.on("error", () => {});
  await withTimeout(once(socket, "connect"), 3000, "the peer could not connect");
  return socket;
}

function bindRequest5(expectedIp: string, port = 0): Buffer {
  return Buffer.concat([hex("050100 05020001"), Buffer.from(expectedIp.split(".").map(Number)), Buffer.from([port >> 8, port & 0xff])]);
}

async function rawClient(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  cleanups.push(() => client.destroy());
  return client;
}

/** A UDP socket on loopback, closed after the test. */
async function udpSocket(): Promise<UdpSocket> {
  const socket = createSocket("udp4");
  socket.bind(0, HOST);
  await once(socket, "listening");
  cleanups.push(() => void socket.close());
  return socket;
}

/** A UDP echo server; `seen` records every datagram it got and where from. */
async function udpEcho() {
  const socket = await udpSocket();
  const seen: { data: string; from: string }[] = [];
  socket.on("message", (msg, rinfo) => {
    seen.push({ data: msg.toString(), from: `${rinfo.address}:${rinfo.port}` });
    socket.send(msg, rinfo.port, rinfo.address);
  });
  return { port: socket.address().port, seen };
}

/** The next datagram `socket` receives, or undefined after `ms`. */
function nextMessage(socket: UdpSocket, ms = 2000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.removeListener("message", on);
      resolve(undefined);
    }, ms);
    const on = (msg: Buffer) => {
      clearTimeout(timer);
      resolve(msg);
    };
    socket.once("message", on);
  });
}

/** A UDP association at `port` opened by the `socks` package; its relay and the control socket. */
async function associate(port: number): Promise<{ relay: { host: string; port: number }; control: Socket }> {
  const client = new SocksClient({ proxy: { host: HOST, port, type: 5 }, command: "associate", destination: { host: "0.0.0.0", port: 0 } });
  client.on("error", () => {});
  const established = new Promise<{ remoteHost: { host: string; port: number }; socket: Socket }>((resolve) =>
    client.once("established", (info) => resolve(info as never)),
  );
  client.connect();
  const info = await withTimeout(established, 5000, "no UDP association");
  cleanups.push(() => void info.socket.destroy());
  return { relay: info.remoteHost, control: info.socket };
}

/** Sends `data` for `host:port` through the relay and resolves with the unwrapped answer. */
async function exchange(local: UdpSocket, relay: { host: string; port: number }, host: string, port: number, data: string) {
  const answer = nextMessage(local);
  local.send(SocksClient.createUDPFrame({ remoteHost: { host, port }, data: Buffer.from(data) }), relay.port, relay.host);
  const got = await answer;
  if (got === undefined) throw new Error(`no answer to ${JSON.stringify(data)}`);
  return SocksClient.parseUDPFrame(got);
}

describe("BIND through an upstream", () => {
  for (const [scheme, type] of [
    ["socks5", 5],
    ["socks5h", 5],
    ["socks4a", 4],
  ] as const) {
    it(`${scheme} hop, SOCKS${type} client: the first reply is the hop's listener, the second the peer, then bytes both ways`, async () => {
      const back = await proxy();
      const front = await proxy({ route: () => route(`${scheme}://${HOST}:${back.port}`) });
      const client = new SocksClient({ proxy: { host: HOST, port: front.port, type }, command: "bind", destination: { host: "0.0.0.0", port: 0 } });
      client.on("error", () => {});
      const bound = new Promise<{ remoteHost: { host: string; port: number } }>((resolve) => client.once("bound", (info) => resolve(info as never)));
      const established = new Promise<{ socket: Socket; remoteHost: { host: string; port: number } }>((resolve) =>
        client.once("established", (info) => resolve(info as never)),
      );
      client.connect();
      const first = (await withTimeout(bound, 5000, "no first BIND reply")).remoteHost;
      // The address the back engine listens on, as its own first reply said.
      const backFirst = back.observer.of("reply").find((r) => r.stage === "bind-first");
      expect(backFirst).toMatchObject({ rep: 0, bound: { host: HOST, port: first.port } });
      expect(first.host).toBe(HOST);
      const peer = await peerConnect(first.port);
      const info = await withTimeout(established, 5000, "no second BIND reply");
      cleanups.push(() => void info.socket.destroy());
      expect(info.remoteHost).toEqual({ host: HOST, port: peer.localPort });
      peer.write("from the peer");
      const [down] = await withTimeout(once(info.socket, "data"), 3000, "nothing from the peer");
      expect(String(down)).toBe("from the peer");
      info.socket.write("from the client");
      const [up] = await withTimeout(once(peer, "data"), 3000, "nothing from the client");
      expect(String(up)).toBe("from the client");
      const replies = front.observer.of("reply");
      expect(replies.map((r) => [r.stage, r.rep])).toEqual([
        ["bind-first", 0],
        ["bind-second", 0],
      ]);
      expect(replies[0]!.route).toEqual([`${scheme}://${HOST}:${back.port}`]);
      expect(anomalies(front, "upstream-cannot-carry")).toEqual([]);
    });
  }

  it("two hops (socks5, then socks4a): the last hop listens and the relay runs over the whole chain", async () => {
    const last = await proxy();
    const middle = await proxy();
    const front = await proxy({ route: () => route(`socks5://${HOST}:${middle.port}`, `socks4a://${HOST}:${last.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("127.0.0.1"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    const first = await client.read(10);
    expect(first.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(last.observer.first("request")).toMatchObject({ command: "bind", version: 4 });
    expect(middle.observer.first("request")).toMatchObject({ command: "connect", destination: { port: last.port } });
    const peer = await peerConnect(first.readUInt16BE(8));
    expect((await client.read(10))[1]).toBe(0);
    client.write(Buffer.from("up"));
    const [up] = await withTimeout(once(peer, "data"), 3000, "nothing from the client");
    expect(String(up)).toBe("up");
    peer.write("down");
    expect((await client.read(4)).toString()).toBe("down");
  });

  it("the hop refusing our credentials is REP 01 with an event naming the hop (no password)", async () => {
    const credentials = new Credentials();
    credentials.add("alice", "s3cret");
    const back = await proxy({ credentials });
    const front = await proxy({ route: () => route(`socks5://alice:wrong@${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(1);
    const [event] = anomalies(front, "upstream-auth-failed");
    expect(event).toContain(`hop 1 socks5://${HOST}:${back.port}`);
    expect(event).not.toContain("wrong");
  });

  it("the peer's first bytes, sent as it connects, reach the client after the second reply", async () => {
    const back = await proxy();
    const front = await proxy({ route: () => route(`socks5://${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    const first = await client.read(10);
    expect(first.subarray(0, 4).toString("hex")).toBe("05000001");
    const peer = await peerConnect(first.readUInt16BE(8));
    peer.end("hello at once");
    const second = await client.read(10);
    expect(second.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(second.readUInt16BE(8)).toBe(peer.localPort);
    expect((await client.readToEnd()).toString()).toBe("hello at once");
  });

  it("no peer within the BIND timeout: the second reply is REP 06, and the chain to the hop is closed", async () => {
    const back = await proxy();
    const front = await proxy({ bindTimeoutMs: 300, route: () => route(`socks5://${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(0);
    const second = await client.read(10, 5000);
    expect(second[1]).toBe(6);
    expect((await client.readToEnd()).length).toBe(0);
    // The hop's BIND session ends with the chain, long before its own 120 s timeout.
    const backSession = back.observer.first("request").id;
    await back.observer.closed(backSession, 3000);
    expect(front.observer.last("reply")).toMatchObject({ stage: "bind-second", rep: 6 });
  });

  it("the hop refusing the BIND is passed on in the first reply (REP 02)", async () => {
    const hooks: HookRunner = { ...allowAllHooks, request: () => ({ deny: "DENIED" }) };
    const back = await proxy({ hooks });
    const front = await proxy({ route: () => route(`socks5://${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(2);
    const reply = front.observer.last("reply");
    expect(reply).toMatchObject({ stage: "bind-first", rep: 2 });
    expect(reply.attempts).toEqual([expect.stringMatching(/hop 1 socks5:\/\/.*refused the BIND with REP 0x02/)]);
  });

  it("the rules refuse a peer the hop reports (REP 02 in the second reply)", async () => {
    const back = await proxy();
    const rules = new DestinationRules([{ action: "deny", text: "127.0.0.1/32" }]);
    const front = await proxy({ rules, route: () => route(`socks5://${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    const first = await client.read(10);
    expect(first[1]).toBe(0);
    await peerConnect(first.readUInt16BE(8));
    expect((await client.read(10))[1]).toBe(2);
    expect(anomalies(front, "denied-by-rule")).toEqual([expect.stringContaining("BIND peer 127.0.0.1")]);
  });

  it("an http route cannot carry BIND: REP 07 and the reason recorded", async () => {
    const front = await proxy({ route: () => route(`http://${HOST}:3128`) });
    const client = await rawClient(front.port);
    client.write(bindRequest5("0.0.0.0"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(7);
    expect(anomalies(front, "upstream-cannot-carry")).toEqual([expect.stringMatching(/HTTP CONNECT has no BIND/)]);
  });
});

describe("UDP ASSOCIATE through a SOCKS5 upstream", () => {
  it("socks5: datagrams reach the echo server through the hop's association and come back from the echo server's address", async () => {
    const echo = await udpEcho();
    const back = await recordingDatagrams();
    const front = await recordingDatagrams({ route: () => route(`socks5://${HOST}:${back.port}`), lookup: fakeLookup({ "echo.test": [HOST] }) });
    const { relay } = await associate(front.port);
    const local = await udpSocket();
    for (const [host, data] of [
      [HOST, "one"],
      ["echo.test", "two"],
    ] as const) {
      const frame = await exchange(local, relay, host, echo.port, data);
      expect(frame.data.toString()).toBe(data);
      expect(frame.remoteHost).toEqual({ host: HOST, port: echo.port });
    }
    expect(echo.seen.map((s) => s.data)).toEqual(["one", "two"]);
    // The hop saw the association and relayed both; socks5 resolved the name here, so the hop got the address.
    expect(back.observer.first("reply")).toMatchObject({ command: "udp", rep: 0 });
    const backUp = back.observer.of("datagram").filter((d) => d.direction === "up");
    expect(backUp.map((d) => [d.verdict, d.peer?.host, d.received.toString()])).toEqual([
      ["relayed", HOST, "one"],
      ["relayed", HOST, "two"],
    ]);
    // The echo server saw the hop's relay socket, not ours.
    expect(new Set(echo.seen.map((s) => s.from)).size).toBe(1);
    const frontUp = front.observer.of("datagram").filter((d) => d.direction === "up");
    expect(frontUp.map((d) => d.to)).toEqual([
      { host: HOST, port: echo.port },
      { host: HOST, port: echo.port },
    ]);
    const frontDown = front.observer.of("datagram").filter((d) => d.direction === "down");
    expect(frontDown.map((d) => [d.verdict, d.from])).toEqual([
      ["relayed", { host: HOST, port: echo.port }],
      ["relayed", { host: HOST, port: echo.port }],
    ]);
    expect(front.observer.first("reply").route).toEqual([`socks5://${HOST}:${back.port}`]);
  });

  it("socks5h: a name goes to the hop as the name and the hop resolves it", async () => {
    const echo = await udpEcho();
    const back = await recordingDatagrams({ lookup: fakeLookup({ "echo.test": [HOST] }) });
    const frontLookup = fakeLookup({});
    const front = await recordingDatagrams({ route: () => route(`socks5h://${HOST}:${back.port}`), lookup: frontLookup });
    const { relay } = await associate(front.port);
    const local = await udpSocket();
    const frame = await exchange(local, relay, "echo.test", echo.port, "by name");
    expect(frame.data.toString()).toBe("by name");
    expect(frame.remoteHost).toEqual({ host: HOST, port: echo.port });
    expect(frontLookup.asked).toEqual([]);
    const backUp = found(
      back.observer.of("datagram").find((d) => d.direction === "up"),
      "the hop's up datagram",
    );
    expect(backUp.peer).toEqual({ type: "domain", host: "echo.test", port: echo.port });
    expect(front.observer.of("datagram").find((d) => d.direction === "up")?.to).toEqual({ host: "echo.test", port: echo.port });
  });

  it("the rules still apply to each datagram's destination: a denied one never reaches the hop", async () => {
    const echo = await udpEcho();
    const back = await recordingDatagrams();
    const rules = new DestinationRules([{ action: "deny", text: `:${echo.port}` }]);
    const front = await recordingDatagrams({ rules, route: () => route(`socks5://${HOST}:${back.port}`) });
    const { relay } = await associate(front.port);
    const local = await udpSocket();
    local.send(encodeUdpDatagram(HOST, echo.port, Buffer.from("denied")), relay.port, relay.host);
    await until(() => front.observer.of("datagram").length > 0, 3000, "the datagram was not recorded");
    expect(front.observer.of("datagram")[0]).toMatchObject({ verdict: "dropped", reason: "denied" });
    expect(back.observer.of("datagram")).toEqual([]);
    expect(echo.seen).toEqual([]);
  });

  it("the hop closing the association's control connection ends the association", async () => {
    const back = await proxy();
    const front = await proxy({ route: () => route(`socks5://${HOST}:${back.port}`) });
    const { control } = await associate(front.port);
    const frontSession = front.observer.first("request").id;
    const controlClosed = once(control, "close");
    back.engine.destroyAll();
    const closed = await front.observer.closed(frontSession, 3000);
    expect(closed.reason).toBe("completed");
    expect(anomalies(front, "upstream-association-ended")).toEqual([expect.stringMatching(/hop 1 socks5:\/\/.*closed the UDP ASSOCIATE control connection/)]);
    await withTimeout(controlClosed, 3000, "the client's control connection stayed open");
  });

  it("the hop refusing the association gives the client its failure reply", async () => {
    const hooks: HookRunner = { ...allowAllHooks, request: () => ({ deny: "DENIED" }) };
    const back = await proxy({ hooks });
    const front = await proxy({ route: () => route(`socks5://${HOST}:${back.port}`) });
    const client = await rawClient(front.port);
    client.write(hex("050100 0503000100000000 0000"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(2);
    expect(front.observer.last("reply")).toMatchObject({ command: "udp", rep: 2 });
    expect(front.observer.last("reply").attempts).toEqual([expect.stringMatching(/refused the UDP ASSOCIATE with REP 0x02/)]);
  });

  it("a hop that is down is REP 05; one refusing our credentials REP 01 with the event", async () => {
    const nobody = await closedPort();
    const down = await proxy({ route: () => route(`socks5://${HOST}:${nobody}`) });
    const client = await rawClient(down.port);
    client.write(hex("050100 0503000100000000 0000"));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(10))[1]).toBe(5);
    expect(down.observer.last("reply").attempts).toEqual([expect.stringMatching(/^hop 1 socks5:/)]);
    const credentials = new Credentials();
    credentials.add("alice", "s3cret");
    const back = await proxy({ credentials });
    const bad = await proxy({ route: () => route(`socks5://alice:wrong@${HOST}:${back.port}`) });
    const other = await rawClient(bad.port);
    other.write(hex("050100 0503000100000000 0000"));
    expect((await other.read(2)).toString("hex")).toBe("0500");
    expect((await other.read(10))[1]).toBe(1);
    expect(anomalies(bad, "upstream-auth-failed")).toEqual([expect.stringContaining(`hop 1 socks5://${HOST}:${back.port}`)]);
    // With the right credentials the association goes through.
    const good = await proxy({ route: () => route(`socks5://alice:s3cret@${HOST}:${back.port}`) });
    const echo = await udpEcho();
    const { relay } = await associate(good.port);
    const frame = await exchange(await udpSocket(), relay, HOST, echo.port, "authenticated");
    expect(frame.data.toString()).toBe("authenticated");
  });

  for (const [what, urls, reason] of [
    ["an http route", [`http://${HOST}:3128`], /only SOCKS5 upstreams relay datagrams/],
    ["a socks4 route", [`socks4://${HOST}:1080`], /only SOCKS5 upstreams relay datagrams/],
    ["a chain of two", [`socks5://${HOST}:1080`, `socks5://${HOST}:1081`], /one SOCKS5 upstream only/],
  ] as const) {
    it(`${what} cannot carry UDP: REP 07 and the reason recorded`, async () => {
      const front = await proxy({ route: () => route(...urls) });
      const client = await rawClient(front.port);
      client.write(hex("050100 0503000100000000 0000"));
      expect((await client.read(2)).toString("hex")).toBe("0500");
      expect((await client.read(10))[1]).toBe(7);
      expect(anomalies(front, "upstream-cannot-carry")).toEqual([expect.stringMatching(reason)]);
    });
  }
});
