import { describe, expect, it } from "vitest";
import { inCidr, matchGlob, matchPayload, matchTag, normalizeCidr } from "../../src/filter/match.js";

describe("matchGlob", () => {
  it.each([
    ["*.example.com", "API.Example.COM", true],
    ["*.example.com", "example.com", false],
    ["example.com", "example.com.", false],
    ["EXAMPLE.com", "example.COM", true],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["?", "ab", false],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "aXXbYY", false],
    ["*", "", true],
    ["", "", true],
    ["", "a", false],
    ["**a**", "xa", true],
    ["*a", "a\nba", true],
    ["[a]", "[a]", true],
    ["a.c", "abc", false],
    ["443", 443, true],
  ] as const)("%j matches %j: %s", (pattern, value, expected) => {
    expect(matchGlob(pattern, value)).toBe(expected);
  });

  it("never matches null or bytes", () => {
    expect(matchGlob("*", null)).toBe(false);
    expect(matchGlob("*", Buffer.from("a"))).toBe(false);
  });

  it("takes linear-ish time on patterns that backtrack", () => {
    const started = performance.now();
    expect(matchGlob("*a*a*a*a*a*a*b", "a".repeat(20_000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe("normalizeCidr", () => {
  it.each([
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["10.1.2.3/8", "10.1.2.3/8"],
    ["10.0.0.1", "10.0.0.1/32"],
    ["::1", "::1/128"],
    ["2001:DB8:0:0::/32", "2001:db8::/32"],
    ["::ffff:10.0.0.1", "10.0.0.1/32"],
    ["::ffff:0:0/96", "0.0.0.0/0"],
    ["::ffff:0:0/80", "::ffff:0:0/80"],
    ["10.0.0.0/008", "10.0.0.0/8"],
    ["example.com", undefined],
    ["10.0.0.*", undefined],
    ["10", undefined],
    ["010.0.0.1", undefined],
    ["10.0.0.0/33", { error: "'33' is not a prefix length for IPv4 (0-32)" }],
    ["::/129", { error: "'129' is not a prefix length for IPv6 (0-128)" }],
    ["10.0.0.0/", { error: "'' is not a prefix length for IPv4 (0-32)" }],
  ] as const)("%j → %j", (text, expected) => {
    expect(normalizeCidr(text)).toEqual(expected);
  });
});

describe("inCidr", () => {
  it.each([
    ["10.0.0.0/8", "10.1.2.3", true],
    ["10.0.0.0/8", "11.0.0.1", false],
    ["10.0.0.0/8", "example.com", false],
    ["10.0.0.0/8", "::ffff:10.0.0.5", true],
    ["10.0.0.7/32", "::ffff:10.0.0.7", true],
    ["::/0", "10.0.0.1", false],
    ["::/0", "::1", true],
    ["0.0.0.0/0", "::1", false],
    ["2001:db8::/32", "2001:DB8::5", true],
    ["fe80::/10", "fe80::1%eth0", true],
    ["::1/128", "0:0:0:0:0:0:0:1", true],
    ["10.0.0.0/8", "010.0.0.1", false],
    ["10.0.0.0/8", "", false],
  ] as const)("%j holds %j: %s", (cidr, host, expected) => {
    expect(inCidr(cidr, host)).toBe(expected);
  });

  it("never matches null or a number", () => {
    expect(inCidr("0.0.0.0/0", null)).toBe(false);
    expect(inCidr("0.0.0.0/0", 167772161)).toBe(false);
  });
});

describe("matchTag", () => {
  it.each([
    ['{"env":"prod"}', "env", null, true],
    ['{"env":"prod"}', "ENV", "PROD*", true],
    ['{"env":"prod"}', "env", "dev", false],
    ['{"env":"prod"}', "envx", null, false],
    ['{"env":"prod","team":"red"}', "*", "red", true],
    ['{"env":""}', "env", "", true],
    ["{}", "*", null, false],
    ['["x"]', "0", null, false],
    ['"text"', "*", null, false],
    ["not json", "*", null, false],
    ['{"n":5}', "n", "5", true],
    ['{"n":null}', "n", "null", true],
    ['{"n":{"a":1}}', "n", '{"a":1}', true],
  ] as const)("%s has %j = %j: %s", (tags, key, value, expected) => {
    expect(matchTag(tags, key, value)).toBe(expected);
  });

  it("finds no tags in null", () => {
    expect(matchTag(null, "*", null)).toBe(false);
  });
});

describe("matchPayload", () => {
  it("reads bytes as latin1, one character per byte", () => {
    expect(matchPayload("^\\x00\\xff$", "", Uint8Array.of(0x00, 0xff))).toBe(true);
    expect(matchPayload("é", "", Uint8Array.of(0xe9))).toBe(true);
    expect(matchPayload("^.$", "", Uint8Array.of(0xc3, 0xa9))).toBe(false);
  });

  it("reads a view of a larger buffer without its neighbours", () => {
    const whole = Buffer.from("xxGETxx", "latin1");
    expect(matchPayload("^GET$", "", whole.subarray(2, 5))).toBe(true);
  });

  it("applies the flags", () => {
    expect(matchPayload("user-agent", "", Buffer.from("User-Agent: x"))).toBe(false);
    expect(matchPayload("user-agent", "i", Buffer.from("User-Agent: x"))).toBe(true);
    expect(matchPayload("a.b", "s", Buffer.from("a\nb"))).toBe(true);
  });

  it("matches text as it is, and never null", () => {
    expect(matchPayload("é", "", "é")).toBe(true);
    expect(matchPayload("", "", null)).toBe(false);
  });
});
