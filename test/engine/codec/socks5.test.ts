import { describe, expect, it } from "vitest";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  CMD,
  METHOD,
  SOCKS5_VERSION,
  decodeGreeting,
  decodeMethodSelection,
  decodeReply,
  decodeRequest,
  encodeGreeting,
  encodeMethodSelection,
  encodeReply,
  encodeRequest,
  type Socks5Request,
} from "../../../src/engine/codec/socks5.js";
import type { SocksAddress, SocksCommand } from "../../../src/engine/types.js";
import { isIP } from "node:net";
import { FIX, NAME_255, arbitraryInput, cat, decodeStream, expectTotalOutcome, hex, messageSuite, toHex, type Decoder } from "./fixtures.js";

const connect = (destination: SocksAddress, rsv = 0): Socks5Request => ({ command: "connect", rsv, destination });
/** The error code of a decode, or its kind when it did not fail. */
function errorCode<T>(bytes: Uint8Array, decode: Decoder<T>): string {
  const r = decode(bytes);
  return r.kind === "error" ? r.error.code : r.kind;
}

describe("constants are named and valued as in RFC 1928", () => {
  it("has VER 5, the §3 methods and the §4 commands", () => {
    expect(SOCKS5_VERSION).toBe(0x05);
    expect(METHOD).toEqual({ NO_AUTHENTICATION_REQUIRED: 0x00, GSSAPI: 0x01, USERNAME_PASSWORD: 0x02, NO_ACCEPTABLE_METHODS: 0xff });
    expect(CMD).toEqual({ CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 });
  });
});

describe("greeting (VER NMETHODS METHODS)", () => {
  messageSuite({ name: "05 01 00", bytes: FIX.greetingNoAuth, decode: decodeGreeting, encode: encodeGreeting, value: { methods: [0x00] } });
  messageSuite({ name: "05 02 00 02", bytes: FIX.greetingNoAuthAndUserPass, decode: decodeGreeting, encode: encodeGreeting, value: { methods: [0x00, 0x02] } });
  messageSuite({
    name: "NMETHODS 255 (valid, scenario 6)",
    bytes: FIX.greeting255,
    decode: decodeGreeting,
    encode: encodeGreeting,
    value: { methods: Array.from({ length: 255 }, (_, i) => i) },
  });

  it("keeps the client's order and duplicates", () => {
    expect(decodeGreeting(hex("05 04 80 02 00 02"))).toEqual({ kind: "ok", value: { methods: [0x80, 0x02, 0x00, 0x02] }, used: 6 });
  });

  it("uses 257 bytes for NMETHODS 255", () => {
    const r = decodeGreeting(FIX.greeting255);
    expect(r.kind === "ok" && r.used).toBe(257);
    expect(r.kind === "ok" && r.value.methods.length).toBe(255);
  });

  it("rejects NMETHODS 0 with NO_METHODS (RFC 1928 §3: 1 to 255)", () => {
    expect(errorCode(FIX.greetingNoMethods, decodeGreeting)).toBe("NO_METHODS");
    expect(errorCode(hex("05 00 05 01 00"), decodeGreeting)).toBe("NO_METHODS");
  });

  it.each([
    ["04 01 00", 0x04],
    ["06 01 00", 0x06],
    ["00", 0x00],
    ["47 45 54 20 2f", 0x47],
  ])("rejects VER of %s with UNKNOWN_VERSION as soon as the first byte is in", (h) => {
    expect(errorCode(hex(h), decodeGreeting)).toBe("UNKNOWN_VERSION");
    expect(errorCode(hex(h).subarray(0, 1), decodeGreeting)).toBe("UNKNOWN_VERSION");
  });

  it("decodes only the greeting out of a pipelined greeting + CONNECT (scenario 2)", () => {
    const pipelined = cat(FIX.greetingNoAuth, FIX.connectIPv4);
    expect(decodeGreeting(pipelined)).toEqual({ kind: "ok", value: { methods: [0] }, used: 3 });
    expect(decodeRequest(pipelined.subarray(3))).toEqual({
      kind: "ok",
      value: connect({ type: "ipv4", host: "127.0.0.1", port: 8080 }),
      used: 10,
    });
  });
});

