/** Destination rules: parsing (good and bad forms), first match wins, names and the addresses they resolve to, the loop check. */
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import { DestinationRuleError, DestinationRules, isOwnListener, type RuleSource } from "../../src/engine/destination-rules.js";

const deny = (text: string): RuleSource => ({ action: "deny", text });
const allow = (text: string): RuleSource => ({ action: "allow", text });
const rules = (...sources: RuleSource[]) => new DestinationRules(sources);

describe("parsing", () => {
  it("accepts every documented form", () => {
    const good = [
      "10.0.0.0/8",
      "127.0.0.1",
      "0.0.0.0/0",
      "2001:db8::/32",
      "::1",
      "[::1]",
      "[2001:db8::/32]:443",
      "10.0.0.0/8:22",
      "10.0.0.0/8:1000-2000",
      "*.example.com",
      "example.com",
      "EXAMPLE.com.",
      "*",
      "*:80",
      "*.example.com:443",
      ":22",
      ":1-1024",
      "localhost:8080",
    ];
    expect(() => rules(...good.map(deny))).not.toThrow();
    expect(rules(...good.map(deny)).size).toBe(good.length);
  });

  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    [":", /bad port ""/],
    [":0", /out of range/],
    [":65536", /out of range/],
    [":20-10", /backwards/],
    [":http", /bad port "http"/],
    ["10.0.0.0/33", /bad prefix length \/33 \(0-32 for IPv4\)/],
    ["2001:db8::/129", /bad prefix length \/129 \(0-128 for IPv6\)/],
    ["10.1.2.3/8", /bits set beyond \/8 \(did you mean 10\.0\.0\.0\/8\?\)/],
    ["10.1/16", /"10\.1" is not an IPv4 or IPv6 address/],
    ["[::1", /no closing \]/],
    ["[::1]443", /expected :port after \]/],
    ["[10.0.0.1]:80", /brackets are for IPv6/],
    ["exa mple.com", /not a CIDR, an address or a host glob/],
    ["foo..bar", /host glob/],
    ["a/b", /"a" is not an IPv4 or IPv6 address/],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${JSON.stringify(text)} saying why`, () => {
      let error: unknown;
      try {
        rules(deny(text));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DestinationRuleError);
      expect((error as Error).message).toContain(`bad rule ${JSON.stringify(text)}`);
      expect((error as Error).message).toMatch(message);
    });
  }
});

describe("check", () => {
  it("allows by default and names the deny rule that matched", () => {
    expect(rules().check("example.com", 80)).toBeUndefined();
    expect(rules(deny("10.0.0.0/8")).check("10.1.2.3", 80)).toBe("--deny 10.0.0.0/8");
    expect(rules(deny("10.0.0.0/8")).check("11.1.2.3", 80)).toBeUndefined();
  });

  it("first match wins, across allow and deny", () => {
    const list = rules(allow("10.0.0.5"), deny("10.0.0.0/8"), allow("10.0.0.6"));
    expect(list.check("10.0.0.5", 80)).toBeUndefined();
    expect(list.check("10.0.0.6", 80)).toBe("--deny 10.0.0.0/8");
    const reversed = rules(deny("10.0.0.0/8"), allow("10.0.0.5"));
    expect(reversed.check("10.0.0.5", 80)).toBe("--deny 10.0.0.0/8");
  });

  it("globs match names case-insensitively, subdomains only with *., never addresses (but * alone matches all)", () => {
    const list = rules(deny("*.example.com"));
    expect(list.check("a.example.com", 443)).toBe("--deny *.example.com");
    expect(list.check("A.B.Example.COM.", 443)).toBe("--deny *.example.com");
    expect(list.check("example.com", 443)).toBeUndefined();
    expect(list.check("badexample.com", 443)).toBeUndefined();
    expect(rules(deny("example.com")).check("example.com", 1)).toBe("--deny example.com");
    expect(rules(deny("example.com")).check("www.example.com", 1)).toBeUndefined();
    // Regular-expression characters in a glob are literal.
    expect(rules(deny("a-b.c")).check("axb.c", 1)).toBeUndefined();
    expect(rules(deny("*.*")).check("10.0.0.1", 1)).toBeUndefined();
    // `*` alone is every destination, names and addresses: the end of an allow list.
    expect(rules(deny("*")).check("10.0.0.1", 1)).toBe("--deny *");
    expect(rules(deny("*")).check("anything", 1)).toBe("--deny *");
    const allowList = rules(allow("*.corp"), deny("*"));
    expect(allowList.check("db.corp", 5432, "10.0.0.1")).toBeUndefined();
    expect(allowList.check("db.test", 5432)).toBe("--deny *");
  });

  it("ports and port ranges, alone or with a host", () => {
    const list = rules(deny(":22"), deny("*.internal:8000-8999"), deny("[::1]:25"));
    expect(list.check("example.com", 22)).toBe("--deny :22");
    expect(list.check("10.0.0.1", 22)).toBe("--deny :22");
    expect(list.check("example.com", 23)).toBeUndefined();
    expect(list.check("db.internal", 8000)).toBe("--deny *.internal:8000-8999");
    expect(list.check("db.internal", 8999)).toBe("--deny *.internal:8000-8999");
    expect(list.check("db.internal", 9000)).toBeUndefined();
    expect(list.check("::1", 25)).toBe("--deny [::1]:25");
    expect(list.check("::1", 26)).toBeUndefined();
  });

  it("IPv6 CIDRs, in any spelling; IPv4-mapped addresses match IPv4 rules", () => {
    const list = rules(deny("2001:db8::/32"), deny("127.0.0.0/8"));
    expect(list.check("2001:db8:0:0:0:0:0:1", 80)).toBe("--deny 2001:db8::/32");
    expect(list.check("2001:DB8::ffff", 80)).toBe("--deny 2001:db8::/32");
    expect(list.check("2001:db9::1", 80)).toBeUndefined();
    expect(list.check("::ffff:127.0.0.2", 80)).toBe("--deny 127.0.0.0/8");
    expect(list.check("::1", 80)).toBeUndefined();
  });

  it("a name is checked again with each address it resolves to", () => {
    const list = rules(deny("127.0.0.2/32"));
    // Before resolution the CIDR rule cannot be decided: not denied yet.
    expect(list.check("evil.test", 80)).toBeUndefined();
    expect(list.check("evil.test", 80, "127.0.0.2")).toBe("--deny 127.0.0.2/32");
    expect(list.check("evil.test", 80, "127.0.0.1")).toBeUndefined();
  });

  it("an allow for a name wins over a later CIDR deny of its addresses, not an earlier one", () => {
    const allowFirst = rules(allow("*.corp"), deny("10.0.0.0/8"));
    expect(allowFirst.check("db.corp", 80, "10.1.1.1")).toBeUndefined();
    expect(allowFirst.check("other.test", 80, "10.1.1.1")).toBe("--deny 10.0.0.0/8");
    const denyFirst = rules(deny("10.0.0.0/8"), allow("*.corp"));
    expect(denyFirst.check("db.corp", 80, "10.1.1.1")).toBe("--deny 10.0.0.0/8");
  });

  it("before resolution a name rule decides only when no address rule comes first", () => {
    // A CIDR allow before the name deny could still allow the name's addresses: undecided.
    const list = rules(allow("10.0.0.0/8"), deny("*.test"));
    expect(list.check("a.test", 80)).toBeUndefined();
    expect(list.check("a.test", 80, "10.0.0.1")).toBeUndefined();
    expect(list.check("a.test", 80, "11.0.0.1")).toBe("--deny *.test");
    // A CIDR rule for another port is skipped, so the name rule after it decides at once.
    expect(rules(deny("10.0.0.0/8:22"), deny("*.test")).check("a.test", 80)).toBe("--deny *.test");
  });
});

describe("isOwnListener", () => {
  it("matches a specific listener's address and port, in any spelling", () => {
    const listening = [
      { host: "127.0.0.1", port: 1080 },
      { host: "::1", port: 1081 },
    ];
    expect(isOwnListener("127.0.0.1", 1080, listening)).toBe(true);
    expect(isOwnListener("::ffff:127.0.0.1", 1080, listening)).toBe(true);
    expect(isOwnListener("0:0:0:0:0:0:0:1", 1081, listening)).toBe(true);
    expect(isOwnListener("127.0.0.1", 1081, listening)).toBe(false);
    expect(isOwnListener("127.0.0.2", 1080, listening)).toBe(false);
    expect(isOwnListener("localhost", 1080, listening)).toBe(false);
  });

  it("a wildcard listener covers loopback and this host's interface addresses", () => {
    const v4 = [{ host: "0.0.0.0", port: 1080 }];
    expect(isOwnListener("127.0.0.1", 1080, v4)).toBe(true);
    expect(isOwnListener("127.3.2.1", 1080, v4)).toBe(true);
    expect(isOwnListener("::1", 1080, v4)).toBe(false);
    expect(isOwnListener("192.0.2.1", 1080, v4)).toBe(false);
    expect(isOwnListener("127.0.0.1", 1081, v4)).toBe(false);
    const dual = [{ host: "::", port: 1080 }];
    expect(isOwnListener("::1", 1080, dual)).toBe(true);
    expect(isOwnListener("127.0.0.1", 1080, dual)).toBe(true);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && !i.internal && i.family === "IPv4");
    if (external !== undefined) expect(isOwnListener(external.address, 1080, v4)).toBe(true);
  });
});
