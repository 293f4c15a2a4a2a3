/**
 * Destination rules and the loop check through a running engine over loopback, names answered
 * by an injected resolver (no system DNS): CONNECT by address and by name (a name resolving
 * into a denied range), first match wins, IPv6, ports, BIND's expected and actual peer, UDP
 * datagrams, a request for the proxy's own address, and the event that names the rule.
 */
import { connect, type Socket } from "node:net";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { DestinationRules, type EngineOptions, type RuleSource } from "../../../src/engine/index.js";
import { encodeUdpDatagram } from "../../../src/engine/codec/udp.js";
import { RawClient, fakeLookup, startServer, until, useTestProxies, type TestProxy } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

const deny = (text: string): RuleSource => ({ action: "deny", text });
const allow = (text: string): RuleSource => ({ action: "allow", text });

/** A target counting the connections it accepted (a denied request must reach none). */
async function target(host = "127.0.0.1") {
  let accepted = 0;
  const server = await startServer((socket) => {
    accepted++;
    socket.end("hi");
  }, host);
  cleanups.push(() => server.close());
  return {
    port: server.port,
    get accepted() {
      return accepted;
    },
  };
}

async function engine(rules: RuleSource[], options: Partial<EngineOptions> = {}): Promise<TestProxy> {
  return proxy({ rules: new DestinationRules(rules), ...options });
}

function address(host: string): Buffer {
  if (host.includes(":")) {
    const groups = host === "::1" ? [0, 0, 0, 0, 0, 0, 0, 1] : host.split(":").map((g) => Number.parseInt(g, 16));
    const out = Buffer.alloc(17);
    out[0] = 4;
    groups.forEach((g, i) => out.writeUInt16BE(g, 1 + i * 2));
    return out;
  }
  if (/^[\d.]+$/.test(host)) return Buffer.from([1, ...host.split(".").map(Number)]);
  return Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host, "latin1")]);
}

/** Sends a SOCKS5 request (no auth) and returns the REP byte and the client. */
async function request5(proxyPort: number, cmd: 1 | 2, host: string, port: number): Promise<{ rep: number; client: RawClient }> {
  const client = await RawClient.connect(proxyPort);
  cleanups.push(() => client.destroy());
  client.write("050100");
  expect((await client.read(2)).toString("hex")).toBe("0500");
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  client.write(Buffer.concat([Buffer.from([5, cmd, 0]), address(host), portBytes]));
  const head = await client.read(4);
  const rest = head[3] === 4 ? 18 : 6;
  await client.read(rest);
  return { rep: head[1]!, client };
}

const anomalies = (p: TestProxy) => p.observer.of("anomaly").map((a) => `${a.code}: ${a.detail}`);