describe("method selection (VER METHOD)", () => {
  messageSuite({ name: "05 00", bytes: FIX.selectNoAuth, decode: decodeMethodSelection, encode: encodeMethodSelection, value: 0x00 });
  messageSuite({ name: "05 02", bytes: FIX.selectUserPass, decode: decodeMethodSelection, encode: encodeMethodSelection, value: 0x02 });
  messageSuite({ name: "05 ff", bytes: FIX.selectNone, decode: decodeMethodSelection, encode: encodeMethodSelection, value: 0xff });

  it("rejects a VER other than 5", () => {
    expect(errorCode(hex("04 00"), decodeMethodSelection)).toBe("UNKNOWN_VERSION");
    expect(errorCode(hex("01"), decodeMethodSelection)).toBe("UNKNOWN_VERSION");
  });
});

describe("request (VER CMD RSV ATYP DST.ADDR DST.PORT)", () => {
  messageSuite({
    name: "CONNECT ATYP 1 127.0.0.1:8080",
    bytes: FIX.connectIPv4,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "ipv4", host: "127.0.0.1", port: 8080 }),
  });
  messageSuite({
    name: "CONNECT ATYP 3 example.com:80",
    bytes: FIX.connectDomain,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "domain", host: "example.com", port: 80 }),
  });
  messageSuite({
    name: "CONNECT ATYP 4 [2001:db8::1]:443",
    bytes: FIX.connectIPv6,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "ipv6", host: "2001:db8::1", port: 443 }),
  });
  messageSuite({
    name: "CONNECT ATYP 3 with a 255-byte name (scenario 20)",
    bytes: FIX.connectDomain255,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "domain", host: NAME_255, port: 8080 }),
  });
  messageSuite({
    name: "CONNECT ATYP 3 with a zero-length name (scenario 19)",
    bytes: FIX.connectEmptyDomain,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "domain", host: "", port: 8080 }),
  });
  messageSuite({
    name: "CONNECT with RSV 01 (kept, not rejected; scenario 16)",
    bytes: FIX.connectRsv1,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "ipv4", host: "127.0.0.1", port: 8080 }, 0x01),
  });
  messageSuite({
    name: "BIND 127.0.0.1:0",
    bytes: FIX.bindIPv4,
    decode: decodeRequest,
    encode: encodeRequest,
    value: { command: "bind", rsv: 0, destination: { type: "ipv4", host: "127.0.0.1", port: 0 } },
  });
  messageSuite({
    name: "UDP ASSOCIATE 0.0.0.0:0 (scenario 40)",
    bytes: FIX.udpZero,
    decode: decodeRequest,
    encode: encodeRequest,
    value: { command: "udp", rsv: 0, destination: { type: "ipv4", host: "0.0.0.0", port: 0 } },
  });
  // An IP literal sent as a name is a real client behaviour (curl/curl#8216). The request must
  // keep ATYP 3 through a round trip: symmetric encode/decode, and the ATYP is the
  // client's choice, which a replay must reproduce.
  messageSuite({
    name: 'CONNECT ATYP 3 carrying the IP literal "127.0.0.1" (scenario 21)',
    bytes: FIX.connectIPLiteralDomain,
    decode: decodeRequest,
    encode: encodeRequest,
    value: connect({ type: "domain", host: "127.0.0.1", port: 8080 }),
  });

  it("keeps ATYP 3 when encoding a domain destination that looks like an IPv6 literal", () => {
    const request = connect({ type: "domain", host: "::1", port: 80 });
    expect(toHex(encodeRequest(request))).toBe(toHex(hex("05 01 00 03 03 3a 3a 31 00 50")));
  });

  it("decodes an IPv4-mapped IPv6 destination (ATYP 4) as ipv4 127.0.0.1 (scenario 25)", () => {
    expect(decodeRequest(FIX.connectMapped)).toEqual({
      kind: "ok",
      value: connect({ type: "ipv4", host: "127.0.0.1", port: 8080 }),
      used: 22,
    });
    // …which then encodes as ATYP 1 with 4 bytes, never the ::ffff: form.
    expect(toHex(encodeRequest(connect({ type: "ipv4", host: "127.0.0.1", port: 8080 })))).toBe(toHex(FIX.connectIPv4));
  });

  it("keeps a name byte for byte, including NUL and high octets (scenario 22)", () => {
    const r = decodeRequest(hex("05 01 00 03 08 65 76 69 6c 00 2e 63 6f 1f 90"));
    expect(r).toEqual({ kind: "ok", value: connect({ type: "domain", host: "evil\u0000.co", port: 8080 }), used: 15 });
    const high = decodeRequest(hex("05 01 00 03 02 e9 ff 00 50"));
    expect(high).toEqual({ kind: "ok", value: connect({ type: "domain", host: "\u00e9\u00ff", port: 80 }), used: 9 });
  });

  it("decodes ports big-endian across the whole range", () => {
    for (const [p, port] of [
      ["00 00", 0],
      ["00 01", 1],
      ["01 00", 256],
      ["ff ff", 65535],
    ] as const) {
      const r = decodeRequest(hex(`05 01 00 01 0a 00 00 01 ${p}`));
      expect(r.kind === "ok" && r.value.destination.port).toBe(port);
    }
  });

  it.each([
    ["00", 0x00],
    ["04", 0x04],
    ["09 (scenario 17)", 0x09],
    ["f0 (Tor RESOLVE, scenario 59)", 0xf0],
    ["ff", 0xff],
  ])("rejects CMD %s with UNKNOWN_COMMAND", (_, cmd) => {
    const bytes = hex("05 00 00 01 7f 00 00 01 1f 90");
    bytes[1] = cmd;
    expect(errorCode(bytes, decodeRequest)).toBe("UNKNOWN_COMMAND");
    // As soon as the CMD byte is in: no need to wait for the address.
    expect(errorCode(bytes.subarray(0, 2), decodeRequest)).toBe("UNKNOWN_COMMAND");
  });

  it.each(["00", "02", "05", "ff"])("rejects ATYP %s with UNKNOWN_ADDRESS_TYPE", (atyp) => {
    const bytes = cat(hex("05 01 00"), hex(atyp), hex("7f 00 00 01 1f 90"));
    expect(errorCode(bytes, decodeRequest)).toBe("UNKNOWN_ADDRESS_TYPE");
    expect(errorCode(bytes.subarray(0, 4), decodeRequest)).toBe("UNKNOWN_ADDRESS_TYPE");
  });

  it("rejects a request VER other than 5 with BAD_REQUEST_VERSION", () => {
    expect(errorCode(hex("04 01 00 01 7f 00 00 01 1f 90"), decodeRequest)).toBe("BAD_REQUEST_VERSION");
    expect(errorCode(hex("01"), decodeRequest)).toBe("BAD_REQUEST_VERSION");
  });

  it("leaves early application data after the request (scenario 3)", () => {
    const r = decodeRequest(cat(FIX.connectDomain, FIX.early));
    expect(r.kind === "ok" && r.used).toBe(FIX.connectDomain.length);
  });

  it("decodes different requests pipelined back to back", () => {
    const all = cat(FIX.connectIPv4, FIX.connectDomain, FIX.connectIPv6, FIX.connectEmptyDomain);
    const r = decodeStream(
      decodeRequest,
      Array.from(all, (b) => Buffer.of(b)),
    );
    expect(r.values.map((v) => v.destination.host)).toEqual(["127.0.0.1", "example.com", "2001:db8::1", ""]);
    expect(r.used).toEqual([10, 18, 22, 7]);
    expect(r.rest.length).toBe(0);
  });

  it("encodes every command with its RFC code", () => {
    for (const [command, code] of [
      ["connect", 1],
      ["bind", 2],
      ["udp", 3],
    ] as const) {
      expect(encodeRequest({ command, rsv: 0, destination: { type: "ipv4", host: "1.2.3.4", port: 5 } })[1]).toBe(code);
    }
  });
});

