import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  USERPASS_FAILURE,
  USERPASS_SUCCESS,
  USERPASS_VERSION,
  decodeUserPass,
  decodeUserPassStatus,
  encodeUserPass,
  encodeUserPassStatus,
} from "../../../src/engine/codec/userpass.js";
import { FIX, arbitraryInput, cat, expectTotalOutcome, hex, latin1, messageSuite, repeat, toHex, type Decoder } from "./fixtures.js";

function errorCode<T>(bytes: Uint8Array, decode: Decoder<T>): string {
  const r = decode(bytes);
  return r.kind === "error" ? r.error.code : r.kind;
}

const creds = (user: string | Buffer, password: string | Buffer) => ({
  user: typeof user === "string" ? latin1(user) : user,
  password: typeof password === "string" ? latin1(password) : password,
});

describe("constants (RFC 1929)", () => {
  it("has sub-negotiation VER 1 and STATUS 0 for success", () => {
    expect(USERPASS_VERSION).toBe(0x01);
    expect(USERPASS_SUCCESS).toBe(0x00);
    expect(USERPASS_FAILURE).not.toBe(0x00);
  });
});

describe("username/password request (VER ULEN UNAME PLEN PASSWD)", () => {
  messageSuite({ name: "user / pass", bytes: FIX.userPass, decode: decodeUserPass, encode: encodeUserPass, value: creds("user", "pass") });
  messageSuite({
    name: "empty password (scenario 12)",
    bytes: FIX.userPassEmptyPassword,
    decode: decodeUserPass,
    encode: encodeUserPass,
    value: creds("user", ""),
  });
  messageSuite({ name: "empty user and password", bytes: hex("01 00 00"), decode: decodeUserPass, encode: encodeUserPass, value: creds("", "") });
  messageSuite({
    name: "non-UTF-8 octets, kept exactly (scenario 14)",
    bytes: FIX.userPassBinary,
    decode: decodeUserPass,
    encode: encodeUserPass,
    value: creds(hex("ff fe"), hex("80 81")),
  });
  messageSuite({
    name: "255-byte user and password",
    bytes: cat(hex("01 ff"), repeat(0x75, 255), hex("ff"), repeat(0x70, 255)),
    decode: decodeUserPass,
    encode: encodeUserPass,
    value: creds("u".repeat(255), "p".repeat(255)),
  });

  it("uses 513 bytes for 255-byte fields", () => {
    const r = decodeUserPass(cat(hex("01 ff"), repeat(0x75, 255), hex("ff"), repeat(0x70, 255), FIX.connectIPv4));
    expect(r.kind === "ok" && r.used).toBe(513);
  });

  it.each(["05 (scenario 11)", "00", "02", "ff"])("rejects VER %s with BAD_AUTH_VERSION from the first byte", (v) => {
    const bytes = cat(hex(v.slice(0, 2)), FIX.userPass.subarray(1));
    expect(errorCode(bytes, decodeUserPass)).toBe("BAD_AUTH_VERSION");
    expect(errorCode(bytes.subarray(0, 1), decodeUserPass)).toBe("BAD_AUTH_VERSION");
  });

  it("decodes the credentials out of credentials + request + early data in one read (scenario 3)", () => {
    const r = decodeUserPass(cat(FIX.userPass, FIX.connectIPv4, FIX.early));
    expect(r).toEqual({ kind: "ok", value: creds("user", "pass"), used: 11 });
  });

  it("copies the fields out of the input buffer", () => {
    const input = Buffer.from(FIX.userPass);
    const r = decodeUserPass(input);
    input.fill(0);
    expect(r).toEqual({ kind: "ok", value: creds("user", "pass"), used: 11 });
  });
});

describe("status (VER STATUS)", () => {
  messageSuite({ name: "01 00 success", bytes: FIX.statusSuccess, decode: decodeUserPassStatus, encode: encodeUserPassStatus, value: 0x00 });
  messageSuite({ name: "01 01 failure", bytes: FIX.statusFailure, decode: decodeUserPassStatus, encode: encodeUserPassStatus, value: 0x01 });

  it("encodes success as 01 00 and failure as 01 01", () => {
    expect(toHex(encodeUserPassStatus(USERPASS_SUCCESS))).toBe("01 00");
    expect(toHex(encodeUserPassStatus(USERPASS_FAILURE))).toBe("01 01");
  });

  it("rejects a status with VER 5", () => {
    expect(errorCode(hex("05 00"), decodeUserPassStatus)).toBe("BAD_AUTH_VERSION");
  });
});

describe("properties", () => {
  const heads = [FIX.userPass, hex("01 ff"), hex("01 00 ff"), FIX.statusSuccess];

  it.each([
    ["decodeUserPass", decodeUserPass],
    ["decodeUserPassStatus", decodeUserPassStatus],
  ] as const)("%s is total on arbitrary bytes", (_, decode) => {
    fc.assert(
      fc.property(arbitraryInput(heads), (bytes) => expectTotalOutcome<unknown>(decode, bytes)),
      { numRuns: 150 },
    );
  });

  it("round trip for any octets of 0 to 255 bytes", () => {
    const field = fc.uint8Array({ maxLength: 255 }).map((b) => Buffer.from(b));
    fc.assert(
      fc.property(field, field, fc.uint8Array({ maxLength: 16 }), (user, password, tail) => {
        const bytes = encodeUserPass({ user, password });
        expect(bytes.length).toBe(3 + user.length + password.length);
        expect(decodeUserPass(cat(bytes, tail))).toEqual({ kind: "ok", value: { user, password }, used: bytes.length });
      }),
      { numRuns: 150 },
    );
  });
});
