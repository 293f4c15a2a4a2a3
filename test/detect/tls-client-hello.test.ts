/**
 * The ClientHello detector on a real hex fixture and on built hellos: several records, GREASE,
 * missing and malformed extensions, length fields one off, the size cap.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { detectProtocol, DETECT_LIMIT, tlsVersionName, type Detection } from "../../src/detect/index.js";
import { detectTls, isGrease } from "../../src/detect/tls-client-hello.js";
import { CURL_CLIENT_HELLO } from "./hello-fixture.js";
import {
  alpnExtension,
  clientHello,
  expectPrefixes,
  expectSniffed,
  extension,
  handshake,
  helloBody,
  records,
  sniExtension,
  u16,
  u8,
  vec16,
  vec8,
  versionsExtension,
} from "./fixtures.js";

const UNKNOWN: Detection = { kind: "unknown" };
const NEED_MORE: Detection = { kind: "need-more" };

/** A typical TLS 1.3 hello: GREASE first, as Chrome sends it. */
const typical = () => [
  extension(0x0a0a, new Uint8Array(0)),
  sniExtension("example.test"),
  alpnExtension("h2", "http/1.1"),
  versionsExtension(0x3a3a, 0x0304, 0x0303),
];

describe("a real ClientHello (curl, hex fixture)", () => {
  const answer: Detection = { kind: "tls", sni: "example.test", alpn: ["h2", "http/1.1"], version: "TLS 1.3" };

  it("detects SNI, ALPN and the highest offered version", () => {
    expect(detectProtocol(CURL_CLIENT_HELLO)).toEqual(answer);
  });

  it("is need-more at every shorter prefix and decided by its last byte", () => {
    expectPrefixes(CURL_CLIENT_HELLO, answer, CURL_CLIENT_HELLO.length);
  });

  it("through the sniffer: every two-chunk split, one byte at a time", () => {
    expectSniffed(CURL_CLIENT_HELLO, answer);
  });

  it("ignores what follows the hello (a ChangeCipherSpec, early data)", () => {
    const after = Buffer.concat([CURL_CLIENT_HELLO, Buffer.from("140303000101170303000501020304ff", "hex")]);
    expect(detectProtocol(after)).toEqual(answer);
  });

  it("a length field one up or one down never yields a wrong answer", () => {
    // Record and handshake lengths, session id, cipher_suites, compression, extensions, and the
    // server_name extension's own three lengths (offsets in the fixture).
    for (const at of [3, 4, 6, 7, 8, 43, 76, 77, 140, 142, 143, 146, 147, 148, 149, 151, 152]) {
      for (const delta of [1, -1]) {
        const bytes = Buffer.from(CURL_CLIENT_HELLO);
        bytes[at] = (bytes[at]! + delta) & 0xff;
        const r = detectProtocol(bytes);
        // The record length may grow: the hello inside is whole and unchanged either way.
        if (r.kind === "tls") expect(r, `byte ${at} ${delta > 0 ? "+" : "-"}1`).toEqual(answer);
        else expect(["need-more", "unknown"], `byte ${at} ${delta > 0 ? "+" : "-"}1`).toContain(r.kind);
        const recordGrew = (at === 3 || at === 4) && bytes.readUInt16BE(3) > CURL_CLIENT_HELLO.readUInt16BE(3);
        expect(r.kind === "tls", `byte ${at} ${delta > 0 ? "+" : "-"}1`).toBe(recordGrew);
      }
    }
  });
});