describe("reply (VER REP RSV ATYP BND.ADDR BND.PORT)", () => {
  messageSuite({
    name: "succeeded, bound 127.0.0.1:54321 (10 bytes)",
    bytes: FIX.reply10,
    decode: decodeReply,
    encode: (v) => encodeReply(v.rep, v.bound.host, v.bound.port),
    value: { rep: 0, bound: { type: "ipv4", host: "127.0.0.1", port: 54321 } },
  });
  messageSuite({
    name: "succeeded, bound [2001:db8::1]:443 (22 bytes)",
    bytes: FIX.reply22,
    decode: decodeReply,
    encode: (v) => encodeReply(v.rep, v.bound.host, v.bound.port),
    value: { rep: 0, bound: { type: "ipv6", host: "2001:db8::1", port: 443 } },
  });
  messageSuite({
    name: "general failure with 0.0.0.0:0",
    bytes: FIX.replyFailure,
    decode: decodeReply,
    encode: (v) => encodeReply(v.rep, v.bound.host, v.bound.port),
    value: { rep: 1, bound: { type: "ipv4", host: "0.0.0.0", port: 0 } },
  });

  it("is always the full form: 10 bytes with 0.0.0.0:0 when no address is given", () => {
    for (let rep = 0; rep <= 8; rep++) {
      const bytes = encodeReply(rep);
      expect(bytes.length).toBe(10);
      expect(toHex(bytes)).toBe(toHex(cat(Buffer.of(5, rep), hex("00 01 00 00 00 00 00 00"))));
    }
    expect(toHex(encodeReply(7))).toBe("05 07 00 01 00 00 00 00 00 00");
  });

  it("writes an IPv4-mapped bound address as ATYP 1", () => {
    expect(toHex(encodeReply(0, "::ffff:127.0.0.1", 54321))).toBe(toHex(FIX.reply10));
  });

  it("decodes a reply with a domain BND.ADDR (legal per RFC 1928 §6)", () => {
    expect(decodeReply(hex("05 00 00 03 01 61 00 50"))).toEqual({ kind: "ok", value: { rep: 0, bound: { type: "domain", host: "a", port: 80 } }, used: 8 });
  });

  it("rejects a reply VER other than 5 and an unknown ATYP", () => {
    expect(errorCode(hex("00 5a 00 00 00 00 00 00"), decodeReply)).toBe("UNKNOWN_VERSION");
    expect(errorCode(hex("05 00 00 07"), decodeReply)).toBe("UNKNOWN_ADDRESS_TYPE");
  });
});

