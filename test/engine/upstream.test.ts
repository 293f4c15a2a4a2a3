/** Upstream URLs (`--upstream`): parsing, the credential-free text sessions record, and which commands a route carries. */
import { describe, expect, it } from "vitest";
import { canCarry, formatHop, formatRoute, parseUpstream, type Route } from "../../src/engine/upstream.js";

describe("parseUpstream", () => {
  it("reads every scheme with its default port (1080 for SOCKS)", () => {
    expect(parseUpstream("socks5h://proxy.example")).toEqual({ scheme: "socks5h", host: "proxy.example", port: 1080 });
    expect(parseUpstream("socks5://10.0.0.2")).toEqual({ scheme: "socks5", host: "10.0.0.2", port: 1080 });
    expect(parseUpstream("socks4a://h:1081")).toEqual({ scheme: "socks4a", host: "h", port: 1081 });
    expect(parseUpstream("socks4://h/")).toEqual({ scheme: "socks4", host: "h", port: 1080 });
    expect(parseUpstream("http://h:3128")).toEqual({ scheme: "http", host: "h", port: 3128 });
    expect(parseUpstream("HTTP://Proxy.Example:80")).toEqual({ scheme: "http", host: "proxy.example", port: 80 });
  });

  it("reads bracketed IPv6 and percent-decoded credentials", () => {
    expect(parseUpstream("socks5h://us%40er:p%3Ass:w@[::1]:1080")).toEqual({ scheme: "socks5h", host: "::1", port: 1080, user: "us@er", password: "p:ss:w" });
    expect(parseUpstream("socks4://alice@127.0.0.1:9")).toEqual({ scheme: "socks4", host: "127.0.0.1", port: 9, user: "alice" });
    expect(parseUpstream("http://%C3%A9:x@h:1")).toMatchObject({ user: "é", password: "x" });
  });

  it.each([
    ["proxy:1080", /expected SCHEME:\/\/HOST/],
    ["ftp://h:21", /unknown scheme "ftp".*socks5h, socks5, socks4a, socks4, http/],
    ["https://h:443", /TLS to an upstream is not supported/],
    ["http://h", /an http upstream needs a port/],
    ["socks5://h:0", /port 0/],
    ["socks5://h:70000", /not a valid URL/],
    ["socks5://:1080", /not a valid URL/],
    ["socks5://h:1080/x", /no path, query or fragment/],
    ["socks5://h?x", /no path, query or fragment/],
    ["socks5://[1.2.3.4]", /not a valid URL|not a host name/],
    ["socks5://ex%41mple", /not a host name or IP address/],
    ["socks5://%zz@h", /user has a malformed percent escape/],
    ["socks5://:secret@h", /a password needs a user/],
    ["socks4://u:secret@h", /socks4 carries a user id and no password/],
    ["socks4a://u:secret@h", /socks4a carries a user id and no password/],
    [`socks5://${"u".repeat(256)}:p@h`, /user is longer than 255 bytes/],
  ])("refuses %s", (url, message) => {
    expect(() => parseUpstream(url)).toThrow(message);
  });

  it("never puts the password in an error message", () => {
    expect(() => parseUpstream("socks5://alice:hunter2@h:1080/path")).toThrow(/alice:\*\*\*@h/);
    expect(() => parseUpstream("socks5://alice:hunter2@h:1080/path")).not.toThrow(/hunter2/);
  });
});

describe("formatHop and formatRoute", () => {
  it("show scheme, host and port, never credentials", () => {
    const route: Route = [parseUpstream("socks5h://alice:pw@[2001:db8::1]:1080"), parseUpstream("http://bob:pw@10.0.0.2:8080")];
    expect(formatHop(route[0]!)).toBe("socks5h://[2001:db8::1]:1080");
    expect(formatRoute(route)).toBe("socks5h://[2001:db8::1]:1080 -> http://10.0.0.2:8080");
    expect(formatRoute([])).toBe("direct");
  });
});

describe("canCarry", () => {
  const socks5 = parseUpstream("socks5://a:1");
  const socks4 = parseUpstream("socks4://b:1");
  const http = parseUpstream("http://c:1");
  it("carries CONNECT through any route", () => {
    expect(canCarry([http, socks4, socks5], "connect")).toBeUndefined();
    expect(canCarry([], "udp")).toBeUndefined();
  });
  it("needs a SOCKS last hop for BIND", () => {
    expect(canCarry([http, socks4], "bind")).toBeUndefined();
    expect(canCarry([socks5, http], "bind")).toMatch(/BIND cannot go through http:\/\/c:1: HTTP CONNECT has no BIND/);
  });
  it("needs exactly one SOCKS5 hop for UDP", () => {
    expect(canCarry([socks5], "udp")).toBeUndefined();
    expect(canCarry([socks4], "udp")).toMatch(/only SOCKS5 upstreams relay datagrams/);
    expect(canCarry([socks5, socks5], "udp")).toMatch(/one SOCKS5 upstream only, not a chain of 2/);
  });
});
