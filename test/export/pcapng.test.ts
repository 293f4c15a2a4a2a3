import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIp, parseIp, syntheticAddress } from "../../src/export/addresses.js";
import { type PcapngSession, initialSequence, pcapngBlocks } from "../../src/export/pcapng.js";
import type { ChunkRow } from "../../src/store/schema.js";
import { HTTP_REQUEST, HTTP_RESPONSE, T0, chunkRow, datagramRow, domainSession, exportFile, roundTrip, sessionRow, tcp, udp } from "./fixtures.js";
import { type PacketRecord, TCP, type TcpConversation, readPcapng, reassembleTcp, streamOf } from "./pcapng-reader.js";

const flagsOf = (p: PacketRecord) => p.tcp!.flags;
const micros = (ms: number) => BigInt(Math.round(ms * 1000));

/** The one conversation of a single-session export, client side first. */
function only(packets: PacketRecord[]): TcpConversation {
  const conversations = reassembleTcp(packets);
  expect(conversations).toHaveLength(1);
  return conversations[0]!;
}

function expectChecksumsOk(packets: PacketRecord[]): void {
  for (const p of packets) {
    if (p.family === 4) expect(p.ipChecksumOk, `IPv4 checksum of packet ${p.index}`).toBe(true);
    if (p.capturedLength === p.originalLength) {
      if (p.tcp !== undefined) expect(p.tcp.checksumOk, `TCP checksum of packet ${p.index}`).toBe(true);
      if (p.udp !== undefined) expect(p.udp.checksumOk, `UDP checksum of packet ${p.index}`).toBe(true);
    }
  }
}

describe("pcapng file structure", () => {
  it("an empty export is a Section Header Block and one Interface Description Block", () => {
    const file = exportFile([]);
    const parsed = readPcapng(file);
    expect(parsed.blockTypes).toEqual([0x0a0d0d0a, 1]);
    // Little-endian byte-order magic right after the block header.
    expect(file.subarray(8, 12)).toEqual(Buffer.from([0x4d, 0x3c, 0x2b, 0x1a]));
    expect(parsed.section.major).toBe(1);
    expect(parsed.section.minor).toBe(0);
    expect(parsed.section.sectionLength).toBe(-1n);
    expect(parsed.section.options.find((o) => o.code === 4)?.value.toString()).toBe("socksmith");
    expect(parsed.interfaces).toHaveLength(1);
    expect(parsed.interfaces[0]!.linktype).toBe(101);
    expect(parsed.interfaces[0]!.snaplen).toBe(262144);
    // if_tsresol: microseconds.
    expect(parsed.interfaces[0]!.options.find((o) => o.code === 9)?.value).toEqual(Buffer.from([6]));
    expect(parsed.packets).toEqual([]);
  });

  it("yields block by block and reads rows only as it goes", () => {
    let pulled = 0;
    function* chunks(): Generator<ChunkRow> {
      for (let i = 0; i < 3; i++) {
        pulled++;
        yield chunkRow(1, i, "up", "x".repeat(10), T0 + 10 + i);
      }
    }
    const blocks = pcapngBlocks([{ session: sessionRow(), chunks: chunks(), datagrams: [] }]);
    blocks.next();
    blocks.next();
    expect(pulled).toBe(0);
    for (let i = 0; i < 4; i++) blocks.next(); // three handshake packets, the first segment
    expect(pulled).toBe(1);
  });

  it("closes row iterators it does not need (a database iterator must not stay open)", () => {
    const closed: string[] = [];
    const tracked = <T>(name: string, rows: T[]): Iterable<T> => ({
      [Symbol.iterator]: () => {
        const it = rows[Symbol.iterator]();
        return { next: () => it.next(), return: (value?: unknown) => (closed.push(name), { done: true as const, value }) };
      },
    });
    exportFile([
      { session: sessionRow({ id: 1 }), chunks: tracked("chunks-1", []), datagrams: tracked("datagrams-1", []) },
      { session: sessionRow({ id: 2, command: "udp" }), chunks: tracked("chunks-2", []), datagrams: tracked("datagrams-2", []) },
      { session: sessionRow({ id: 3, command: null, reply: null }), chunks: tracked("chunks-3", []), datagrams: tracked("datagrams-3", []) },
    ]);
    expect(closed).toEqual(["datagrams-1", "chunks-2", "chunks-3", "datagrams-3"]);
  });
});