describe("properties", () => {
  const heads = [FIX.greeting255, FIX.connectIPv4, FIX.connectDomain, FIX.connectIPv6, FIX.connectMapped, FIX.reply22, hex("05 01 00 03 ff")];

  it.each([
    ["decodeGreeting", decodeGreeting],
    ["decodeMethodSelection", decodeMethodSelection],
    ["decodeRequest", decodeRequest],
    ["decodeReply", decodeReply],
  ] as const)("%s is total on arbitrary bytes", (_, decode) => {
    fc.assert(
      fc.property(arbitraryInput(heads), (bytes) => expectTotalOutcome<unknown>(decode, bytes)),
      { numRuns: 150 },
    );
  });

  /** Text of 16 bytes in RFC 5952 form (what decode produces), computed independently. */
  const ipv6Text = (raw: Uint8Array) => ipaddr.fromByteArray(Array.from(raw)).toString();
  const isMapped = (raw: Uint8Array) => raw.subarray(0, 10).every((b) => b === 0) && raw[10] === 0xff && raw[11] === 0xff;

  const port = fc.integer({ min: 0, max: 65535 });
  const ipv4Address = fc
    .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), port)
    .map(([b, p]): SocksAddress => ({ type: "ipv4", host: Array.from(b).join("."), port: p }));
  const ipv6Address = fc
    .tuple(
      fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !isMapped(b)),
      port,
    )
    .map(([b, p]): SocksAddress => ({ type: "ipv6", host: ipv6Text(b), port: p }));
  // Latin1 names of 0..255 bytes. IP-literal names are covered by the scenario 21 fixture.
  const domainAddress = fc
    .tuple(
      fc.uint8Array({ maxLength: 255 }).filter((b) => isIP(Buffer.from(b).toString("latin1")) === 0),
      port,
    )
    .map(([b, p]): SocksAddress => ({ type: "domain", host: Buffer.from(b).toString("latin1"), port: p }));
  const request = fc.record({
    command: fc.constantFrom<SocksCommand>("connect", "bind", "udp"),
    rsv: fc.integer({ min: 0, max: 255 }),
    destination: fc.oneof(ipv4Address, ipv6Address, domainAddress),
  });

  it("request round trip: decode(encode(request)) gives the request and uses every byte", () => {
    fc.assert(
      fc.property(request, fc.uint8Array({ maxLength: 16 }), (req, tail) => {
        const bytes = encodeRequest(req);
        expect(decodeRequest(bytes)).toEqual({ kind: "ok", value: req, used: bytes.length });
        expect(decodeRequest(cat(bytes, tail))).toEqual({ kind: "ok", value: req, used: bytes.length });
        expect(decodeRequest(bytes.subarray(0, bytes.length - 1))).toEqual({ kind: "need-more" });
      }),
      { numRuns: 300 },
    );
  });

  it("greeting round trip for 1 to 255 methods", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 255 }), (methods) => {
        const bytes = encodeGreeting({ methods });
        expect(decodeGreeting(bytes)).toEqual({ kind: "ok", value: { methods }, used: methods.length + 2 });
      }),
      { numRuns: 100 },
    );
  });

  it("reply round trip for IPv4 and IPv6 bound addresses", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.oneof(ipv4Address, ipv6Address), (rep, bound) => {
        const bytes = encodeReply(rep, bound.host, bound.port);
        expect(bytes.length).toBe(bound.type === "ipv4" ? 10 : 22);
        expect(decodeReply(bytes)).toEqual({ kind: "ok", value: { rep, bound }, used: bytes.length });
      }),
      { numRuns: 100 },
    );
  });
});