describe("CONNECT", () => {
  it("--deny 127.0.0.2/32: a name resolving there gets REP 02, its attempt and event name the rule, nothing is dialled", async () => {
    const t = await target();
    const lookup = fakeLookup({ "evil.test": ["127.0.0.2"], "good.test": ["127.0.0.1"] });
    const p = await engine([deny("127.0.0.2/32")], { lookup });
    const { rep, client } = await request5(p.port, 1, "evil.test", t.port);
    expect(rep).toBe(2);
    await client.readToEnd();
    expect(anomalies(p)).toEqual([`denied-by-rule: --deny 127.0.0.2/32 (evil.test resolved to 127.0.0.2:${t.port})`]);
    const reply = p.observer.last("reply");
    expect(reply.code).toBe("DENIED");
    expect(reply.attempts).toEqual([`127.0.0.2:${t.port} denied by --deny 127.0.0.2/32`]);
    // The same rules let a name resolving elsewhere through.
    const ok = await request5(p.port, 1, "good.test", t.port);
    expect(ok.rep).toBe(0);
    expect((await ok.client.readToEnd()).toString()).toBe("hi");
    expect(t.accepted).toBe(1);
    expect(lookup.asked).toEqual(["evil.test", "good.test"]);
  });

  it("denied when the name resolves into a denied range even though a rule allows other names first", async () => {
    const t = await target();
    const lookup = fakeLookup({ "evil.test": ["127.0.0.1", "127.0.0.2"] });
    const p = await engine([allow("*.corp"), deny("127.0.0.2/32")], { lookup });
    // One denied address among several is enough: nothing is dialled.
    expect((await request5(p.port, 1, "evil.test", t.port)).rep).toBe(2);
    expect(t.accepted).toBe(0);
  });

  it("a name denied by a glob is refused before it is resolved", async () => {
    const lookup = fakeLookup({ "x.blocked.test": ["127.0.0.1"] });
    const p = await engine([deny("*.blocked.test")], { lookup });
    const { rep } = await request5(p.port, 1, "X.Blocked.test", 80);
    expect(rep).toBe(2);
    expect(lookup.asked).toEqual([]);
    expect(anomalies(p)).toEqual(["denied-by-rule: --deny *.blocked.test (X.Blocked.test:80)"]);
  });

  it("first match wins: an allow before a deny lets the address through, after it does not", async () => {
    const t = await target();
    const first = await engine([allow(`127.0.0.1:${t.port}`), deny("127.0.0.0/8")]);
    expect((await request5(first.port, 1, "127.0.0.1", t.port)).rep).toBe(0);
    const second = await engine([deny("127.0.0.0/8"), allow(`127.0.0.1:${t.port}`)]);
    expect((await request5(second.port, 1, "127.0.0.1", t.port)).rep).toBe(2);
    expect(anomalies(second)).toEqual([`denied-by-rule: --deny 127.0.0.0/8 (127.0.0.1:${t.port})`]);
    await until(() => t.accepted === 1, 2000, "the allowed connection");
  });

  it("port ranges", async () => {
    const t = await target();
    const p = await engine([deny(`:${t.port - 1}-${t.port}`)]);
    expect((await request5(p.port, 1, "127.0.0.1", t.port)).rep).toBe(2);
    const other = await target();
    if (other.port !== t.port - 1) expect((await request5(p.port, 1, "127.0.0.1", other.port)).rep).toBe(0);
  });

  it("IPv6: a CIDR covering ::1 denies the literal and a name resolving there", async () => {
    const t = await target("::1");
    const lookup = fakeLookup({ "six.test": ["::1"] });
    const p = await engine([deny("::/64")], { lookup });
    expect((await request5(p.port, 1, "::1", t.port)).rep).toBe(2);
    expect((await request5(p.port, 1, "six.test", t.port)).rep).toBe(2);
    expect(anomalies(p)).toEqual([`denied-by-rule: --deny ::/64 ([::1]:${t.port})`, `denied-by-rule: --deny ::/64 (six.test resolved to [::1]:${t.port})`]);
    expect(t.accepted).toBe(0);
  });

  it("SOCKS4 gets CD 91", async () => {
    const t = await target();
    const p = await engine([deny("127.0.0.1")]);
    const client = await RawClient.connect(p.port);
    cleanups.push(() => client.destroy());
    client.write(Buffer.from([4, 1, t.port >> 8, t.port & 0xff, 127, 0, 0, 1, 0]));
    expect((await client.read(8))[1]).toBe(91);
  });
});

describe("loop check", () => {
  it("a CONNECT to the proxy's own address and port is refused, by address and by name, with no rules at all", async () => {
    const lookup = fakeLookup({ "self.test": ["127.0.0.1"] });
    const p = await proxy({ lookup });
    expect((await request5(p.port, 1, "127.0.0.1", p.port)).rep).toBe(2);
    expect((await request5(p.port, 1, "self.test", p.port)).rep).toBe(2);
    const loops = p.observer.of("anomaly").filter((a) => a.code === "loop");
    expect(loops.map((a) => a.detail)).toEqual([
      `127.0.0.1:${p.port} is this proxy's own listening address`,
      `self.test resolved to 127.0.0.1:${p.port}: this proxy's own listening address`,
    ]);
    // Only the two refused sessions: had the proxy dialled itself, its connection would be a session opened before the reply.
    expect(p.observer.of("opened")).toHaveLength(2);
  });

  it("a wildcard listener: any loopback address with its port is a loop", async () => {
    const p = await proxy({ listen: [{ host: "0.0.0.0", port: 0 }] });
    expect((await request5(p.port, 1, "127.0.0.9", p.port)).rep).toBe(2);
    expect(p.observer.first("anomaly").code).toBe("loop");
  });
});

