import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { HTTP_HEAD_MAX, decodeConnectResponse, encodeConnectRequest } from "../../../src/engine/codec/http-connect.js";
import { arbitraryInput, cat, expectTotalOutcome, latin1, messageSuite, repeat } from "./fixtures.js";

const code = (bytes: Uint8Array) => {
  const r = decodeConnectResponse(bytes);
  return r.kind === "error" ? r.error.code : r.kind;
};

describe("CONNECT request", () => {
  it("names the authority in the request line and Host", () => {
    expect(encodeConnectRequest({ host: "example.com", port: 443 }).toString("latin1")).toBe(
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
  });
  it("brackets IPv6 and sends Basic credentials in UTF-8", () => {
    const text = encodeConnectRequest({ host: "2001:db8::1", port: 22, credentials: { user: "é", password: "p:w" } }).toString("latin1");
    expect(text).toBe(
      `CONNECT [2001:db8::1]:22 HTTP/1.1\r\nHost: [2001:db8::1]:22\r\nProxy-Authorization: Basic ${Buffer.from("é:p:w").toString("base64")}\r\n\r\n`,
    );
  });
});

describe("CONNECT response head", () => {
  messageSuite({
    name: "200 with headers (CRLF)",
    bytes: latin1("HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\nContent-Length: 5\r\n\r\n"),
    decode: decodeConnectResponse,
    value: { version: "HTTP/1.1", status: 200, reason: "Connection established" },
  });
  messageSuite({
    name: "407 with bare LF line ends and no reason",
    bytes: latin1("HTTP/1.0 407\nProxy-Authenticate: Basic\n\n"),
    decode: decodeConnectResponse,
    value: { version: "HTTP/1.0", status: 407, reason: "" },
  });

  it("fails at once on bytes that are not HTTP/1.x", () => {
    expect(code(latin1("\x05\x00"))).toBe("UNKNOWN_VERSION");
    expect(code(latin1("HTTP/2 200\r\n\r\n"))).toBe("UNKNOWN_VERSION");
    expect(code(latin1("HTT"))).toBe("need-more");
  });
  it("refuses a malformed status line", () => {
    expect(code(latin1("HTTP/1.1 20x OK\r\n\r\n"))).toBe("GENERAL_FAILURE");
    expect(code(latin1("HTTP/1.1200 OK\r\n\r\n"))).toBe("GENERAL_FAILURE");
  });
  it("gives up on a head longer than the cap", () => {
    const long = cat(latin1("HTTP/1.1 200 OK\r\nX: "), repeat(0x61, HTTP_HEAD_MAX));
    expect(code(long)).toBe("FIELD_TOO_LONG");
    expect(code(long.subarray(0, HTTP_HEAD_MAX - 1))).toBe("need-more");
  });
  it("is total on arbitrary bytes", () => {
    fc.assert(
      fc.property(arbitraryInput([latin1("HTTP/1.1 200 OK\r\n"), latin1("HTTP/1.0 403 x\n\n")]), (bytes) => expectTotalOutcome(decodeConnectResponse, bytes)),
      { numRuns: 300 },
    );
  });
});
