/**
 * Wire fixtures shared by the codec and session tests, written as hex the way the RFCs print
 * them, plus helpers that feed bytes the way networks do: whole, split at every offset, one byte
 * at a time, and pipelined.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Decoded } from "../../../src/engine/codec/result.js";

/** Bytes from spaced or unspaced hex ("05 01 00"). */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, "");
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex fixture: ${text}`);
  return Buffer.from(clean, "hex");
}

/** Spaced lowercase hex of some bytes, for readable failure messages. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");
}

/** `count` copies of one byte. */
export function repeat(byte: number, count: number): Buffer {
  return Buffer.alloc(count, byte);
}

/** A latin1 string as bytes (what the codecs use for names). */
export function latin1(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

export const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);

// ---------------------------------------------------------------------------------------------
// Fixtures (127.0.0.1:8080 = 7f 00 00 01 1f 90, as in research §7)
// ---------------------------------------------------------------------------------------------

/** 255 bytes of "a" (0x61): the longest domain ATYP 3 can carry (scenario 20). */
export const NAME_255 = "a".repeat(255);

export const FIX = {
  // SOCKS5 greeting (RFC 1928 §3)
  greetingNoAuth: hex("05 01 00"),
  greetingNoAuthAndUserPass: hex("05 02 00 02"),
  greetingUserPass: hex("05 01 02"),
  greetingGssapi: hex("05 01 01"),
  /** NMETHODS = 255, methods 00 01 … fe (scenario 6). */
  greeting255: cat(hex("05 ff"), Buffer.from(Array.from({ length: 255 }, (_, i) => i))),
  greetingNoMethods: hex("05 00"),

  // Method selection
  selectNoAuth: hex("05 00"),
  selectUserPass: hex("05 02"),
  selectNone: hex("05 ff"),

  // SOCKS5 requests (RFC 1928 §4)
  connectIPv4: hex("05 01 00 01 7f 00 00 01 1f 90"),
  /** example.com:80 */
  connectDomain: hex("05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"),
  /** [2001:db8::1]:443 */
  connectIPv6: hex("05 01 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb"),
  /** ::ffff:127.0.0.1 port 8080 in ATYP 4 (scenario 25). */
  connectMapped: hex("05 01 00 04 00 00 00 00 00 00 00 00 00 00 ff ff 7f 00 00 01 1f 90"),
  /** Zero-length domain (scenario 19). */
  connectEmptyDomain: hex("05 01 00 03 00 1f 90"),
  /** 255-byte domain (scenario 20). */
  connectDomain255: cat(hex("05 01 00 03 ff"), repeat(0x61, 255), hex("1f 90")),
  /** "127.0.0.1" sent as a name (scenario 21, curl/curl#8216). */
  connectIPLiteralDomain: hex("05 01 00 03 09 31 32 37 2e 30 2e 30 2e 31 1f 90"),
  /** RSV = 01 (scenario 16). */
  connectRsv1: hex("05 01 01 01 7f 00 00 01 1f 90"),
  /** CMD 09 (scenario 17). */
  unknownCommand: hex("05 09 00 01 7f 00 00 01 1f 90"),
  /** ATYP 02 (scenario 18). */
  unknownAtyp: hex("05 01 00 02 7f 00 00 01 1f 90"),
  /** Port 0 (scenario 23). */
  connectPort0: hex("05 01 00 01 7f 00 00 01 00 00"),
  bindIPv4: hex("05 02 00 01 7f 00 00 01 00 00"),
  udpZero: hex("05 03 00 01 00 00 00 00 00 00"),

  // SOCKS5 replies (RFC 1928 §6): always the full form
  /** Succeeded, bound 127.0.0.1:54321 (10 bytes). */
  reply10: hex("05 00 00 01 7f 00 00 01 d4 31"),
  /** Succeeded, bound [2001:db8::1]:443 (22 bytes). */
  reply22: hex("05 00 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb"),
  /** General failure with 0.0.0.0:0. */
  replyFailure: hex("05 01 00 01 00 00 00 00 00 00"),

  // RFC 1929
  /** user "user", password "pass" */
  userPass: hex("01 04 75 73 65 72 04 70 61 73 73"),
  /** Empty password (scenario 12). */
  userPassEmptyPassword: hex("01 04 75 73 65 72 00"),
  /** Non-UTF-8 octets (scenario 14). */
  userPassBinary: hex("01 02 ff fe 02 80 81"),
  /** Wrong sub-negotiation version 05 (scenario 11). */
  userPassVersion5: hex("05 04 75 73 65 72 04 70 61 73 73"),
  /** Bad credentials user/"bad" (scenario 13). */
  userPassBad: hex("01 04 75 73 65 72 03 62 61 64"),
  statusSuccess: hex("01 00"),
  statusFailure: hex("01 01"),

  // SOCKS4 / 4a
  /** CONNECT 127.0.0.1:8080, empty USERID (scenario 9). */
  socks4Connect: hex("04 01 1f 90 7f 00 00 01 00"),
  /** CONNECT 93.184.216.34:80, USERID "bob". */
  socks4ConnectUser: hex("04 01 00 50 5d b8 d8 22 62 6f 62 00"),
  /** BIND 127.0.0.1:8080, USERID "bob". */
  socks4Bind: hex("04 02 1f 90 7f 00 00 01 62 6f 62 00"),
  /** 4a CONNECT example.com:80, empty USERID (scenario 54). */
  socks4aConnect: hex("04 01 00 50 00 00 00 01 00 65 78 61 6d 70 6c 65 2e 63 6f 6d 00"),
  /** 4a CONNECT example.com:80, USERID "bob". */
  socks4aConnectUser: hex("04 01 00 50 00 00 00 01 62 6f 62 00 65 78 61 6d 70 6c 65 2e 63 6f 6d 00"),
  /** DSTIP 0.0.0.0 is not 4a (scenario 55). */
  socks4ZeroIp: hex("04 01 00 50 00 00 00 00 00"),
  /** Double NUL after USERID: empty 4a hostname, then "example\0" (scenario 56). */
  socks4aDoubleNul: hex("04 01 00 50 00 00 00 01 00 00 65 78 61 6d 70 6c 65 00"),
  /** 8-byte replies, VN 0. */
  socks4Granted: hex("00 5a 00 00 00 00 00 00"),
  socks4Rejected: hex("00 5b 00 00 00 00 00 00"),
  socks4GrantedBound: hex("00 5a d4 31 7f 00 00 01"),

  /** Application data a client pipelines behind its request (scenario 3). */
  early: hex("47 45 54 0d 0a"),
} as const;

// ---------------------------------------------------------------------------------------------
// Feeding bytes the way networks do
// ---------------------------------------------------------------------------------------------

export type Decoder<T> = (bytes: Uint8Array) => Decoded<T>;

/** One way of cutting a byte string into the reads a socket might deliver. */
export interface Chunking {
  readonly label: string;
  readonly chunks: readonly Buffer[];
}

/** The whole string, every two-piece split, and one byte per read. */
export function chunkings(bytes: Uint8Array): Chunking[] {
  const b = Buffer.from(bytes);
  const out: Chunking[] = [{ label: "whole", chunks: [b] }];
  for (let i = 1; i < b.length; i++) out.push({ label: `split at ${i}`, chunks: [b.subarray(0, i), b.subarray(i)] });
  out.push({ label: "one byte at a time", chunks: Array.from(b, (x) => Buffer.of(x)) });
  return out;
}

/** What a stream decoder saw: each message decoded, the error that stopped it, the bytes left. */
export interface StreamResult<T> {
  readonly values: T[];
  readonly used: number[];
  readonly error: string | undefined;
  readonly rest: Buffer;
}

/**
 * Plays a driver's read loop over `chunks`: append each read to a buffer, then decode messages
 * out of it (consuming `used` bytes each) until the decoder needs more or fails.
 */
export function decodeStream<T>(decode: Decoder<T>, chunks: readonly Uint8Array[]): StreamResult<T> {
  let buffer = Buffer.alloc(0);
  const values: T[] = [];
  const used: number[] = [];
  for (const chunk of chunks) {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const result = decode(buffer);
      if (result.kind === "need-more") break;
      if (result.kind === "error") return { values, used, error: result.error.code, rest: buffer };
      values.push(result.value);
      used.push(result.used);
      buffer = buffer.subarray(result.used);
    }
  }
  return { values, used, error: undefined, rest: buffer };
}

/** A stable text form of any decode output (Buffers as hex), for cheap comparisons in loops. */
export function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return `<${toHex(v)}>`;
    // Buffer.prototype.toJSON runs before the replacer sees the value.
    if (typeof v === "object" && v !== null && (v as { type?: unknown }).type === "Buffer" && Array.isArray((v as { data?: unknown }).data)) {
      return `<${toHex(Uint8Array.from((v as { data: number[] }).data))}>`;
    }
    return v;
  });
}

/**
 * Asserts that a stream decoder gives `expected` for the whole input, and exactly the same for
 * every two-piece split and for one byte per read.
 */
export function expectSameUnderEveryChunking<T>(decode: Decoder<T>, bytes: Uint8Array, expected: StreamResult<T>): void {
  const reference = decodeStream(decode, [bytes]);
  expect(reference).toEqual(expected);
  const want = fingerprint(reference);
  for (const { label, chunks } of chunkings(bytes)) {
    expect(fingerprint(decodeStream(decode, chunks)), label).toBe(want);
  }
}

/** The strict prefixes of a byte string, shortest first (including the empty one). */
export function strictPrefixes(bytes: Uint8Array): Uint8Array[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(0, i));
}

/** A copy of `bytes` placed at an odd offset inside a larger ArrayBuffer, so byteOffset != 0. */
export function atOffset(bytes: Uint8Array, offset = 7): Uint8Array {
  const backing = new Uint8Array(offset + bytes.length + 5).fill(0xee);
  backing.set(bytes, offset);
  return backing.subarray(offset, offset + bytes.length);
}

// ---------------------------------------------------------------------------------------------
// The standard battery for one valid wire message
// ---------------------------------------------------------------------------------------------

export interface MessageSpec<T> {
  /** Shown as the describe block's name. */
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly decode: Decoder<T>;
  /** The value `decode` must produce. */
  readonly value: T;
  /** When given, `encode(value)` must give back exactly `bytes`. */
  readonly encode?: (value: T) => Uint8Array;
}

/**
 * Registers the tests every fixture gets: decode (also from a buffer with a byteOffset), round
 * trip, need-more on every strict prefix, the same result under every chunking, two pipelined
 * copies, and arbitrary trailing data.
 */
export function messageSuite<T>(spec: MessageSpec<T>): void {
  const { bytes, decode, value, encode } = spec;
  const whole = { kind: "ok", value, used: bytes.length };
  describe(spec.name, () => {
    it("decodes to the expected value and uses every byte", () => {
      expect(decode(bytes)).toEqual(whole);
      expect(decode(atOffset(bytes))).toEqual(whole);
    });

    if (encode !== undefined) {
      it("encodes back to the same bytes", () => {
        expect(toHex(encode(value))).toBe(toHex(bytes));
      });
    }

    it("returns need-more for every strict prefix", () => {
      for (const prefix of strictPrefixes(bytes)) {
        expect(decode(prefix), `prefix of ${prefix.length} bytes`).toEqual({ kind: "need-more" });
      }
    });

    it("gives one message whole, split at every offset and one byte at a time", () => {
      expectSameUnderEveryChunking(decode, bytes, { values: [value], used: [bytes.length], error: undefined, rest: Buffer.alloc(0) });
    });

    it("decodes two pipelined copies, however they are split", () => {
      const two = cat(bytes, bytes);
      expect(decode(two)).toEqual(whole);
      expectSameUnderEveryChunking(decode, two, { values: [value, value], used: [bytes.length, bytes.length], error: undefined, rest: Buffer.alloc(0) });
    });

    it("stops at the end of the message when arbitrary data follows", () => {
      for (const tail of [FIX.early, hex("00"), repeat(0xff, 300), repeat(0x00, 40)]) {
        expect(decode(cat(bytes, tail))).toEqual(whole);
      }
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (tail) => {
          expect(decode(cat(bytes, tail))).toEqual(whole);
        }),
        { numRuns: 50 },
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Totality properties
// ---------------------------------------------------------------------------------------------

/**
 * Arbitrary bytes, biased so that a good share starts like a real message: pure noise, and
 * noise behind one of `heads` (so decoders get past their first checks).
 */
export function arbitraryInput(heads: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const noise = fc.uint8Array({ maxLength: 600 });
  if (heads.length === 0) return noise;
  const headed = fc
    .tuple(fc.constantFrom(...heads), fc.integer({ min: 0, max: 24 }), fc.uint8Array({ maxLength: 300 }))
    .map(([head, keep, tail]) => new Uint8Array(cat(head.subarray(0, keep), tail)));
  return fc.oneof(noise, headed);
}

/**
 * Checks one outcome of a decoder on arbitrary input: exactly one of the three kinds, with a
 * sane `used` for "ok" and a coded error for "error"; and an "ok" must depend only on the bytes
 * it used (every shorter prefix is need-more, the used prefix alone gives the same value).
 */
export function expectTotalOutcome<T>(decode: Decoder<T>, bytes: Uint8Array): void {
  let result: Decoded<T>;
  try {
    result = decode(bytes);
  } catch (err) {
    throw new Error(`decoder threw on ${toHex(bytes)}: ${String(err)}`);
  }
  const kinds = ["need-more", "ok", "error"];
  expect(kinds).toContain(result.kind);
  switch (result.kind) {
    case "need-more":
      expect(Object.keys(result)).toEqual(["kind"]);
      break;
    case "error":
      expect(typeof result.error.code).toBe("string");
      expect(typeof result.error.message).toBe("string");
      expect(result).not.toHaveProperty("used");
      break;
    case "ok": {
      expect(Number.isInteger(result.used)).toBe(true);
      expect(result.used).toBeGreaterThan(0);
      expect(result.used).toBeLessThanOrEqual(bytes.length);
      expect(decode(bytes.subarray(0, result.used))).toEqual(result);
      for (let n = 0; n < result.used; n++) expect(decode(bytes.subarray(0, n)).kind).toBe("need-more");
      break;
    }
  }
}
