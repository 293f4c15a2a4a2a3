/** formatReply and the re-exported formatEndpoint. */
import { describe, expect, it } from "vitest";
import { formatEndpoint, formatReply } from "../../src/format/index.js";
import { REP } from "../../src/engine/errors.js";

describe("formatReply", () => {
  it.each([
    [REP.SUCCEEDED, "5", "00 ok"],
    [REP.GENERAL_FAILURE, "5", "01 failure"],
    [REP.NOT_ALLOWED, "5", "02 not allowed"],
    [REP.CONNECTION_REFUSED, "5", "05 refused"],
    [REP.ADDRESS_TYPE_NOT_SUPPORTED, "5", "08 atyp unsupported"],
    [0x09, "5", "09 ?"],
    [0xff, "5", "ff ?"],
    [REP.CONNECTION_REFUSED, null, "05 refused"],
    [REP.SUCCEEDED, "4", "90 ok"],
    [REP.CONNECTION_REFUSED, "4", "91 refused"],
    [REP.NOT_ALLOWED, "4a", "91 not allowed"],
    [null, "5", "-"],
    [null, null, "-"],
  ] as const)("%s, SOCKS %s → %s", (rep, version, text) => {
    expect(formatReply(rep, version)).toBe(text);
  });
});

describe("formatEndpoint", () => {
  it("brackets IPv6", () => {
    expect(formatEndpoint({ host: "127.0.0.1", port: 1080 })).toBe("127.0.0.1:1080");
    expect(formatEndpoint({ host: "::1", port: 443 })).toBe("[::1]:443");
    expect(formatEndpoint({ host: "example.test", port: 80 })).toBe("example.test:80");
  });
});
