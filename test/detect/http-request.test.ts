/**
 * The HTTP/1.x request and h2 preface detector: request-line forms, Host lookup, line ends, and
 * the first byte that rules HTTP out.
 */
import { describe, expect, it } from "vitest";
import { detectProtocol, HTTP2_PREFACE, HTTP_METHODS, type Detection } from "../../src/detect/index.js";
import { detectHttp } from "../../src/detect/http-request.js";
import { expectPrefixes, expectSniffed } from "./fixtures.js";

const bytes = (text: string) => Buffer.from(text, "latin1");
const UNKNOWN: Detection = { kind: "unknown" };

describe("request lines", () => {
  it.each(HTTP_METHODS.map((m) => [m]))("%s", (method) => {
    const target = method === "CONNECT" ? "example.test:443" : method === "OPTIONS" ? "*" : "/a/b?c=d";
    const req = bytes(`${method} ${target} HTTP/1.1\r\nHost: example.test\r\n\r\n`);
    const answer: Detection = { kind: "http", method, path: target, host: "example.test", version: "1.1" };
    expectPrefixes(req, answer, req.length);
    expectSniffed(req, answer);
  });

  it("absolute-form target, HTTP/1.0, no Host", () => {
    expect(detectProtocol(bytes("GET http://example.test/x HTTP/1.0\r\n\r\n"))).toEqual({
      kind: "http",
      method: "GET",
      path: "http://example.test/x",
      version: "1.0",
    });
  });

  it("raw UTF-8 in the target is kept byte for byte (latin1)", () => {
    const req = Buffer.concat([bytes("GET /caf"), Buffer.from("é", "utf8"), bytes(" HTTP/1.1\r\n\r\n")]);
    expect(detectProtocol(req)).toMatchObject({ path: "/caf\xc3\xa9" });
  });

  it("bare LF line ends (RFC 9112 §2.2), mixed with CRLF", () => {
    expect(detectProtocol(bytes("GET / HTTP/1.1\nHost: a.test\r\n\n"))).toEqual({ kind: "http", method: "GET", path: "/", host: "a.test", version: "1.1" });
  });

  it("the body after the headers is not looked at", () => {
    const req = bytes("POST /u HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\n\x00\x01\x1b\xff");
    expectPrefixes(req, { kind: "http", method: "POST", path: "/u", host: "a.test", version: "1.1" }, req.length - 4);
  });
});

describe("Host", () => {
  const host = (headers: string) => {
    const r = detectProtocol(bytes(`GET / HTTP/1.1\r\n${headers}\r\n`));
    return r.kind === "http" ? r.host : r.kind;
  };

  it("is found case-insensitively, among other headers, trimmed of spaces and tabs", () => {
    expect(host("Accept: */*\r\nHOST: \t a.test:8080 \t\r\nX: y\r\n")).toBe("a.test:8080");
    expect(host("host:b.test\r\n")).toBe("b.test");
    expect(host("Host: [::1]:80\r\n")).toBe("[::1]:80");
  });

  it("the first one wins", () => {
    expect(host("Host: one.test\r\nHost: two.test\r\n")).toBe("one.test");
  });

  it("is absent when missing, empty, or malformed", () => {
    expect(host("Accept: */*\r\n")).toBeUndefined();
    expect(host("Host:\r\n")).toBeUndefined();
    expect(host("Host : spaced.test\r\n")).toBeUndefined(); // RFC 9112 §5.1: no space before the colon
    expect(host("X-Host: x.test\r\n")).toBeUndefined();
    expect(host(" Host: folded.test\r\n")).toBeUndefined();
  });
});

describe("HTTP/2 preface", () => {
  it("is decided by its 24th byte", () => {
    const b = Buffer.concat([HTTP2_PREFACE, Buffer.from("000000040000000000", "hex")]);
    expectPrefixes(b, { kind: "http2" }, 24);
    expectSniffed(b, { kind: "http2" });
  });

  it("a PRI line that is not the preface is unknown", () => {
    expect(detectProtocol(bytes("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"))).toEqual(UNKNOWN);
    expect(detectProtocol(bytes("PRI / HTTP/1.1\r\n\r\n"))).toEqual(UNKNOWN);
  });

  it("P… stays open for POST, PUT, PATCH and PRI until a byte rules them out", () => {
    expect(detectProtocol(bytes("P")).kind).toBe("need-more");
    expect(detectProtocol(bytes("PR")).kind).toBe("need-more");
    expect(detectProtocol(bytes("PA")).kind).toBe("need-more");
    expect(detectProtocol(bytes("PX"))).toEqual(UNKNOWN);
  });
});

describe("unknown at the first impossible byte", () => {
  it.each([
    ["method not followed by SP", "GETX", 4],
    ["tab after the method", "GET\t", 4],
    ["empty target", "GET  ", 5],
    ["control byte in the target", "GET /\x1b", 6],
    ["DEL in the target", "GET /\x7f", 6],
    ["CR in the target", "GET /\r", 6],
    ["lowercase version", "GET / h", 7],
    ["HTTP/2.0 on a method", "GET / HTTP/2", 12],
    ["HTTP/1.x with a letter", "GET / HTTP/1.x", 14],
    ["CR without LF after the version", "GET / HTTP/1.1\rX", 16],
    ["text after the version", "GET / HTTP/1.1 ", 15],
    ["NUL in a header line", "GET / HTTP/1.1\r\nX: \x00", 20],
    ["ESC in a header value", "GET / HTTP/1.1\r\nHost: a\x1b", 24],
    ["lone CR in the headers", "GET / HTTP/1.1\r\nX: y\rZ", 22],
  ])("%s", (_name, text, decidedAt) => {
    const b = bytes(text);
    expect(b.length).toBe(decidedAt);
    expectPrefixes(b, UNKNOWN, decidedAt);
  });

  it("at the cap, a whole request line is reported; a partial one is not", () => {
    expect(detectHttp(bytes("GET / HTTP/1.1\r\nX: partial"), true)).toEqual({ kind: "http", method: "GET", path: "/", version: "1.1" });
    expect(detectHttp(bytes("GET / HTTP/1.1\r\nHost: a.test\r\nX: partial"), true)).toMatchObject({ host: "a.test" });
    expect(detectHttp(bytes("GET / HTTP/1.1\r"), true)).toEqual(UNKNOWN);
    expect(detectHttp(bytes("GE"), true)).toEqual(UNKNOWN);
    expect(detectHttp(bytes("GET / HTTP/1.1\r\nX: partial"), false)).toEqual({ kind: "need-more" });
  });
});
