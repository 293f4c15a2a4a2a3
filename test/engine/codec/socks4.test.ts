import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  SOCKS4_CMD,
  SOCKS4_FIELD_MAX,
  SOCKS4_REPLY_VERSION,
  SOCKS4_VERSION,
  decodeSocks4Reply,
  decodeSocks4Request,
  encodeSocks4Reply,
  encodeSocks4Request,
  type Socks4Request,
} from "../../../src/engine/codec/socks4.js";
import { FIX, arbitraryInput, cat, expectTotalOutcome, hex, latin1, messageSuite, repeat, toHex, type Decoder } from "./fixtures.js";

function errorCode<T>(bytes: Uint8Array, decode: Decoder<T>): string {
  const r = decode(bytes);
  return r.kind === "error" ? r.error.code : r.kind;
}

const v4 = (host: string, port: number, userid = "", command: "connect" | "bind" = "connect"): Socks4Request => ({
  version: 4,
  command,
  destination: { type: "ipv4", host, port },
  userid: latin1(userid),
});
const v4a = (host: string, port: number, userid = ""): Socks4Request => ({
  version: "4a",
  command: "connect",
  destination: { type: "domain", host, port },
  userid: latin1(userid),
});

describe("constants (SOCKS4.protocol)", () => {
  it("has VN 4 for requests, VN 0 for replies, CD 1/2 and a 255-byte field cap", () => {
    expect(SOCKS4_VERSION).toBe(4);
    expect(SOCKS4_REPLY_VERSION).toBe(0);
    expect(SOCKS4_CMD).toEqual({ CONNECT: 1, BIND: 2 });
    expect(SOCKS4_FIELD_MAX).toBe(255);
  });
});

describe("SOCKS4 request (VN CD DSTPORT DSTIP USERID NUL)", () => {
  messageSuite({
    name: "CONNECT 127.0.0.1:8080, empty USERID (scenario 9)",
    bytes: FIX.socks4Connect,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4("127.0.0.1", 8080),
  });
  messageSuite({
    name: "CONNECT 93.184.216.34:80, USERID bob",
    bytes: FIX.socks4ConnectUser,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4("93.184.216.34", 80, "bob"),
  });
  messageSuite({
    name: "BIND 127.0.0.1:8080, USERID bob",
    bytes: FIX.socks4Bind,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4("127.0.0.1", 8080, "bob", "bind"),
  });
  messageSuite({
    name: "DSTIP 0.0.0.0 is plain SOCKS4, not 4a (scenario 55)",
    bytes: FIX.socks4ZeroIp,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4("0.0.0.0", 80),
  });
  messageSuite({
    name: "USERID of exactly 255 bytes",
    bytes: cat(hex("04 01 00 50 0a 00 00 01"), repeat(0x41, 255), hex("00")),
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4("10.0.0.1", 80, "A".repeat(255)),
  });

  it("does not read a hostname after the USERID when DSTIP is 0.0.0.0 (scenario 55)", () => {
    const r = decodeSocks4Request(cat(FIX.socks4ZeroIp, latin1("example.com"), hex("00")));
    expect(r).toEqual({ kind: "ok", value: v4("0.0.0.0", 80), used: 9 });
  });

  it("keeps USERID octets exactly (no encoding)", () => {
    const r = decodeSocks4Request(hex("04 01 00 50 0a 00 00 01 ff 80 7f 00"));
    expect(r.kind === "ok" && toHex(r.value.userid)).toBe("ff 80 7f");
  });

  it("copies the USERID out of the input buffer", () => {
    const input = Buffer.from(FIX.socks4ConnectUser);
    const r = decodeSocks4Request(input);
    input.fill(0x21);
    expect(r.kind === "ok" && r.value.userid.toString("latin1")).toBe("bob");
  });

  it("returns need-more for a 255-byte USERID still waiting for its NUL", () => {
    expect(decodeSocks4Request(cat(hex("04 01 00 50 0a 00 00 01"), repeat(0x41, 255)))).toEqual({ kind: "need-more" });
  });

  it("fails with FIELD_TOO_LONG once a USERID passes 255 bytes without NUL", () => {
    expect(errorCode(cat(hex("04 01 00 50 0a 00 00 01"), repeat(0x41, 256)), decodeSocks4Request)).toBe("FIELD_TOO_LONG");
    expect(errorCode(cat(hex("04 01 00 50 0a 00 00 01"), repeat(0x41, 256), hex("00")), decodeSocks4Request)).toBe("FIELD_TOO_LONG");
  });

  it("fails with FIELD_TOO_LONG on 2 000 unterminated bytes, whole or fed in 100-byte reads (scenario 57)", () => {
    const flood = cat(hex("04 01 00 50 7f 00 00 01"), repeat(0x41, 2000));
    expect(errorCode(flood, decodeSocks4Request)).toBe("FIELD_TOO_LONG");
    const outcomes: string[] = [];
    for (let n = 100; n <= flood.length; n += 100) outcomes.push(errorCode(flood.subarray(0, n), decodeSocks4Request));
    // need-more until the cap (8 + 256 bytes) is in, then the error
    expect(outcomes.slice(0, 2)).toEqual(["need-more", "need-more"]);
    expect(outcomes.slice(2).every((o) => o === "FIELD_TOO_LONG")).toBe(true);
  });

  it.each([
    ["05 (a SOCKS5 greeting)", "05 01 00"],
    ["00", "00 01 00 50 7f 00 00 01 00"],
    ["03", "03 01 00 50 7f 00 00 01 00"],
  ])("rejects VN %s with UNKNOWN_VERSION from the first byte", (_, h) => {
    expect(errorCode(hex(h), decodeSocks4Request)).toBe("UNKNOWN_VERSION");
    expect(errorCode(hex(h).subarray(0, 1), decodeSocks4Request)).toBe("UNKNOWN_VERSION");
  });

  it.each(["00", "03", "f0", "ff"])("rejects CD %s with UNKNOWN_COMMAND as soon as it is in", (cd) => {
    const bytes = cat(hex("04"), hex(cd), hex("00 50 7f 00 00 01 00"));
    expect(errorCode(bytes, decodeSocks4Request)).toBe("UNKNOWN_COMMAND");
    expect(errorCode(bytes.subarray(0, 2), decodeSocks4Request)).toBe("UNKNOWN_COMMAND");
  });

  it("leaves pipelined application data after the NUL", () => {
    expect(decodeSocks4Request(cat(FIX.socks4Connect, FIX.early))).toEqual({ kind: "ok", value: v4("127.0.0.1", 8080), used: 9 });
  });
});

