/**
 * UDP ASSOCIATE over loopback: the `socks` package as a real client, and raw datagrams for
 * the association's rules: source IP and port checks, FRAG and bad headers, DNS failures, its lifetime, unsolicited hosts, sizes.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { SocksClient } from "socks";
import ipaddr from "ipaddr.js";
import { afterEach, describe, expect, it } from "vitest";
import { encodeUdpDatagram, decodeUdpDatagram, type UdpDatagram } from "../../../src/engine/codec/udp.js";
import type { EngineOptions } from "../../../src/engine/index.js";
import { RawClient, fakeLookup, found, hex, sleep, startProxy, type TestProxy, until } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

let proxy: TestProxy | undefined;
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await proxy?.stop();
  proxy = undefined;
});

function udpSocket(type: "udp4" | "udp6" = "udp4", address = type === "udp4" ? "127.0.0.1" : "::1"): Promise<UdpSocket> {
  const socket = createSocket(type);
  closers.push(() => socket.close());
  return new Promise((resolve) => socket.bind(0, address, () => resolve(socket)));
}

/** A UDP echo server; `seen` records every datagram it got. */
async function udpEcho(type: "udp4" | "udp6" = "udp4") {
  const socket = await udpSocket(type);
  const seen: Buffer[] = [];
  socket.on("message", (msg, rinfo) => {
    seen.push(msg);
    socket.send(msg, rinfo.port, rinfo.address);
  });
  return { socket, port: socket.address().port, seen };
}

/** Opens an association with the given DST and returns the TCP client and the relay endpoint. */
async function associate(port: number, hintHex = "01 00000000 0000") {
  const tcp = await RawClient.connect(port);
  tcp.write(`050100 05030${"0"} ${hintHex}`);
  expect((await tcp.read(2)).toString("hex")).toBe("0500");
  const reply = await tcp.read(10);
  expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
  return { tcp, relayHost: `${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}`, relayPort: reply.readUInt16BE(8) };
}