describe("TCP sessions", () => {
  const session = sessionRow({
    id: 7,
    engine_id: 3,
    client_port: 50123,
    opened_at: T0,
    requested_at: T0 + 2.5,
    replied_at: T0 + 20.25,
    closed_at: T0 + 300.125,
  });
  const chunks = [chunkRow(7, 0, "up", HTTP_REQUEST, T0 + 21.5), chunkRow(7, 1, "down", HTTP_RESPONSE, T0 + 40.001)];
  const file = roundTrip([tcp(session, chunks)]);
  const packets = file.packets;

  it("synthesises SYN, SYN-ACK, ACK, the data and FIN/ACK both ways, IPv4, checksums correct", () => {
    expect(packets.map((p) => flagsOf(p))).toEqual([
      TCP.SYN,
      TCP.SYN | TCP.ACK,
      TCP.ACK,
      TCP.PSH | TCP.ACK,
      TCP.PSH | TCP.ACK,
      TCP.FIN | TCP.ACK,
      TCP.FIN | TCP.ACK,
      TCP.ACK,
    ]);
    expect(packets.map((p) => `${p.src}:${p.tcp!.srcPort}>${p.dst}:${p.tcp!.dstPort}`)).toEqual([
      "127.0.0.1:50123>10.1.2.3:80",
      "10.1.2.3:80>127.0.0.1:50123",
      "127.0.0.1:50123>10.1.2.3:80",
      "127.0.0.1:50123>10.1.2.3:80",
      "10.1.2.3:80>127.0.0.1:50123",
      "127.0.0.1:50123>10.1.2.3:80",
      "10.1.2.3:80>127.0.0.1:50123",
      "127.0.0.1:50123>10.1.2.3:80",
    ]);
    for (const p of packets) {
      expect(p.family).toBe(4);
      expect(p.protocol).toBe(6);
      expect(p.ttl).toBe(64);
      expect(p.dontFragment).toBe(true);
      expect(p.capturedLength).toBe(p.originalLength);
    }
    expectChecksumsOk(packets);
  });

  it("sequence and acknowledgement numbers follow the handshake, the data and the FINs", () => {
    const conv = only(packets);
    const isnClient = initialSequence(7, "client");
    const isnServer = initialSequence(7, "server");
    expect(conv.a.isn).toBe(isnClient);
    expect(conv.b.isn).toBe(isnServer);
    expect(packets[0]!.tcp!.seq).toBe(isnClient);
    expect(packets[1]!.tcp!.ack).toBe((isnClient + 1) >>> 0);
    expect(packets[3]!.tcp!.seq).toBe((isnClient + 1) >>> 0);
    expect(packets[4]!.tcp!.seq).toBe((isnServer + 1) >>> 0);
    expect(packets[4]!.tcp!.ack).toBe((isnClient + 1 + HTTP_REQUEST.length) >>> 0);
    expect(packets[5]!.tcp!.seq).toBe((isnClient + 1 + HTTP_REQUEST.length) >>> 0);
    expect(packets[7]!.tcp!.ack).toBe((isnServer + 1 + HTTP_RESPONSE.length + 1) >>> 0);
    expect(conv.a.fin).toBe(packets[5]);
    expect(conv.b.fin).toBe(packets[6]);
    expect(streamOf(conv.a).toString("latin1")).toBe(HTTP_REQUEST);
    expect(streamOf(conv.b).toString("latin1")).toBe(HTTP_RESPONSE);
  });

  it("SYNs carry MSS and window scale; ISNs differ per session and repeat per export", () => {
    expect(packets[0]!.tcp!.mss).toBe(64000);
    expect(packets[0]!.tcp!.windowScale).toBe(14);
    expect(packets[1]!.tcp!.windowScale).toBe(14);
    expect(packets[3]!.tcp!.windowScale).toBeUndefined();
    expect(initialSequence(7, "client")).not.toBe(initialSequence(8, "client"));
    expect(initialSequence(7, "client")).not.toBe(initialSequence(7, "server"));
    expect(roundTrip([tcp(session, chunks)]).packets[0]!.tcp!.seq).toBe(packets[0]!.tcp!.seq);
  });

  it("timestamps: SYN at requested_at, SYN-ACK/ACK at replied_at, data at each chunk, FIN at closed_at (µs)", () => {
    expect(packets.map((p) => p.micros)).toEqual([
      micros(T0 + 2.5),
      micros(T0 + 20.25),
      micros(T0 + 20.25),
      micros(T0 + 21.5),
      micros(T0 + 40.001),
      micros(T0 + 300.125),
      micros(T0 + 300.125),
      micros(T0 + 300.125),
    ]);
  });

  it("comments the first packet with the session", () => {
    expect(packets[0]!.comments).toEqual(["socksmith session 7 (run 1 #3): CONNECT 127.0.0.1:50123 → 10.1.2.3:80 (10.1.2.3:80)"]);
    expect(packets.slice(1).every((p) => p.comments.length === 0)).toBe(true);
    expect(roundTrip([tcp(session, chunks)], { comments: false }).packets.every((p) => p.comments.length === 0)).toBe(true);
  });

  it("splits a multi-megabyte chunk into segments that keep IP packets within 65535 bytes", () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const back = randomBytes(100_001);
    const out = roundTrip([tcp(sessionRow(), [chunkRow(1, 0, "up", big, T0 + 10), chunkRow(1, 1, "down", back, T0 + 11)])]);
    const conv = only(out.packets);
    expect(streamOf(conv.a).equals(big)).toBe(true);
    expect(streamOf(conv.b).equals(back)).toBe(true);
    const data = out.packets.filter((p) => p.payloadLength > 0);
    expect(data.length).toBe(Math.ceil(big.length / 64000) + Math.ceil(back.length / 64000));
    for (const p of data) {
      expect(p.payloadLength).toBeLessThanOrEqual(64000);
      expect(p.ipLength).toBeLessThanOrEqual(65535);
    }
    // PSH marks the last segment of each chunk.
    expect(data.filter((p) => flagsOf(p) & TCP.PSH)).toHaveLength(2);
    expectChecksumsOk(out.packets);
  });

  it("honours maxSegmentSize and caps it at what fits one IP packet", () => {
    const payload = randomBytes(70_000);
    const small = roundTrip([tcp(sessionRow(), [chunkRow(1, 0, "up", payload, T0 + 10)])], { maxSegmentSize: 1460 });
    expect(small.packets.filter((p) => p.payloadLength > 0)).toHaveLength(Math.ceil(70_000 / 1460));
    expect(small.packets[0]!.tcp!.mss).toBe(1460);
    const huge = roundTrip([tcp(sessionRow(), [chunkRow(1, 0, "up", payload, T0 + 10)])], { maxSegmentSize: 1e9 });
    const segments = huge.packets.filter((p) => p.payloadLength > 0);
    expect(segments.map((p) => p.payloadLength)).toEqual([65495, 70_000 - 65495]);
    expect(segments[0]!.ipLength).toBe(65535);
    expect(streamOf(only(huge.packets).a).equals(payload)).toBe(true);
    expect(() => exportFile([], { maxSegmentSize: 0 })).toThrow(RangeError);
  });

  it("a receiver ACKs after 16 MiB went unacknowledged one way", () => {
    const mib = randomBytes(1024 * 1024);
    const rows = Array.from({ length: 20 }, (_, i) => chunkRow(1, i, "down", mib, T0 + 10 + i));
    const out = roundTrip([tcp(sessionRow(), rows)]);
    const conv = only(out.packets);
    expect(streamOf(conv.b).length).toBe(20 * mib.length);
    const pureAcks = out.packets.filter((p) => p.payloadLength === 0 && flagsOf(p) === TCP.ACK && p.src === "127.0.0.1");
    // The handshake's ACK, one after 16 MiB, and the final ACK.
    expect(pureAcks).toHaveLength(3);
  });

  it("IPv6 sessions: IPv6 headers with correct TCP checksums over the IPv6 pseudo-header", () => {
    const s = sessionRow({
      client_host: "::1",
      requested_type: "ipv6",
      requested_host: "2001:db8::5",
      target_host: "2001:db8::5",
      remote_host: "2001:db8::5",
      remote_port: 443,
      target_port: 443,
      requested_port: 443,
    });
    const payload = randomBytes(150_000);
    const out = roundTrip([tcp(s, [chunkRow(1, 0, "up", "hello", T0 + 10), chunkRow(1, 1, "down", payload, T0 + 11)])]);
    for (const p of out.packets) {
      expect(p.family).toBe(6);
      expect(p.ttl).toBe(64);
      expect(p.ipLength).toBeLessThanOrEqual(65535 + 40);
    }
    expect(out.packets[0]!.src).toBe("::1");
    expect(out.packets[0]!.dst).toBe("2001:db8::5");
    expect(out.packets[0]!.tcp!.dstPort).toBe(443);
    expectChecksumsOk(out.packets);
    const conv = only(out.packets);
    expect(streamOf(conv.a).toString()).toBe("hello");
    expect(streamOf(conv.b).equals(payload)).toBe(true);
  });

  it("mixed families: an IPv4 client and an IPv6 target are both written as IPv6", () => {
    const s = sessionRow({
      client_host: "192.168.1.20",
      remote_host: "2606:4700::1111",
      target_host: "one.one.one.one",
      requested_host: "one.one.one.one",
      requested_type: "domain",
    });
    const out = roundTrip([tcp(s, [chunkRow(1, 0, "up", "ping", T0 + 10)])]);
    expect(out.packets.every((p) => p.family === 6)).toBe(true);
    expect(out.packets[0]!.src).toBe("::ffff:c0a8:114");
    expect(parseIp(out.packets[0]!.src)).toEqual(parseIp("192.168.1.20"));
    expect(out.packets[0]!.dst).toBe("2606:4700::1111");
    expectChecksumsOk(out.packets);
    expect(out.names.get("2606:4700::1111")).toEqual(["one.one.one.one"]);
    // And the other way round: an IPv6 client, an IPv4 target.
    const back = roundTrip([tcp(sessionRow({ client_host: "2001:db8::77", remote_host: "93.184.216.34" }), [])]);
    expect(back.packets[0]!.dst).toBe("::ffff:5db8:d822");
    expect(back.packets.every((p) => p.family === 6)).toBe(true);
  });

  it("a target known only by name gets a stable synthetic address in the client's family, named in an NRB", () => {
    const s = domainSession("Example.COM", { remote_host: null, remote_port: null, target_port: 8080, requested_port: 8080 });
    const out = roundTrip([tcp(s, [chunkRow(1, 0, "up", "x", T0 + 10)]), tcp({ ...s, id: 2, client_port: 50001 }, [])]);
    const dst = out.packets[0]!.dst;
    expect(dst).toMatch(/^192\.0\.2\.(\d+)$/);
    const last = Number(dst.split(".")[3]);
    expect(last).toBeGreaterThanOrEqual(1);
    expect(last).toBeLessThanOrEqual(254);
    expect(out.packets[0]!.tcp!.dstPort).toBe(8080);
    // The same name, the same address, in every session and every export.
    expect(out.packets.filter((p) => p.tcp!.srcPort === 50001)[0]!.dst).toBe(dst);
    expect(formatIp(syntheticAddress("example.com.", 4))).toBe(dst);
    expect(out.names.get(dst)).toEqual(["example.com"]);
    expect(out.packets[0]!.comments[0]).toContain(`→ Example.COM:8080 (synthetic ${dst})`);
    // One NRB for the name, before its first packet.
    expect(out.blockTypes.filter((t) => t === 4)).toHaveLength(1);
    expect(out.blockTypes.indexOf(4)).toBe(2);

    const v6 = roundTrip([tcp({ ...s, client_host: "fe80::1" }, [])]);
    expect(v6.packets[0]!.family).toBe(6);
    expect(v6.packets[0]!.dst).toMatch(/^2001:db8:/);
    expect(v6.packets[0]!.dst).toBe(formatIp(syntheticAddress("example.com", 6)));
    expect(formatIp(syntheticAddress("example.org", 6))).not.toBe(v6.packets[0]!.dst);
  });

  it("names the real address after the dialled name; an IP literal target is used as it is", () => {
    const out = roundTrip([tcp(domainSession("example.com", { remote_host: "93.184.216.34" }))]);
    expect(out.packets[0]!.dst).toBe("93.184.216.34");
    expect(out.names.get("93.184.216.34")).toEqual(["example.com"]);
    const literal = roundTrip([tcp(sessionRow({ remote_host: null, remote_port: null, target_host: "10.9.8.7", target_port: 22 }))]);
    expect(literal.packets[0]!.dst).toBe("10.9.8.7");
    expect(literal.packets[0]!.tcp!.dstPort).toBe(22);
    expect(literal.names.size).toBe(0);
    expect(roundTrip([tcp(domainSession("example.com", { remote_host: "93.184.216.34" }))], { names: false }).blockTypes).not.toContain(4);
  });

  it("ends with a RST from the side that reset, or after a hook's reset", () => {
    const clientReset = roundTrip([tcp(sessionRow({ close_reason: "client-reset", close_errno: "ECONNRESET" }), [chunkRow(1, 0, "up", "a", T0 + 10)])]).packets;
    expect(flagsOf(clientReset.at(-1)!)).toBe(TCP.RST | TCP.ACK);
    expect(clientReset.at(-1)!.src).toBe("127.0.0.1");
    expect(clientReset.at(-1)!.comments).toEqual(["socksmith: client-reset (ECONNRESET)"]);
    expect(only(clientReset).a.rst).toBe(clientReset.at(-1));

    const targetReset = roundTrip([tcp(sessionRow({ close_reason: "target-error" }), [chunkRow(1, 0, "up", "a", T0 + 10)])]).packets;
    expect(flagsOf(targetReset.at(-1)!)).toBe(TCP.RST | TCP.ACK);
    expect(targetReset.at(-1)!.src).toBe("10.1.2.3");
    expect(targetReset.filter((p) => flagsOf(p) & TCP.FIN)).toHaveLength(0);

    const hookReset = roundTrip([
      tcp(sessionRow({ close_reason: "closed-by-hook" }), [
        chunkRow(1, 0, "up", "GET /", T0 + 10),
        chunkRow(1, 1, "down", "secret", T0 + 11, { sent: Buffer.alloc(0), verdict: "reset" }),
      ]),
    ]).packets;
    expect(flagsOf(hookReset.at(-1)!)).toBe(TCP.RST | TCP.ACK);
    expect(hookReset.at(-1)!.src).toBe("10.1.2.3");

    const hookClose = roundTrip([
      tcp(sessionRow({ close_reason: "closed-by-hook" }), [chunkRow(1, 0, "up", "x", T0 + 10, { sent: Buffer.alloc(0), verdict: "close" })]),
    ]).packets;
    expect(hookClose.slice(-3).map(flagsOf)).toEqual([TCP.FIN | TCP.ACK, TCP.FIN | TCP.ACK, TCP.ACK]);
    expect(hookClose.at(-3)!.comments).toEqual(["socksmith: closed (closed-by-hook)"]);
  });

  it("sends nothing after the data of a session still open or interrupted", () => {
    for (const status of ["open", "interrupted"] as const) {
      const packets = roundTrip([
        tcp(sessionRow({ status, close_reason: status === "open" ? null : "interrupted", closed_at: status === "open" ? null : T0 + 50 }), [
          chunkRow(1, 0, "up", "abc", T0 + 10),
        ]),
      ]).packets;
      expect(packets.map(flagsOf)).toEqual([TCP.SYN, TCP.SYN | TCP.ACK, TCP.ACK, TCP.PSH | TCP.ACK]);
    }
  });

  it("a failed CONNECT is a SYN answered by RST/ACK; a client that left is a SYN and its RST; no request, no packets", () => {
    const refused = sessionRow({
      reply: 5,
      reply_code: "CONNECTION_REFUSED",
      errno: "ECONNREFUSED",
      replied_at: T0 + 3,
      status: "failed",
      close_reason: "request-failed",
      remote_host: null,
      remote_port: null,
    });
    const r = roundTrip([tcp(refused)]).packets;
    expect(r.map(flagsOf)).toEqual([TCP.SYN, TCP.RST | TCP.ACK]);
    expect(r[1]!.src).toBe("10.1.2.3");
    expect(r[1]!.tcp!.ack).toBe((r[0]!.tcp!.seq + 1) >>> 0);
    expect(r[1]!.micros).toBe(micros(T0 + 3));
    expect(r[1]!.comments).toEqual(["socksmith: connection failed: reply 5, CONNECTION_REFUSED, ECONNREFUSED"]);
    expect(r[0]!.comments[0]).toMatch(/^socksmith session 1 /);
    reassembleTcp(r);

    const left = roundTrip([tcp(sessionRow({ reply: null, replied_at: null, status: "failed", close_reason: "client-closed", remote_host: null }))]).packets;
    expect(left.map(flagsOf)).toEqual([TCP.SYN, TCP.RST]);
    expect(left[1]!.src).toBe("127.0.0.1");

    const dialling = roundTrip([
      tcp(sessionRow({ reply: null, replied_at: null, status: "open", close_reason: null, closed_at: null, remote_host: null })),
    ]).packets;
    expect(dialling.map(flagsOf)).toEqual([TCP.SYN]);

    const noRequest = sessionRow({
      command: null,
      requested_host: null,
      requested_port: null,
      target_host: null,
      remote_host: null,
      reply: null,
      status: "denied",
      close_reason: "auth-failed",
    });
    expect(roundTrip([tcp(noRequest)]).packets).toEqual([]);
    expect(roundTrip([tcp(sessionRow({ command: "bind", reply: 1, remote_host: null }))]).packets).toEqual([]);
  });

  it("BIND: the peer that connected in opens the connection", () => {
    const s = sessionRow({ command: "bind", remote_host: "10.1.2.3", remote_port: 20, requested_port: 0 });
    const packets = roundTrip([tcp(s, [chunkRow(1, 0, "down", "220 ready\r\n", T0 + 10), chunkRow(1, 1, "up", "QUIT\r\n", T0 + 11)])]).packets;
    expect(packets[0]!.src).toBe("10.1.2.3");
    expect(packets[0]!.tcp!.srcPort).toBe(20);
    expect(flagsOf(packets[0]!)).toBe(TCP.SYN);
    expect(packets[1]!.src).toBe("127.0.0.1");
    const conv = only(packets);
    expect(streamOf(conv.a).toString()).toBe("220 ready\r\n");
    expect(streamOf(conv.b).toString()).toBe("QUIT\r\n");
  });

  it("sent vs received: replaced, dropped and injected chunks", () => {
    const rows = [
      chunkRow(1, 0, "up", "GET /a", T0 + 10, { sent: Buffer.from("GET /b/longer"), verdict: "replace" }),
      chunkRow(1, 1, "down", "dropped!", T0 + 11, { sent: Buffer.alloc(0), verdict: "drop" }),
      chunkRow(1, 2, "down", Buffer.alloc(0), T0 + 12, { sent: Buffer.from("injected"), verdict: "inject" as never }),
      chunkRow(1, 3, "down", "kept", T0 + 13),
    ];
    const sent = roundTrip([tcp(sessionRow(), rows)]);
    const s = only(sent.packets);
    expect(streamOf(s.a).toString()).toBe("GET /b/longer");
    expect(streamOf(s.b).toString()).toBe("injectedkept");
    expect(sent.packets[3]!.comments).toEqual(["socksmith: replaced by a hook (6 bytes received, 13 sent)"]);
    expect(sent.packets[4]!.comments).toEqual(["socksmith: injected by a hook"]);

    const received = roundTrip([tcp(sessionRow(), rows)], { bytes: "received" });
    const r = only(received.packets);
    expect(streamOf(r.a).toString()).toBe("GET /a");
    expect(streamOf(r.b).toString()).toBe("dropped!kept");
    expect(received.packets[4]!.comments).toEqual(["socksmith: dropped by a hook, not delivered"]);
  });

  it("a chunk cut by the capture limit becomes snapped segments that still cover its full size", () => {
    const stored = randomBytes(1000);
    const rows = [
      chunkRow(1, 0, "down", stored, T0 + 10, { size: 150_000 }),
      chunkRow(1, 1, "down", Buffer.alloc(0), T0 + 11, { size: 5000 }),
      chunkRow(1, 2, "up", Buffer.alloc(0), T0 + 12, { size: 7 }),
    ];
    const out = roundTrip([tcp(sessionRow(), rows)]);
    const conv = only(out.packets);
    expect(conv.b.length).toBe(155_000);
    expect(conv.b.missing).toBe(154_000);
    expect(conv.a.length).toBe(7);
    expect(streamOf(conv.b).subarray(0, 1000).equals(stored)).toBe(true);
    const first = out.packets[3]!;
    expect(first.capturedLength).toBe(20 + 20 + 1000);
    expect(first.originalLength).toBe(20 + 20 + 64000);
    expect(first.comments).toEqual(["socksmith: 1000 of 150000 bytes stored (capture limit)"]);
    expectChecksumsOk(out.packets);
  });

  it("timestamps never go back within a session", () => {
    const out = roundTrip([tcp(sessionRow({ replied_at: T0 + 50 }), [chunkRow(1, 0, "up", "early", T0 + 40), chunkRow(1, 1, "down", "later", T0 + 60)])]);
    const times = out.packets.map((p) => p.micros);
    expect(times[3]).toBe(micros(T0 + 50));
    expect([...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(times);
  });

  it("property: random chunk sequences reassemble to their bytes in both directions", () => {
    const chunkArb = fc.record({ up: fc.boolean(), bytes: fc.uint8Array({ minLength: 0, maxLength: 3000 }), gap: fc.double({ min: 0, max: 50, noNaN: true }) });
    fc.assert(
      fc.property(
        fc.array(chunkArb, { maxLength: 25 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.constantFrom(["127.0.0.1", "10.0.0.9"], ["::1", "2001:db8::9"], ["10.0.0.1", "2001:db8::9"], ["127.0.0.1", "example.net"]),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.constantFrom("completed", "client-reset", "target-reset"),
        (list, mss, [client, server], id, close) => {
          let at = T0 + 10;
          const rows = list.map((c, i) => chunkRow(id, i, c.up ? "up" : "down", Buffer.from(c.bytes), (at += c.gap)));
          const s = sessionRow({
            id,
            client_host: client,
            remote_host: server === "example.net" ? null : server,
            target_host: server,
            requested_host: server,
            close_reason: close,
            closed_at: at + 1,
          });
          const out = roundTrip([tcp(s, rows)], { maxSegmentSize: mss });
          const conv = only(out.packets);
          const up = Buffer.concat(rows.filter((r) => r.direction === "up").map((r) => r.data));
          const down = Buffer.concat(rows.filter((r) => r.direction === "down").map((r) => r.data));
          expect(streamOf(conv.a).equals(up)).toBe(true);
          expect(streamOf(conv.b).equals(down)).toBe(true);
          expect(conv.a.isn).toBe(initialSequence(id, "client"));
          for (const p of out.packets) expect(p.payloadLength).toBeLessThanOrEqual(mss);
          expectChecksumsOk(out.packets);
          if (close === "completed") expect(conv.a.fin !== undefined && conv.b.fin !== undefined).toBe(true);
          else expect((close === "client-reset" ? conv.a : conv.b).rst).toBeDefined();
          const dataTimes = out.packets.filter((p) => p.payloadLength > 0).map((p) => p.micros);
          const expected = rows.flatMap((r) => Array.from({ length: Math.ceil(r.data.length / mss) }, () => micros(r.at)));
          expect(dataTimes).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("UDP ASSOCIATE sessions", () => {
  const session = sessionRow({
    id: 4,
    command: "udp",
    requested_type: "ipv4",
    requested_host: "0.0.0.0",
    requested_port: 0,
    target_host: null,
    target_port: null,
    remote_host: null,
    remote_port: null,
  });
  const datagrams = [
    // A DNS query to a name: sent to the address it resolved to.
    datagramRow(4, 0, {
      direction: "up",
      from_host: "127.0.0.1",
      from_port: 5353,
      peer_type: "domain",
      peer_host: "dns.example",
      peer_port: 53,
      to_host: "10.0.0.53",
      to_port: 53,
      data: Buffer.from("query"),
    }),
    datagramRow(4, 1, {
      direction: "down",
      from_host: "10.0.0.53",
      from_port: 53,
      peer_type: "ipv4",
      peer_host: "10.0.0.53",
      peer_port: 53,
      to_host: "127.0.0.1",
      to_port: 5353,
      data: Buffer.from("answer"),
      sent: Buffer.from("ANSWER!"),
    }),
    // Dropped on the way up: still shown, to the peer the client named.
    datagramRow(4, 2, {
      direction: "up",
      from_host: "127.0.0.1",
      from_port: 5353,
      peer_type: "domain",
      peer_host: "nxdomain.example",
      peer_port: 9,
      data: Buffer.from("lost"),
      verdict: "dropped",
      reason: "dns-failed",
      detail: "lookup nxdomain.example: ENOTFOUND",
    }),
    // Dropped on the way down: from the remote to the client's port.
    datagramRow(4, 3, {
      direction: "down",
      from_host: "10.6.6.6",
      from_port: 1234,
      peer_type: "ipv4",
      peer_host: "10.6.6.6",
      peer_port: 1234,
      data: Buffer.from("spam"),
      verdict: "dropped",
      reason: "unsolicited",
      detail: "10.6.6.6 was never sent to",
    }),
    // No readable header: the destination is unknown, left out.
    datagramRow(4, 4, { direction: "up", from_host: "127.0.0.1", from_port: 5353, data: Buffer.from("garbage"), verdict: "dropped", reason: "bad-header" }),
  ];

  it("one UDP packet per datagram between the client's UDP endpoint and the peer, checksums correct", () => {
    const out = roundTrip([udp(session, datagrams)]);
    const p = out.packets;
    expect(p).toHaveLength(4);
    expect(p.every((x) => x.protocol === 17 && x.family === 4)).toBe(true);
    expectChecksumsOk(p);
    expect(p.map((x) => `${x.src}:${x.udp!.srcPort}>${x.dst}:${x.udp!.dstPort}`)).toEqual([
      "127.0.0.1:5353>10.0.0.53:53",
      "10.0.0.53:53>127.0.0.1:5353",
      `127.0.0.1:5353>${formatIp(syntheticAddress("nxdomain.example", 4))}:9`,
      "10.6.6.6:1234>127.0.0.1:5353",
    ]);
    expect(p.map((x) => x.payload.toString())).toEqual(["query", "ANSWER!", "lost", "spam"]);
    expect(p.map((x) => x.micros)).toEqual([0, 1, 2, 3].map((i) => micros(T0 + 10 + i)));
    expect(out.names.get("10.0.0.53")).toEqual(["dns.example"]);
    expect(p[0]!.comments).toEqual(["socksmith session 4 (run 1 #1): UDP ASSOCIATE from 127.0.0.1:50000", "socksmith: the client sent to dns.example:53"]);
    expect(p[1]!.comments).toEqual(["socksmith: replaced by a hook (6 bytes received, 7 sent)"]);
    expect(p[2]!.comments).toEqual(["socksmith: dropped (dns-failed): lookup nxdomain.example: ENOTFOUND"]);
    expect(p[3]!.comments).toEqual(["socksmith: dropped (unsolicited): 10.6.6.6 was never sent to"]);
  });

  it("received mode carries the bytes as received", () => {
    const p = roundTrip([udp(session, datagrams)], { bytes: "received" }).packets;
    expect(p.map((x) => x.payload.toString())).toEqual(["query", "answer", "lost", "spam"]);
    expectChecksumsOk(p);
  });

  it("IPv6 and mixed-family datagrams; a dropped reply before the client's port is known is left out", () => {
    const s = { ...session, client_host: "::1" };
    const p = roundTrip([
      udp(s, [
        datagramRow(4, 0, { direction: "down", from_host: "2001:db8::1", from_port: 7, verdict: "dropped", reason: "unsolicited" }),
        datagramRow(4, 1, {
          direction: "up",
          from_host: "::1",
          from_port: 6000,
          peer_type: "ipv4",
          peer_host: "10.0.0.7",
          peer_port: 7,
          to_host: "10.0.0.7",
          to_port: 7,
          data: Buffer.alloc(0),
        }),
        datagramRow(4, 2, { direction: "down", from_host: "2001:db8::1", from_port: 7, verdict: "dropped", reason: "unsolicited" }),
      ]),
    ]).packets;
    expect(p).toHaveLength(2);
    expect(p.every((x) => x.family === 6)).toBe(true);
    expect(p[0]!.dst).toBe("::ffff:a00:7");
    expect(p[0]!.payloadLength).toBe(0);
    expect(p[1]!.dst).toBe("::1");
    expect(p[1]!.udp!.dstPort).toBe(6000);
    expectChecksumsOk(p);
  });

  it("a datagram cut by the capture limit is a snapped packet with its full UDP length", () => {
    const p = roundTrip([
      udp(session, [
        datagramRow(4, 0, {
          direction: "up",
          from_host: "127.0.0.1",
          from_port: 1,
          peer_type: "ipv4",
          peer_host: "10.0.0.1",
          peer_port: 2,
          to_host: "10.0.0.1",
          to_port: 2,
          data: Buffer.from("abc"),
          size: 1200,
        }),
      ]),
    ]).packets;
    expect(p[0]!.udp!.length).toBe(1208);
    expect(p[0]!.capturedLength).toBe(20 + 8 + 3);
    expect(p[0]!.originalLength).toBe(20 + 8 + 1200);
    expect(p[0]!.comments.at(-1)).toBe("socksmith: 3 of 1200 bytes stored (capture limit)");
  });
});

describe("several sessions", () => {
  it("exports sessions one after another, each its own conversation", () => {
    const sessions: PcapngSession[] = [];
    for (let id = 1; id <= 5; id++) {
      sessions.push(
        tcp(sessionRow({ id, client_port: 40000 + id }), [chunkRow(id, 0, "up", `request ${id}`, T0 + 10), chunkRow(id, 1, "down", `response ${id}`, T0 + 11)]),
      );
    }
    const out = roundTrip(sessions);
    const conversations = reassembleTcp(out.packets);
    expect(conversations).toHaveLength(5);
    conversations.forEach((c, i) => {
      expect(c.a.port).toBe(40001 + i);
      expect(streamOf(c.a).toString()).toBe(`request ${i + 1}`);
      expect(streamOf(c.b).toString()).toBe(`response ${i + 1}`);
    });
  });
});
