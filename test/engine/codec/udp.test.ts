import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_UDP_PAYLOAD_V4, decodeUdpDatagram, encodeUdpDatagram, udpHeaderLength } from "../../../src/engine/codec/udp.js";

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
});
