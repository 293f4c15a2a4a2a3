import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  ATYP,
  addressLength,
  decodeAddress,
  formatIPv6,
  hex as hexByte,
  mappedIPv4,
  normalizeHost,
  readPort,
  writeAddress,
  writeIPv4,
  writePort,
} from "../../../src/engine/codec/address.js";
import type { SocksAddress } from "../../../src/engine/types.js";
import { FIX, NAME_255, arbitraryInput, atOffset, cat, expectTotalOutcome, hex, latin1, messageSuite, repeat, toHex } from "./fixtures.js";

/** decodeAddress at offset 0, the form messageSuite can drive. */
const decodeAt0 = (bytes: Uint8Array) => decodeAddress(bytes, 0);
/** writeAddress into an exactly sized buffer. */
const encode = (a: SocksAddress) => {
  const out = Buffer.alloc(addressLength(a.host));
  expect(writeAddress(out, 0, a.host, a.port)).toBe(out.length);
  return out;
};

describe("ATYP values (RFC 1928 §5)", () => {
  it("names 1, 3 and 4", () => {
    expect(ATYP).toEqual({ IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 });
  });
});

describe("decodeAddress / writeAddress", () => {
  messageSuite({
    name: "ATYP 1 127.0.0.1:8080",
    bytes: hex("01 7f 00 00 01 1f 90"),
    decode: decodeAt0,
    encode,
    value: { type: "ipv4", host: "127.0.0.1", port: 8080 },
  });
  messageSuite({
    name: "ATYP 1 255.255.255.255:65535",
    bytes: hex("01 ff ff ff ff ff ff"),
    decode: decodeAt0,
    encode,
    value: { type: "ipv4", host: "255.255.255.255", port: 65535 },
  });
  messageSuite({
    name: "ATYP 3 example.com:80",
    bytes: hex("03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"),
    decode: decodeAt0,
    encode,
    value: { type: "domain", host: "example.com", port: 80 },
  });
  messageSuite({ name: "ATYP 3 zero-length name", bytes: hex("03 00 1f 90"), decode: decodeAt0, encode, value: { type: "domain", host: "", port: 8080 } });
  messageSuite({
    name: "ATYP 3 255-byte name",
    bytes: cat(hex("03 ff"), repeat(0x61, 255), hex("00 50")),
    decode: decodeAt0,
    encode,
    value: { type: "domain", host: NAME_255, port: 80 },
  });
  messageSuite({
    name: "ATYP 4 ::1",
    bytes: hex("04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 1f 90"),
    decode: decodeAt0,
    encode,
    value: { type: "ipv6", host: "::1", port: 8080 },
  });
  messageSuite({
    name: "ATYP 4 ::",
    bytes: hex("04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
    decode: decodeAt0,
    encode,
    value: { type: "ipv6", host: "::", port: 0 },
  });
  messageSuite({
    name: "ATYP 4 2001:db8:0:0:1:0:0:1 in RFC 5952 form",
    bytes: hex("04 20 01 0d b8 00 00 00 00 00 01 00 00 00 00 00 01 00 50"),
    decode: decodeAt0,
    encode,
    value: { type: "ipv6", host: "2001:db8::1:0:0:1", port: 80 },
  });

  it("decodes an IPv4-mapped IPv6 address (ATYP 4) as ipv4 127.0.0.1, using all 19 bytes", () => {
    const mapped = hex("04 00 00 00 00 00 00 00 00 00 00 ff ff 7f 00 00 01 1f 90");
    expect(decodeAt0(mapped)).toEqual({ kind: "ok", value: { type: "ipv4", host: "127.0.0.1", port: 8080 }, used: 19 });
    for (let n = 0; n < 19; n++) expect(decodeAt0(mapped.subarray(0, n))).toEqual({ kind: "need-more" });
  });

  it("keeps IPv4-compatible (::a.b.c.d) and IPv4-translated addresses as ipv6", () => {
    expect(decodeAt0(hex("04 00 00 00 00 00 00 00 00 00 00 00 00 01 02 03 04 00 50"))).toEqual({
      kind: "ok",
      value: { type: "ipv6", host: "::102:304", port: 80 },
      used: 19,
    });
    const translated = decodeAt0(hex("04 00 00 00 00 00 00 00 00 ff ff 00 00 01 02 03 04 00 50"));
    expect(translated.kind === "ok" && translated.value.type).toBe("ipv6");
  });

  it("counts `used` from `at`, not from the start of the buffer", () => {
    const request = cat(hex("05 01 00"), hex("03 01 61 00 50"), FIX.early);
    expect(decodeAddress(request, 3)).toEqual({ kind: "ok", value: { type: "domain", host: "a", port: 80 }, used: 5 });
    expect(decodeAddress(request.subarray(0, 7), 3)).toEqual({ kind: "need-more" });
    expect(decodeAddress(request.subarray(0, 3), 3)).toEqual({ kind: "need-more" });
  });

  it("reads a name from a Uint8Array view with a non-zero byteOffset", () => {
    const view = atOffset(hex("00 00 03 03 61 62 63 01 bb"), 11);
    expect(decodeAddress(view, 2)).toEqual({ kind: "ok", value: { type: "domain", host: "abc", port: 443 }, used: 7 });
  });

  it("keeps every name byte (latin1), NUL and high octets included", () => {
    const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
    const r = decodeAt0(cat(hex("03 ff"), all, hex("00 01")));
    expect(r.kind === "ok" && latin1(r.value.host).equals(all)).toBe(true);
    expect(decodeAt0(hex("03 03 61 00 62 00 01"))).toEqual({ kind: "ok", value: { type: "domain", host: "a\u0000b", port: 1 }, used: 7 });
  });

  it.each(["00", "02", "05", "06", "ff"])("rejects ATYP %s with UNKNOWN_ADDRESS_TYPE", (atyp) => {
    const r = decodeAt0(hex(atyp));
    expect(r.kind === "error" && r.error.code).toBe("UNKNOWN_ADDRESS_TYPE");
  });

  it("writes IP text as ATYP 1/4 and an IPv4-mapped text as ATYP 1", () => {
    expect(toHex(encode({ type: "ipv4", host: "10.1.2.3", port: 1 }))).toBe("01 0a 01 02 03 00 01");
    expect(toHex(encode({ type: "ipv6", host: "::ffff:10.1.2.3", port: 1 }))).toBe("01 0a 01 02 03 00 01");
    expect(toHex(encode({ type: "ipv6", host: "fe80::1", port: 2 }))).toBe("04 fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 02");
  });

  it("returns the offset after the address and writes nothing outside it", () => {
    const out = Buffer.alloc(12, 0xee);
    expect(writeAddress(out, 3, "1.2.3.4", 0x1f90)).toBe(10);
    expect(toHex(out)).toBe("ee ee ee 01 01 02 03 04 1f 90 ee ee");
  });
});

describe("addressLength", () => {
  it.each([
    ["1.2.3.4", 7],
    ["::1", 19],
    ["2001:db8::1", 19],
    ["::ffff:1.2.3.4", 7],
    ["example.com", 15],
    ["", 4],
    [NAME_255, 259],
  ])("%s takes %i bytes", (host, n) => {
    expect(addressLength(host)).toBe(n);
  });
});

describe("small helpers", () => {
  it("writeIPv4 writes dotted text as 4 bytes", () => {
    const out = Buffer.alloc(6);
    writeIPv4(out, 1, "192.168.0.255");
    expect(toHex(out)).toBe("00 c0 a8 00 ff 00");
  });

  it("readPort / writePort are big-endian over 0..65535", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), (port) => {
        const out = Buffer.alloc(4);
        writePort(out, 1, port);
        expect(out[1]).toBe(port >>> 8);
        expect(out[2]).toBe(port & 0xff);
        expect(readPort(out, 1)).toBe(port);
      }),
      { numRuns: 100 },
    );
  });

  it("formatIPv6 gives RFC 5952 text (lowercase, longest zero run compressed, no single-group ::)", () => {
    expect(formatIPv6(hex("20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01"))).toBe("2001:db8::1");
    expect(formatIPv6(hex("20 01 0d b8 00 00 00 01 00 00 00 00 00 00 00 01"))).toBe("2001:db8:0:1::1");
    expect(formatIPv6(hex("20 01 0d b8 00 00 00 01 00 01 00 01 00 01 00 01"))).toBe("2001:db8:0:1:1:1:1:1");
    expect(formatIPv6(hex("fe 80 00 00 00 00 00 00 ab cd 00 00 00 00 00 00"))).toBe("fe80::abcd:0:0:0");
    expect(formatIPv6(new Uint8Array(16))).toBe("::");
  });

  it("mappedIPv4 finds the IPv4 inside ::ffff:a.b.c.d in any spelling", () => {
    expect(mappedIPv4("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(mappedIPv4("::FFFF:7f00:1")).toBe("127.0.0.1");
    expect(mappedIPv4("0:0:0:0:0:ffff:a01:203")).toBe("10.1.2.3");
    expect(mappedIPv4("::1")).toBeUndefined();
    expect(mappedIPv4("127.0.0.1")).toBeUndefined();
    expect(mappedIPv4("example.com")).toBeUndefined();
  });

  it("normalizeHost turns socket-reported mapped addresses into IPv4 and leaves others alone", () => {
    expect(normalizeHost("::ffff:192.168.1.2")).toBe("192.168.1.2");
    expect(normalizeHost("::ffff:c0a8:102")).toBe("192.168.1.2");
    expect(normalizeHost("192.168.1.2")).toBe("192.168.1.2");
    expect(normalizeHost("::1")).toBe("::1");
    expect(normalizeHost("example.com")).toBe("example.com");
  });

  it("hex gives two lowercase digits", () => {
    expect(hexByte(0)).toBe("00");
    expect(hexByte(5)).toBe("05");
    expect(hexByte(0xab)).toBe("ab");
  });
});