function nextMessage(socket: UdpSocket, ms = 1000): Promise<Buffer | undefined> {
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

/** A datagram the relay sent to the client, decoded; throws when it is not a well-formed SOCKS UDP datagram. */
function unwrap(bytes: Buffer): UdpDatagram {
  const decoded = decodeUdpDatagram(bytes);
  if (decoded.kind !== "ok") throw new Error(`relay sent a malformed datagram: ${bytes.toString("hex")}`);
  return decoded.value;
}

const drops = () =>
  proxy!.observer
    .of("datagram")
    .filter((d) => d.verdict === "dropped")
    .map((d) => d.reason);

async function started(options: Partial<EngineOptions> = {}) {
  proxy = await startProxy(options);
  proxy.observer.datagram = (fact) => proxy!.observer.facts.push({ kind: "datagram", fact });
  return proxy;
}

describe("UDP ASSOCIATE with the socks package", () => {
  it("relays to IPv4, IPv6 and domain targets and wraps replies with the remote's address", async () => {
    await started();
    const echo4 = await udpEcho("udp4");
    const echo6 = await udpEcho("udp6");
    const client = new SocksClient({
      proxy: { host: "127.0.0.1", port: proxy!.port, type: 5 },
      command: "associate",
      destination: { host: "0.0.0.0", port: 0 },
    });
    client.on("error", () => {});
    const established = new Promise<{ remoteHost: { host: string; port: number } }>((resolve) => client.once("established", (info) => resolve(info as never)));
    client.connect();
    const relay = (await established).remoteHost;
    expect(relay.host).toBe("127.0.0.1");
    const local = await udpSocket("udp4");
    for (const [host, port] of [
      ["127.0.0.1", echo4.port],
      ["::1", echo6.port],
      ["localhost", echo4.port],
    ] as const) {
      const reply = nextMessage(local);
      local.send(SocksClient.createUDPFrame({ remoteHost: { host, port }, data: Buffer.from(`to ${host}`) }), relay.port, relay.host);
      const frame = SocksClient.parseUDPFrame((await reply)!);
      expect(frame.data.toString()).toBe(`to ${host}`);
      // The socks package prints IPv6 uncompressed; compare parsed addresses.
      expect(ipaddr.parse(frame.remoteHost.host).toString()).toBe(host === "::1" ? "::1" : "127.0.0.1");
      expect(frame.remoteHost.port).toBe(port);
    }
  });
});

describe("UDP ASSOCIATE raw (scenarios 40-50)", () => {
  it("#40/#41 zero DST: BND.ADDR is the IP the client used, and a datagram is relayed and wrapped", async () => {
    await started();
    const echo = await udpEcho();
    const { relayHost, relayPort } = await associate(proxy!.port);
    expect(relayHost).toBe("127.0.0.1");
    const local = await udpSocket();
    const reply = nextMessage(local);
    const datagram = encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("ping"));
    local.send(datagram, relayPort, relayHost);
    const got = (await reply)!;
    // The reply carries the remote's address: the same header as the request here.
    expect(got.toString("hex")).toBe(datagram.toString("hex"));
    expect(echo.seen.map(String)).toEqual(["ping"]);
  });

  it("#42 a datagram from a foreign IP is dropped and recorded", async () => {
    await started();
    const echo = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const stranger = await udpSocket("udp4", "127.0.0.2");
    stranger.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("x")), relayPort, "127.0.0.1");
    await until(() => drops().length > 0, 5000, "the stranger's datagram dropped");
    expect(echo.seen).toEqual([]);
    expect(drops()).toEqual(["foreign-source-ip"]);
  });

  it("#43 an explicit DST.PORT admits only that port", async () => {
    await started();
    const echo = await udpEcho();
    const allowed = await udpSocket();
    const other = await udpSocket();
    const port = allowed.address().port;
    const { relayPort } = await associate(proxy!.port, `01 7f000001 ${port.toString(16).padStart(4, "0")}`);
    other.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("other")), relayPort, "127.0.0.1");
    await until(() => drops().length > 0, 5000, "the other port's datagram dropped");
    const reply = nextMessage(allowed);
    allowed.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("allowed")), relayPort, "127.0.0.1");
    expect(decodeUdpDatagram((await reply)!)).toMatchObject({ kind: "ok", value: { data: Buffer.from("allowed") } });
    expect(echo.seen.map(String)).toEqual(["allowed"]);
    expect(drops()).toContain("foreign-source-port");
  });

  it("#44 a client that put the destination in DST is served from its IP, with an anomaly", async () => {
    await started();
    const echo = await udpEcho();
    const { relayPort } = await associate(proxy!.port, `01 7f000001 ${echo.port.toString(16).padStart(4, "0")}`);
    const local = await udpSocket();
    const reply = nextMessage(local);
    local.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("hi")), relayPort, "127.0.0.1");
    expect(await reply).toBeDefined();
    expect(proxy!.observer.of("anomaly").map((a) => a.code)).toContain("udp-dst-misuse");
  });

  it("#45/#46 FRAG != 0 and bad headers are dropped; the association keeps working", async () => {
    await started();
    const echo = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    const good = encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("ok"));
    for (const bad of [
      encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("a"), 0x01),
      encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("a"), 0x81),
      hex("0100 00 01 7f000001 1f90 61"),
      hex("0000000103"),
      hex("0000 00 03 20 6162"),
    ]) {
      local.send(bad, relayPort, "127.0.0.1");
    }
    await until(() => drops().length === 5, 5000, "5 bad datagrams dropped");
    const reply = nextMessage(local);
    local.send(good, relayPort, "127.0.0.1");
    expect(await reply).toBeDefined();
    expect(echo.seen.map(String)).toEqual(["ok"]);
    expect(drops()).toEqual(["fragmented", "fragmented", "bad-header", "bad-header", "bad-header"]);
  });

  it("#47 an unresolvable domain drops that datagram only", async () => {
    // The resolver is injected: nonexistent.invalid fails with ENOTFOUND without asking the system.
    const lookup = fakeLookup({ localhost: ["127.0.0.1"] });
    await started({ lookup });
    const echo = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    local.send(encodeUdpDatagram("nonexistent.invalid", 53, Buffer.from("q")), relayPort, "127.0.0.1");
    await until(() => drops().length > 0, 5000, "the first datagram's drop");
    expect(drops()).toEqual(["dns-failed"]);
    const reply = nextMessage(local);
    local.send(encodeUdpDatagram("localhost", echo.port, Buffer.from("named")), relayPort, "127.0.0.1");
    expect(await reply).toBeDefined();
    expect(echo.seen.map(String)).toEqual(["named"]);
    expect(lookup.asked).toEqual(["nonexistent.invalid", "localhost"]);
  });

  it("#48 the association and its relay port end with the TCP connection", async () => {
    await started();
    const echo = await udpEcho();
    const { tcp, relayPort } = await associate(proxy!.port);
    tcp.end();
    const closed = await proxy!.observer.lastClosed();
    expect(closed.reason).toBe("completed");
    expect(proxy!.engine.udpAssociationCount).toBe(0);
    const local = await udpSocket();
    local.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from("late")), relayPort, "127.0.0.1");
    // A negative check needs a duration: 100 ms in which the datagram must not be relayed.
    await sleep(100);
    expect(echo.seen).toEqual([]);
  });

  it("#49 several destinations are answered; an unsolicited host is dropped", async () => {
    await started();
    const a = await udpEcho();
    const b = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    const got: Buffer[] = [];
    local.on("message", (m) => got.push(m));
    local.send(encodeUdpDatagram("127.0.0.1", a.port, Buffer.from("A")), relayPort, "127.0.0.1");
    local.send(encodeUdpDatagram("127.0.0.1", b.port, Buffer.from("B")), relayPort, "127.0.0.1");
    await until(() => got.length === 2, 5000, "the answers of A and B");
    const ports = got.map((m) => unwrap(m).address.port).sort();
    expect(ports).toEqual([a.port, b.port].sort());
    // C learns the relay's outbound port from what A saw, and sends unsolicited.
    const outbound = await new Promise<number>((resolve) => {
      a.socket.once("message", (_m, rinfo) => resolve(rinfo.port));
      local.send(encodeUdpDatagram("127.0.0.1", a.port, Buffer.from("again")), relayPort, "127.0.0.1");
    });
    const c = await udpSocket("udp4", "127.0.0.3");
    c.send(Buffer.from("unsolicited"), outbound, "127.0.0.1");
    await until(() => drops().length > 0, 5000, "the unsolicited datagram dropped");
    expect(drops()).toEqual(["unsolicited"]);
  });

  it("alternating destinations: each reply names its own peer and each fact its own endpoints", async () => {
    await started();
    const a = await udpEcho();
    const b = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    const order = [a, b, a, a, b, b, a];
    for (const [i, target] of order.entries()) {
      const reply = nextMessage(local);
      local.send(encodeUdpDatagram("127.0.0.1", target.port, Buffer.from(`m${i}`)), relayPort, "127.0.0.1");
      const got = unwrap((await reply)!);
      expect({ port: got.address.port, data: got.data.toString() }).toEqual({ port: target.port, data: `m${i}` });
    }
    const facts = proxy!.observer.of("datagram");
    expect(facts.map((f) => [f.direction, f.verdict, f.to?.port, f.from.port, f.peer?.port])).toEqual(
      order.flatMap((target) => [
        ["up", "relayed", target.port, local.address().port, target.port],
        ["down", "relayed", local.address().port, target.port, target.port],
      ]),
    );
  });

  it("#50 a 65,497-byte payload is relayed; a reply too large to re-wrap is dropped", async () => {
    await started();
    const echo = await udpEcho();
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    const big = Buffer.alloc(65_497, 0x61);
    const reply = nextMessage(local);
    local.send(encodeUdpDatagram("127.0.0.1", echo.port, big), relayPort, "127.0.0.1");
    expect((await reply)!.length).toBe(65_507);
    // The target answers with 65,498 bytes: 10 more for the header would not fit.
    const target = await udpSocket();
    const sink = nextMessage(target);
    local.send(encodeUdpDatagram("127.0.0.1", target.address().port, Buffer.from("send me big")), relayPort, "127.0.0.1");
    const sinkGot = await sink;
    expect(sinkGot?.toString()).toBe("send me big");
    const relayOut = await new Promise<number>((resolve) => {
      target.once("message", (_m, rinfo) => resolve(rinfo.port));
      local.send(encodeUdpDatagram("127.0.0.1", target.address().port, Buffer.from("port?")), relayPort, "127.0.0.1");
    });
    target.send(Buffer.alloc(65_498, 0x62), relayOut, "127.0.0.1");
    await until(() => drops().length > 0, 5000, "the too-large reply dropped");
    expect(drops()).toEqual(["too-large"]);
  });

  it("UDP ASSOCIATE over an IPv6 control connection binds the relay on ::1", async () => {
    proxy = await startProxy({ listen: [{ host: "::1", port: 0 }] });
    const echo = await udpEcho("udp6");
    const tcp = await RawClient.connect(proxy.port, "::1");
    tcp.write("050100 05030004 00000000000000000000000000000000 0000");
    await tcp.read(2);
    const reply = await tcp.read(22);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000004");
    expect(reply.subarray(4, 20).toString("hex")).toBe("00000000000000000000000000000001");
    const local = await udpSocket("udp6");
    const got = nextMessage(local);
    local.send(encodeUdpDatagram("::1", echo.port, Buffer.from("six")), reply.readUInt16BE(20), "::1");
    expect(decodeUdpDatagram((await got)!)).toMatchObject({ kind: "ok", value: { address: { type: "ipv6", host: "::1", port: echo.port } } });
  });

  it("--max-udp-associations refuses the next association with REP 01", async () => {
    await started({ maxUdpAssociations: 1 });
    await associate(proxy!.port);
    const tcp = await RawClient.connect(proxy!.port);
    tcp.write("050100 05030001 00000000 0000");
    await tcp.read(2);
    expect((await tcp.readToEnd()).toString("hex")).toBe("05010001000000000000");
  });
});