describe("SOCKS4a request (DSTIP 0.0.0.x, x != 0; hostname after the USERID's NUL)", () => {
  messageSuite({
    name: "CONNECT example.com:80, empty USERID (scenario 54)",
    bytes: FIX.socks4aConnect,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4a("example.com", 80),
  });
  messageSuite({
    name: "CONNECT example.com:80, USERID bob",
    bytes: FIX.socks4aConnectUser,
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4a("example.com", 80, "bob"),
  });
  messageSuite({
    name: "hostname of exactly 255 bytes",
    bytes: cat(hex("04 01 01 bb 00 00 00 01 00"), repeat(0x62, 255), hex("00")),
    decode: decodeSocks4Request,
    encode: encodeSocks4Request,
    value: v4a("b".repeat(255), 443),
  });

  it("decodes a double NUL after the USERID as an empty hostname, used 10 (scenario 56)", () => {
    expect(decodeSocks4Request(FIX.socks4aDoubleNul)).toEqual({ kind: "ok", value: v4a("", 80), used: 10 });
  });

  it.each(["01", "02", "7f", "ff"])("treats DSTIP 0.0.0.%s as 4a", (x) => {
    const r = decodeSocks4Request(cat(hex("04 01 00 50 00 00 00"), hex(x), hex("00"), latin1("a.b"), hex("00")));
    expect(r).toEqual({ kind: "ok", value: v4a("a.b", 80), used: 13 });
  });

  it.each([
    ["0.0.1.1", "00 00 01 01"],
    ["0.1.0.1", "00 01 00 01"],
    ["1.0.0.1", "01 00 00 01"],
  ])("treats DSTIP %s as plain SOCKS4", (host, ip) => {
    const r = decodeSocks4Request(cat(hex("04 01 00 50"), hex(ip), hex("00"), latin1("a.b"), hex("00")));
    expect(r).toEqual({ kind: "ok", value: v4(host, 80), used: 9 });
  });

  it("waits for the hostname's NUL", () => {
    expect(decodeSocks4Request(cat(hex("04 01 00 50 00 00 00 01 00"), latin1("example.com")))).toEqual({ kind: "need-more" });
    expect(decodeSocks4Request(cat(hex("04 01 00 50 00 00 00 01 00"), repeat(0x62, 255)))).toEqual({ kind: "need-more" });
  });

  it("fails with FIELD_TOO_LONG once a hostname passes 255 bytes without NUL", () => {
    expect(errorCode(cat(hex("04 01 00 50 00 00 00 01 00"), repeat(0x62, 256)), decodeSocks4Request)).toBe("FIELD_TOO_LONG");
    expect(errorCode(cat(hex("04 01 00 50 00 00 00 01 00"), repeat(0x62, 2000)), decodeSocks4Request)).toBe("FIELD_TOO_LONG");
  });

  it("keeps a hostname byte for byte (latin1)", () => {
    const r = decodeSocks4Request(hex("04 01 00 50 00 00 00 01 00 e9 20 5b 00"));
    expect(r.kind === "ok" && r.value.destination.host).toBe("\u00e9 [");
  });
});

