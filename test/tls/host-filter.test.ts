/** `--tls-hosts` / `--tls-passthrough`: filters decided at the ClientHello. */
import { describe, expect, it } from "vitest";
import { parseFilter } from "../../src/filter/index.js";
import { hostMatcher } from "../../src/tls/host-filter.js";

const hello = { sni: "api.example.com", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3"] };
const target = { host: "api.example.com", port: 443 };

describe("hostMatcher", () => {
  it.each([
    ["sni:*.example.com", true],
    ["sni:*.example.org", false],
    ["host:api.example.com & port:443", true],
    ["port:8443", false],
    ["alpn:h2", true],
    ["alpn:spdy*", false],
    ["tls & proto:tls & cmd:connect", true],
    ["!sni:api.*", false],
    // Decided later than the ClientHello: nothing to match yet.
    ["status:ok", false],
    ["reason:completed", false],
  ])("%s → %s", (text, expected) => {
    expect(hostMatcher(parseFilter(text))(hello, target)).toBe(expected);
  });

  it("a hello without SNI matches on the requested target", () => {
    const match = hostMatcher(parseFilter("host:10.0.0.0/8"));
    expect(match({ alpn: [], versions: ["TLSv1.2"] }, { host: "10.1.2.3", port: 443 })).toBe(true);
    expect(match({ alpn: [], versions: ["TLSv1.2"] }, { host: "192.168.1.1", port: 443 })).toBe(false);
    expect(hostMatcher(parseFilter("sni:*"))({ alpn: [], versions: [] }, target)).toBe(false);
  });
});