describe("BIND", () => {
  async function peerConnect(port: number, localAddress: string): Promise<Socket> {
    const s = connect({ host: "127.0.0.1", port, localAddress });
    cleanups.push(() => void s.destroy());
    s.on("error", () => {});
    await once(s, "connect");
    return s;
  }

  it("a denied expected peer gets REP 02 in the first reply", async () => {
    const p = await engine([deny("127.0.0.5")]);
    const { rep } = await request5(p.port, 2, "127.0.0.5", 0);
    expect(rep).toBe(2);
    expect(anomalies(p)).toEqual(["denied-by-rule: --deny 127.0.0.5 (BIND expected peer 127.0.0.5:0)"]);
  });

  it("a denied peer that connects gets REP 02 in the second reply and is not relayed", async () => {
    const p = await engine([deny("127.0.0.7/32")]);
    const { rep, client } = await request5(p.port, 2, "0.0.0.0", 0);
    expect(rep).toBe(0);
    const bindPort = p.observer.last("reply").bound.port;
    const peer = await peerConnect(bindPort, "127.0.0.7");
    const second = await client.read(10);
    expect(second[1]).toBe(2);
    await once(peer, "close");
    const anomaly = p.observer.first("anomaly");
    expect(anomaly.code).toBe("denied-by-rule");
    expect(anomaly.detail).toMatch(/^--deny 127\.0\.0\.7\/32 \(BIND peer 127\.0\.0\.7:\d+\)$/);
  });
});

describe("UDP ASSOCIATE", () => {
  async function udpSocket(): Promise<UdpSocket> {
    const socket = createSocket("udp4");
    cleanups.push(() => {
      socket.close();
    });
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    return socket;
  }

  it("a datagram to a denied destination (by address or by the name's address) is dropped as denied", async () => {
    const echo = await udpSocket();
    const seen: string[] = [];
    echo.on("message", (msg, rinfo) => {
      seen.push(msg.toString());
      echo.send(msg, rinfo.port, rinfo.address);
    });
    const echoPort = echo.address().port;
    const lookup = fakeLookup({ "near.test": ["127.0.0.1"] });
    const p = await engine([deny("*.far.test"), allow(`:${echoPort}`), deny("127.0.0.0/8")], { lookup });
    const drops: Array<{ reason?: string; detail?: string }> = [];
    p.observer.datagram = (fact) => {
      if (fact.verdict === "dropped") drops.push({ reason: fact.reason, detail: fact.detail });
    };
    const tcp = await RawClient.connect(p.port);
    cleanups.push(() => tcp.destroy());
    tcp.write("050100 05030001 00000000 0000");
    expect((await tcp.read(2)).toString("hex")).toBe("0500");
    const reply = await tcp.read(10);
    expect(reply[1]).toBe(0);
    const relayPort = reply.readUInt16BE(8);
    const client = await udpSocket();
    // Port 9 of 127.0.0.1 is denied (the allow is for the echo's port only); the name resolves there too.
    client.send(encodeUdpDatagram("127.0.0.1", 9, Buffer.from("to-literal")), relayPort, "127.0.0.1");
    client.send(encodeUdpDatagram("near.test", 9, Buffer.from("to-name")), relayPort, "127.0.0.1");
    client.send(encodeUdpDatagram("x.far.test", echoPort, Buffer.from("to-glob")), relayPort, "127.0.0.1");
    client.send(encodeUdpDatagram("127.0.0.1", echoPort, Buffer.from("allowed")), relayPort, "127.0.0.1");
    const [back] = await once(client, "message");
    expect((back as Buffer).subarray(10).toString()).toBe("allowed");
    await until(() => drops.length === 3, 2000, "three drops");
    // In whatever order the lookup lets them finish.
    expect(drops.map((d) => `${d.reason} ${d.detail}`).sort()).toEqual([
      "denied 127.0.0.1: --deny 127.0.0.0/8",
      "denied near.test resolved to 127.0.0.1: --deny 127.0.0.0/8",
      "denied x.far.test: --deny *.far.test",
    ]);
    expect(seen).toEqual(["allowed"]);
    // A name denied by a glob is not even resolved.
    expect(lookup.asked).toEqual(["near.test"]);
  });
});