describe("properties", () => {
  it("decodeAddress is total on arbitrary bytes at any offset", () => {
    const heads = [hex("01 7f 00"), hex("03 ff"), hex("03 00"), hex("04 00 00 00 00 00 00 00 00 00 00 ff ff")];
    fc.assert(
      fc.property(arbitraryInput(heads), fc.nat({ max: 8 }), (bytes, at) => {
        const input = cat(repeat(0x05, at), bytes);
        const r = decodeAddress(input, at);
        if (r.kind === "ok") {
          expect(r.used).toBeGreaterThan(0);
          expect(at + r.used).toBeLessThanOrEqual(input.length);
        }
        expectTotalOutcome(decodeAt0, bytes);
      }),
      { numRuns: 200 },
    );
  });

  it("writeAddress then decodeAddress gives the address back", () => {
    const port = fc.integer({ min: 0, max: 65535 });
    const address = fc.oneof(
      fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), port).map(([b, p]): SocksAddress => ({ type: "ipv4", host: Array.from(b).join("."), port: p })),
      fc
        .tuple(
          fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)),
          port,
        )
        .map(([b, p]): SocksAddress => ({ type: "ipv6", host: formatIPv6(b), port: p })),
      fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z]{2,10}){1,3}$/), port).map(([h, p]): SocksAddress => ({ type: "domain", host: h, port: p })),
    );
    fc.assert(
      fc.property(address, (a) => {
        const bytes = encode(a);
        expect(decodeAt0(bytes)).toEqual({ kind: "ok", value: a, used: bytes.length });
      }),
      { numRuns: 200 },
    );
  });
});