describe("built ClientHellos", () => {
  it("a typical TLS 1.3 hello with GREASE", () => {
    expect(detectProtocol(clientHello({ extensions: typical() }))).toEqual({ kind: "tls", sni: "example.test", alpn: ["h2", "http/1.1"], version: "TLS 1.3" });
  });

  it("no extensions block at all (SSL 3.0 / TLS 1.0 style): the legacy version", () => {
    expect(detectProtocol(clientHello({ legacyVersion: 0x0301 }))).toEqual({ kind: "tls", alpn: [], version: "TLS 1.0" });
    expect(detectProtocol(records(handshake(helloBody({ legacyVersion: 0x0300, sessionId: new Uint8Array(0) })), 16384, 0x0300))).toEqual({
      kind: "tls",
      alpn: [],
      version: "SSL 3.0",
    });
  });

  it("an empty extensions block", () => {
    expect(detectProtocol(clientHello({ extensions: [] }))).toEqual({ kind: "tls", alpn: [], version: "TLS 1.2" });
  });

  it("SNI: the first host_name, skipping other name types", () => {
    const hello = clientHello({ extensions: [sniExtension({ type: 7, name: "other" }, "first.test", "second.test")] });
    expect(detectProtocol(hello)).toMatchObject({ sni: "first.test" });
  });

  it("SNI and ALPN bytes come back as latin1, whatever they hold", () => {
    const hello = clientHello({ extensions: [sniExtension("\x1b[2Jx\xff"), alpnExtension("\x0a\x0a", "h2")] });
    expect(detectProtocol(hello)).toEqual({ kind: "tls", sni: "\x1b[2Jx\xff", alpn: ["\x0a\x0a", "h2"], version: "TLS 1.2" });
  });

  it("supported_versions: GREASE skipped, the highest 3.x wins, a draft alone is shown in hex", () => {
    const v = (...versions: number[]) => detectProtocol(clientHello({ extensions: [versionsExtension(...versions)] }));
    expect(v(0x0303, 0x0304)).toMatchObject({ version: "TLS 1.3" });
    expect(v(0xfafa, 0x0302)).toMatchObject({ version: "TLS 1.1" });
    expect(v(0x7f1c)).toMatchObject({ version: "0x7f1c" });
    expect(v(0x1a1a)).toMatchObject({ version: "TLS 1.2" }); // only GREASE: the legacy version
  });

  it("handshake split over many records, header included", () => {
    const stream = handshake(helloBody({ extensions: typical() }));
    for (const size of [1, 2, 3, 5, 50]) {
      const bytes = records(stream, size);
      const answer: Detection = { kind: "tls", sni: "example.test", alpn: ["h2", "http/1.1"], version: "TLS 1.3" };
      expect(detectProtocol(bytes), `records of ${size}`).toEqual(answer);
      if (size >= 3) expectPrefixes(bytes, answer, bytes.length);
    }
  });

  it("the hello can end inside a record: the rest of that record is not awaited", () => {
    const stream = Buffer.concat([handshake(helloBody({ extensions: typical() })), Buffer.from("0b000000", "hex")]);
    const bytes = records(stream);
    const helloEnd = bytes.length - 4;
    expectPrefixes(bytes, detectProtocol(bytes), helloEnd);
  });

  it("a hello just under the cap is detected; one that cannot fit is unknown at its header", () => {
    const pad = (n: number) => extension(21, new Uint8Array(n));
    const base = helloBody({ extensions: [sniExtension("a.test")] }).length;
    // 4 (handshake header) + body + 5 (one record header) must be ≤ 16384.
    const fits = helloBody({ extensions: [sniExtension("a.test"), pad(DETECT_LIMIT - 5 - 4 - base - 4)] });
    expect(4 + fits.length + 5).toBe(DETECT_LIMIT);
    expect(detectProtocol(records(handshake(fits)))).toMatchObject({ kind: "tls", sni: "a.test" });
    const tooBig = helloBody({ extensions: [sniExtension("a.test"), pad(DETECT_LIMIT - 5 - 4 - base - 3)] });
    const bytes = records(handshake(tooBig));
    expect(detectProtocol(bytes.subarray(0, 9))).toEqual(UNKNOWN);
    expect(detectTls(bytes.subarray(0, 9), DETECT_LIMIT * 2)).toEqual(NEED_MORE);
  });
});