describe("SOCKS4 reply (VN=0 CD DSTPORT DSTIP, 8 bytes)", () => {
  const encode = (v: { cd: number; port: number; ip: string }) => encodeSocks4Reply(v.cd, v.port, v.ip);
  messageSuite({ name: "00 5a granted", bytes: FIX.socks4Granted, decode: decodeSocks4Reply, encode, value: { cd: 90, port: 0, ip: "0.0.0.0" } });
  messageSuite({ name: "00 5b rejected", bytes: FIX.socks4Rejected, decode: decodeSocks4Reply, encode, value: { cd: 91, port: 0, ip: "0.0.0.0" } });
  messageSuite({
    name: "00 5a with 127.0.0.1:54321",
    bytes: FIX.socks4GrantedBound,
    decode: decodeSocks4Reply,
    encode,
    value: { cd: 90, port: 54321, ip: "127.0.0.1" },
  });

  it("encodes 8 bytes with VN 0 (not 4, clue/reactphp-socks#90) and 0.0.0.0:0 by default", () => {
    for (const cd of [90, 91, 92, 93]) {
      const bytes = encodeSocks4Reply(cd);
      expect(bytes.length).toBe(8);
      expect(bytes[0]).toBe(0);
      expect(bytes[1]).toBe(cd);
      expect(toHex(bytes.subarray(2))).toBe("00 00 00 00 00 00");
    }
  });

  it("rejects a reply with VN 4", () => {
    expect(errorCode(hex("04 5a 00 00 00 00 00 00"), decodeSocks4Reply)).toBe("UNKNOWN_VERSION");
  });
});

describe("properties", () => {
  const heads = [FIX.socks4Connect, FIX.socks4aConnectUser, FIX.socks4Bind, hex("04 01 00 50 00 00 00 01"), FIX.socks4Granted];

  it.each([
    ["decodeSocks4Request", decodeSocks4Request],
    ["decodeSocks4Reply", decodeSocks4Reply],
  ] as const)("%s is total on arbitrary bytes", (_, decode) => {
    fc.assert(
      fc.property(arbitraryInput(heads), (bytes) => expectTotalOutcome<unknown>(decode, bytes)),
      { numRuns: 150 },
    );
  });

  it("is total on long NUL-free runs (the FIELD_TOO_LONG path)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(hex("04 01 00 50 7f 00 00 01"), hex("04 02 00 50 00 00 00 09 00")),
        fc.uint8Array({ minLength: 200, maxLength: 600 }).map((b) => b.map((x) => x | 1)),
        (head, run) => {
          expectTotalOutcome(decodeSocks4Request, cat(head, run));
        },
      ),
      { numRuns: 50 },
    );
  });

  const port = fc.integer({ min: 0, max: 65535 });
  const field = fc.uint8Array({ maxLength: SOCKS4_FIELD_MAX }).map((b) => Buffer.from(b.map((x) => (x === 0 ? 1 : x))));
  // A SOCKS4 DSTIP of 0.0.0.x with x != 0 is 4a by definition, so it is not a valid SOCKS4 value.
  const ipv4 = fc
    .uint8Array({ minLength: 4, maxLength: 4 })
    .filter((b) => !(b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] !== 0))
    .map((b) => Array.from(b).join("."));
  const socks4 = fc.record({
    version: fc.constant(4 as const),
    command: fc.constantFrom("connect" as const, "bind" as const),
    destination: fc.record({ type: fc.constant("ipv4" as const), host: ipv4, port }),
    userid: field,
  });
  const socks4a = fc.record({
    version: fc.constant("4a" as const),
    command: fc.constantFrom("connect" as const, "bind" as const),
    destination: fc.record({ type: fc.constant("domain" as const), host: field.map((b) => b.toString("latin1")), port }),
    userid: field,
  });

  it("request round trip: decode(encode(request)) gives the request and uses every byte", () => {
    fc.assert(
      fc.property(fc.oneof(socks4, socks4a), fc.uint8Array({ maxLength: 16 }), (req: Socks4Request, tail) => {
        const bytes = encodeSocks4Request(req);
        expect(decodeSocks4Request(bytes)).toEqual({ kind: "ok", value: req, used: bytes.length });
        expect(decodeSocks4Request(cat(bytes, tail))).toEqual({ kind: "ok", value: req, used: bytes.length });
        expect(decodeSocks4Request(bytes.subarray(0, bytes.length - 1))).toEqual({ kind: "need-more" });
      }),
      { numRuns: 300 },
    );
  });

  it("reply round trip", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), port, ipv4, (cd, p, ip) => {
        expect(decodeSocks4Reply(encodeSocks4Reply(cd, p, ip))).toEqual({ kind: "ok", value: { cd, port: p, ip }, used: 8 });
      }),
      { numRuns: 100 },
    );
  });
});