describe("UDP ASSOCIATE lifetime and hooks", () => {
  it("the TCP idle timeout does not end an association; --udp-idle-timeout does", async () => {
    const clock = new ManualClock();
    await started({ idleTimeoutMs: 100, udpIdleTimeoutMs: 300, clock });
    const echo = await udpEcho();
    const { tcp, relayPort } = await associate(proxy!.port);
    closers.push(() => tcp.destroy());
    const local = await udpSocket();
    const roundTrip = async (text: string) => {
      const reply = nextMessage(local);
      local.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from(text)), relayPort, "127.0.0.1");
      expect(decodeUdpDatagram(found(await reply, `echo of ${text}`))).toMatchObject({ kind: "ok", value: { data: Buffer.from(text) } });
    };
    await clock.armed(300);
    // Past the 100 ms TCP idle timeout (the control connection stays silent): the association relays.
    clock.advance(250);
    await roundTrip("alive");
    // A datagram starts a new UDP idle period: 1 ms before it ends, the association still relays...
    clock.advance(299);
    await roundTrip("still");
    expect(proxy!.observer.of("closed")).toEqual([]);
    // ...and a full period without one ends it.
    clock.advance(300);
    const closed = await proxy!.observer.lastClosed(2000);
    expect(closed.reason).toBe("idle-timeout");
    expect((await tcp.readToEnd()).length).toBe(0);
  });

  it("a datagram hook can replace, drop and redirect, in both directions", async () => {
    const echo = await udpEcho();
    const other = await udpEcho();
    const { allowAllHooks } = await import("../../../src/engine/index.js");
    await started({
      hooks: {
        ...allowAllHooks,
        wantsDatagrams: () => true,
        datagram: async (d) => {
          const text = d.data.toString();
          if (text === "drop") return { drop: true };
          if (text === "elsewhere" && d.direction === "up") return { redirect: { port: other.port } };
          if (d.direction === "down") return { replace: Buffer.from(text.toUpperCase()) };
          return undefined;
        },
      },
    });
    const { relayPort } = await associate(proxy!.port);
    const local = await udpSocket();
    const got: string[] = [];
    local.on("message", (m) => got.push(unwrap(m).data.toString()));
    for (const text of ["drop", "hello", "elsewhere"]) local.send(encodeUdpDatagram("127.0.0.1", echo.port, Buffer.from(text)), relayPort, "127.0.0.1");
    await until(() => got.length === 2 && drops().length === 1, 5000, "two answers and one drop");
    expect(got.sort()).toEqual(["ELSEWHERE", "HELLO"]);
    expect(echo.seen.map(String)).toEqual(["hello"]);
    expect(other.seen.map(String)).toEqual(["elsewhere"]);
    expect(drops()).toEqual(["hook"]);
  });
});