describe("not a ClientHello: unknown as early as the bytes allow", () => {
  const body = helloBody({ extensions: typical() });
  const good = clientHello({ extensions: typical() });
  const replace = (bytes: Uint8Array, at: number, ...values: number[]) => {
    const copy = Buffer.from(bytes);
    copy.set(values, at);
    return copy;
  };

  it.each([
    ["record type 23", 0, [23], 1],
    ["record major 2", 1, [2], 2],
    ["record minor 5", 2, [5], 3],
    ["record length 0", 3, [0, 0], 5],
    ["record length 2^14 + 1", 3, [0x40, 0x01], 5],
    ["handshake type 2 (server_hello)", 5, [2], 6],
    ["legacy_version 2.0", 9, [2], 11],
    ["session id of 33 bytes", 43, [33], 44],
  ])("%s", (_name, at, values, decidedAt) => {
    const bytes = replace(good, at, ...values);
    expect(detectProtocol(bytes.subarray(0, decidedAt - 1))).toEqual(NEED_MORE);
    expect(detectProtocol(bytes.subarray(0, decidedAt))).toEqual(UNKNOWN);
    expect(detectProtocol(bytes)).toEqual(UNKNOWN);
  });

  it("a record of another type before the hello is whole", () => {
    const first = records(handshake(body).subarray(0, 40));
    expect(detectProtocol(Buffer.concat([first, Buffer.from("15030300020228", "hex")]))).toEqual(UNKNOWN);
  });

  it("no cipher suites, or no compression methods", () => {
    expect(detectProtocol(clientHello({ suites: [], extensions: typical() }))).toEqual(UNKNOWN);
    expect(detectProtocol(clientHello({ compression: [], extensions: typical() }))).toEqual(UNKNOWN);
  });

  it("cipher_suites with an odd length", () => {
    const b = Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(new Uint8Array(0)), vec16(Buffer.from([0x13, 0x01, 0x13])), vec8(Buffer.from([0]))]);
    expect(detectProtocol(records(handshake(b)))).toEqual(UNKNOWN);
  });

  it("extensions length that does not match the rest of the body", () => {
    const b = helloBody({ extensions: typical() });
    const at = b.length - Buffer.concat(typical()).length - 2;
    for (const delta of [1, -1]) {
      const copy = Buffer.from(b);
      copy.writeUInt16BE(copy.readUInt16BE(at) + delta, at);
      expect(detectProtocol(records(handshake(copy)))).toEqual(UNKNOWN);
    }
  });

  it("an extension running past the end, or a duplicate one", () => {
    const over = Buffer.concat([u16(0), u16(100), Buffer.alloc(4)]);
    expect(detectProtocol(clientHello({ extensions: [over] }))).toEqual(UNKNOWN);
    expect(detectProtocol(clientHello({ extensions: [alpnExtension("h2"), alpnExtension("h2")] }))).toEqual(UNKNOWN);
  });

  it.each([
    ["empty server_name data", extension(0, new Uint8Array(0))],
    ["server_name list length off by one", extension(0, Buffer.concat([u16(10), u8(0), vec16(Buffer.from("a.test"))]))],
    ["empty host_name", extension(0, vec16(Buffer.concat([u8(0), u16(0)])))],
    ["host_name longer than the list", extension(0, vec16(Buffer.concat([u8(0), u16(50), Buffer.from("a.test")])))],
    ["empty ALPN list", extension(16, vec16(new Uint8Array(0)))],
    ["empty ALPN id", extension(16, vec16(Buffer.from([0, 2, 0x68, 0x32])))],
    ["ALPN id past its list", extension(16, vec16(Buffer.from([5, 0x68, 0x32])))],
    ["odd supported_versions", extension(43, vec8(Buffer.from([3, 4, 3])))],
    ["empty supported_versions", extension(43, vec8(new Uint8Array(0)))],
    ["supported_versions with trailing bytes", extension(43, Buffer.concat([vec8(Buffer.from([3, 4])), u8(0)]))],
  ])("%s", (_name, ext) => {
    const bytes = clientHello({ extensions: [ext] });
    expect(detectProtocol(bytes)).toEqual(UNKNOWN);
    for (let k = 0; k < bytes.length; k++) expect(["need-more", "unknown"]).toContain(detectProtocol(bytes.subarray(0, k)).kind);
  });

  it("a handshake body longer than its declared length is fine (the rest is ignored), shorter is not", () => {
    const b = helloBody({ extensions: typical() });
    // Declared one short: the extensions no longer fit.
    const short = Buffer.concat([u8(1), Buffer.from([0, (b.length - 1) >> 8, (b.length - 1) & 0xff]), b]);
    expect(detectProtocol(records(short))).toEqual(UNKNOWN);
  });
});

describe("helpers", () => {
  it("names versions", () => {
    expect([0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x7f17].map(tlsVersionName)).toEqual([
      "SSL 3.0",
      "TLS 1.0",
      "TLS 1.1",
      "TLS 1.2",
      "TLS 1.3",
      "0x0305",
      "0x7f17",
    ]);
  });

  it("knows the 16 GREASE values (RFC 8701)", () => {
    const grease = Array.from({ length: 0x10000 }, (_, v) => v).filter(isGrease);
    expect(grease).toEqual(Array.from({ length: 16 }, (_, i) => (i << 12) | 0x0a00 | (i << 4) | 0x0a));
  });
});

describe("detectTls with a small limit", () => {
  it("is total even when given more bytes than its limit", () => {
    expect(detectTls(CURL_CLIENT_HELLO, 100)).toEqual({ kind: "unknown" });
    // A record payload bigger than the limit arrives before the handshake length says it cannot fit.
    expect(detectTls(Buffer.from("16030100 0a 01000010 000000000000".replace(/ /g, ""), "hex"), 4)).toEqual({ kind: "unknown" });
    expect(detectTls(CURL_CLIENT_HELLO.subarray(0, 8), 100)).toEqual({ kind: "need-more" });
    expect(detectTls(CURL_CLIENT_HELLO.subarray(0, 9), 100)).toEqual({ kind: "unknown" });
  });

  it("never throws for any bytes and any limit", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: -1, max: 20_000 }), (tail, limit) => {
        const bytes = Buffer.concat([Buffer.from([22, 3, 1]), tail]);
        expect(["need-more", "unknown", "tls"]).toContain(detectTls(bytes, limit).kind);
      }),
      { numRuns: 1000 },
    );
  });
});
