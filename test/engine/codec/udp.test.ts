import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_UDP_PAYLOAD_V4, UdpHeaderMemo, decodeUdpDatagram, encodeUdpDatagram, encodeUdpHeader, udpHeaderLength } from "../../../src/engine/codec/udp.js";

const h = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");

describe("UDP request header (RFC 1928 §7)", () => {
  it("decodes IPv4, domain and IPv6 headers, the payload is the rest", () => {
    expect(decodeUdpDatagram(h("0000 00 01 7f000001 1f90 70696e67"))).toEqual({
      kind: "ok",
      used: 14,
      value: { frag: 0, address: { type: "ipv4", host: "127.0.0.1", port: 8080 }, data: Buffer.from("ping") },
    });
    expect(decodeUdpDatagram(h("0000 00 03 09 6c6f63616c686f7374 0035 71"))).toMatchObject({
      kind: "ok",
      value: { address: { type: "domain", host: "localhost", port: 53 }, data: Buffer.from("q") },
    });
    expect(decodeUdpDatagram(h("0000 00 04 00000000000000000000000000000001 0035"))).toMatchObject({
      kind: "ok",
      value: { address: { type: "ipv6", host: "::1", port: 53 }, data: Buffer.alloc(0) },
    });
  });

  it("reports FRAG to the caller and rejects RSV != 0, short datagrams and unknown ATYP", () => {
    expect(decodeUdpDatagram(h("0000 81 01 7f000001 1f90 61"))).toMatchObject({ kind: "ok", value: { frag: 0x81 } });
    expect(decodeUdpDatagram(h("0100 00 01 7f000001 1f90"))).toMatchObject({ kind: "error", error: { code: "UDP_BAD_RSV" } });
    expect(decodeUdpDatagram(h("0000 00 01 7f00"))).toMatchObject({ kind: "error", error: { code: "UDP_TRUNCATED" } });
    expect(decodeUdpDatagram(h("0000 00 03 20 6162"))).toMatchObject({ kind: "error", error: { code: "UDP_TRUNCATED" } });
    expect(decodeUdpDatagram(h("0000 00 02 7f000001 1f90"))).toMatchObject({ kind: "error", error: { code: "UNKNOWN_ADDRESS_TYPE" } });
    expect(decodeUdpDatagram(h("000000"))).toMatchObject({ kind: "error", error: { code: "UDP_TRUNCATED" } });
  });

  it("encodes the header of each address type; IPv4-mapped IPv6 becomes ATYP 1", () => {
    expect(encodeUdpDatagram("127.0.0.1", 8080, Buffer.from("ping")).toString("hex")).toBe("000000017f0000011f9070696e67");
    expect(encodeUdpDatagram("::ffff:127.0.0.1", 80, Buffer.alloc(0)).toString("hex")).toBe("000000017f0000010050");
    expect(udpHeaderLength("::1")).toBe(22);
    expect(udpHeaderLength("example.com")).toBe(4 + 1 + 11 + 2);
    expect(10 + 65_497).toBe(MAX_UDP_PAYLOAD_V4);
  });

  it("property: arbitrary bytes never throw and give exactly one outcome", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const result = decodeUdpDatagram(Buffer.from(bytes));
        expect(["ok", "error"]).toContain(result.kind);
        if (result.kind === "ok") expect(result.used).toBe(bytes.length);
      }),
      { numRuns: 2000 },
    );
  });

  it("property: encode then decode gives back address and payload", () => {
    const host = fc.oneof(
      fc.ipV4(),
      fc.ipV6().filter((a) => !a.toLowerCase().includes("ffff:") && !a.includes(".")),
      fc.domain().filter((d) => d.length <= 255),
    );
    fc.assert(
      fc.property(host, fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 64 }), (address, port, data) => {
        const decoded = decodeUdpDatagram(encodeUdpDatagram(address, port, data));
        expect(decoded.kind).toBe("ok");
        if (decoded.kind !== "ok") return;
        expect(decoded.value.address.port).toBe(port);
        expect(Buffer.from(decoded.value.data)).toEqual(Buffer.from(data));
      }),
      { numRuns: 500 },
    );
  });

  it("encodeUdpHeader is encodeUdpDatagram without the data", () => {
    for (const host of ["127.0.0.1", "::1", "::ffff:10.0.0.1", "example.com"]) {
      expect(Buffer.concat([encodeUdpHeader(host, 53), Buffer.from("q")])).toEqual(encodeUdpDatagram(host, 53, Buffer.from("q")));
    }
  });

  it("the memo reuses the last header's address object while the header repeats", () => {
    const memo = new UdpHeaderMemo();
    const first = memo.decode(encodeUdpDatagram("127.0.0.1", 53, Buffer.from("a")));
    const again = memo.decode(encodeUdpDatagram("127.0.0.1", 53, Buffer.from("bb")));
    const other = memo.decode(encodeUdpDatagram("127.0.0.1", 54, Buffer.from("c")));
    if (first.kind !== "ok" || again.kind !== "ok" || other.kind !== "ok") throw new Error("not decoded");
    expect(again.value.address).toBe(first.value.address);
    expect(again.value.data.toString()).toBe("bb");
    expect(other.value.address).toEqual({ type: "ipv4", host: "127.0.0.1", port: 54 });
  });

  it("property: the memo decodes every sequence of datagrams exactly as decodeUdpDatagram", () => {
    const host = fc.oneof(
      fc.constantFrom("127.0.0.1", "::1", "a.example"),
      fc.ipV4(),
      fc.domain().filter((d) => d.length <= 255),
    );
    const framed = fc
      .tuple(host, fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 16 }), fc.constantFrom(0, 0, 0, 1, 0x81))
      .map(([address, port, data, frag]) => encodeUdpDatagram(address, port, data, frag));
    // Valid datagrams, their prefixes (cut inside a header) and arbitrary bytes, in any order.
    const datagram = fc.oneof(
      framed,
      framed.chain((b) => fc.integer({ min: 0, max: b.length }).map((n) => b.subarray(0, n))),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(fc.array(datagram, { maxLength: 12 }), (datagrams) => {
        const memo = new UdpHeaderMemo();
        for (const d of [...datagrams, ...datagrams]) expect(memo.decode(d)).toEqual(decodeUdpDatagram(d));
      }),
      { numRuns: 500 },
    );
  });
});
