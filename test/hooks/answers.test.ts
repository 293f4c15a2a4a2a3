/**
 * The run-time checks of hook answers (src/hooks/answers.ts): every malformed answer the trust
 * review reproduced is refused with a message, every documented shape passes through as the
 * engine expects it, and no value at all makes a check throw (fast-check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkAuth,
  checkData,
  checkDatagram,
  checkOpen,
  checkPeer,
  checkReply,
  checkRequest,
  checkTlsHello,
  describe as describeValue,
  hideCredentials,
  isProblem,
  type Checked,
} from "../../src/hooks/answers.js";

function problem<T>(checked: Checked<T>): string {
  if (!isProblem(checked)) throw new Error(`expected a problem, got ${JSON.stringify(checked.value)}`);
  return checked.problem;
}

function value<T>(checked: Checked<T>): T {
  if (isProblem(checked)) throw new Error(`expected a value, got: ${checked.problem}`);
  return checked.value;
}

describe("hook answers are checked against the contract", () => {
  it("onRequest: the reproduced malformed answers are refused, each with what was expected", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{}, /expected \{ allow \}, \{ deny \}, \{ redirect \}, \{ serve \}, \{ upstream \} or undefined/],
      [{ block: true }, /unknown field "block"/],
      [{ redirect: null }, /redirect must be \{ host\?, port\? \}/],
      [{ redirect: { port: -1 } }, /redirect.port must be an integer from 1 to 65535/],
      [{ redirect: { port: 0 } }, /redirect.port/],
      [{ redirect: { port: 80.5 } }, /redirect.port/],
      [{ redirect: { host: 5 } }, /redirect.host must be/],
      [{ redirect: { host: "" } }, /redirect.host must be/],
      [{ redirect: {} }, /needs a host, a port or both/],
      [{ redirect: { host: "a", path: "/" } }, /unknown field "path"/],
      [{ deny: 0 }, /deny must be a SOCKS5 reply code, an integer from 1 to 255/],
      [{ deny: "x" }, /deny must be/],
      [{ deny: "2" }, /deny must be/],
      [{ deny: 999 }, /deny must be/],
      [{ deny: Number.NaN }, /deny must be/],
      [{ allow: false }, /allow must be true/],
      [{ allow: "yes" }, /allow must be true/],
      [{ allow: true, deny: 2 }, /one of allow, deny, not several/],
      ["garbage", /answered "garbage": expected/],
      [42, /answered 42/],
      [[{ allow: true }], /answered an array/],
    ];
    for (const [answer, message] of bad) expect(problem(checkRequest(answer, "connect")), JSON.stringify(answer)).toMatch(message);
    expect(problem(checkRequest({ serve: true }, "udp"))).toMatch(/serve answers CONNECT requests only/);
  });

  it("onRequest: documented answers pass as the engine expects them", () => {
    expect(value(checkRequest({ allow: true }, "connect"))).toEqual({ allow: true });
    expect(value(checkRequest({ deny: 2 }, "bind"))).toEqual({ deny: 2 });
    expect(value(checkRequest({ deny: 255 }, "connect"))).toEqual({ deny: 255 });
    expect(value(checkRequest({ redirect: { host: "127.0.0.1" } }, "connect"))).toEqual({ redirect: { host: "127.0.0.1" } });
    expect(value(checkRequest({ redirect: { port: 8080 } }, "udp"))).toEqual({ redirect: { port: 8080 } });
    expect(value(checkRequest({ redirect: { host: "::1", port: 1 } }, "connect"))).toEqual({ redirect: { host: "::1", port: 1 } });
    expect(value(checkRequest({ serve: true }, "connect"))).toEqual({ serve: true });
  });

  it('onRequest { upstream }: a URL, a list of URLs or "direct" become the engine\'s route, parsed once', () => {
    expect(value(checkRequest({ upstream: "direct" }, "connect"))).toEqual({ upstream: [] });
    expect(value(checkRequest({ upstream: [] }, "bind"))).toEqual({ upstream: [] });
    expect(value(checkRequest({ upstream: "socks5h://127.0.0.1:9050" }, "connect"))).toEqual({
      upstream: [{ scheme: "socks5h", host: "127.0.0.1", port: 9050 }],
    });
    expect(value(checkRequest({ upstream: ["socks5://u:p%40ss@proxy.test", "http://[::1]:3128"] }, "udp"))).toEqual({
      upstream: [
        { scheme: "socks5", host: "proxy.test", port: 1080, user: "u", password: "p@ss" },
        { scheme: "http", host: "::1", port: 3128 },
      ],
    });
    const eight = Array.from({ length: 8 }, (_, i) => `socks4a://127.0.0.1:${1000 + i}`);
    expect(value(checkRequest({ upstream: eight }, "connect"))).toMatchObject({ upstream: expect.any(Array) });
  });

  it("onRequest { upstream }: a bad route is refused with parseUpstream's reason, never the password", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ upstream: "socks9://h:1" }, /upstream: "socks9:\/\/h:1": unknown scheme "socks9"/],
      [{ upstream: "https://h:443" }, /TLS to an upstream is not supported/],
      [{ upstream: "http://h" }, /an http upstream needs a port/],
      [{ upstream: "socks5://h:0" }, /port 0 cannot be dialled/],
      [{ upstream: "h:1080" }, /expected SCHEME:\/\/HOST/],
      [{ upstream: "Direct" }, /expected SCHEME:\/\/HOST/],
      [{ upstream: "" }, /expected SCHEME/],
      [{ upstream: ["socks5://a:1", "socks5://b:99999"] }, /upstream\[1\]: "socks5:\/\/b:99999": not a valid URL/],
      [{ upstream: ["direct"] }, /upstream\[0\] is "direct", which stands alone/],
      [{ upstream: ["socks5://a:1", 5] }, /upstream\[1\] must be a proxy URL string, got 5/],
      [{ upstream: [undefined, "socks5://a:1"] }, /upstream\[0\] must be a proxy URL string, got undefined/],
      [{ upstream: Array(9).fill("socks5://a:1") }, /a chain of at most 8 hops/],
      [{ upstream: true }, /upstream must be "direct", a proxy URL/],
      [{ upstream: null }, /upstream must be/],
      [{ upstream: { host: "a", port: 1 } }, /upstream must be/],
      [{ upstream: `socks5://${"a".repeat(3000)}:1` }, /longer than 2048 characters/],
      [{ upstream: "socks5://a:1", allow: true }, /one of allow, upstream, not several/],
    ];
    for (const [answer, message] of bad) expect(problem(checkRequest(answer, "connect")), JSON.stringify(answer)).toMatch(message);
    const secret = "hunter2-secret";
    for (const answer of [
      { upstream: `socks5://alice:${secret}@h:0` },
      { upstream: `socks4://alice:${secret}@h` },
      { upstream: ["socks5://a:1", `alice:${secret}@h:1080`] },
      { upstream: `socks5://alice:${secret}@h:1`, allow: true },
      { upstream: `socks5://alice:${secret}@@h/x` },
    ]) {
      const message = problem(checkRequest(answer, "connect"));
      expect(message).not.toContain(secret);
      expect(message).not.toContain("secret");
    }
  });

  it("describe shows no password, whatever string carries one", () => {
    expect(hideCredentials("socks5://alice:pw@h:1")).toBe("socks5://alice:***@h:1");
    expect(hideCredentials("alice:p@w@h")).toBe("alice:***@h");
    expect(hideCredentials("socks5://h:1")).toBe("socks5://h:1");
    expect(hideCredentials("alice@h")).toBe("alice@h");
    expect(describeValue({ upstream: ["socks5://bob:pw@h:1"] })).toBe('{"upstream":["socks5://bob:***@h:1"]}');
    expect(describeValue("http://bob:a-very-long-password-indeed-more-than-forty@h:1")).not.toContain("password");
  });

  it("onReply: a failed request cannot become a success; rep and bound are checked", () => {
    expect(problem(checkReply({ rep: 0 }, true, 5))).toMatch(/cannot answer a failed request/);
    expect(problem(checkReply({ rep: "x" }, false, 5))).toMatch(/rep must be a SOCKS5 reply code/);
    expect(problem(checkReply({ rep: 256 }, false, 5))).toMatch(/rep must be/);
    expect(problem(checkReply({ bound: { host: "10.0.0.1" } }, false, 5))).toMatch(/bound must be \{ host: string, port/);
    expect(problem(checkReply({ bound: { host: "::1", port: 1 } }, false, 4))).toMatch(/IPv4 address/);
    expect(problem(checkReply({ bound: { host: "x".repeat(256), port: 1 } }, false, 5))).toMatch(/1 to 255 bytes/);
    expect(problem(checkReply({ rap: 1 }, false, 5))).toMatch(/unknown field "rap"/);
    expect(problem(checkReply(null as unknown, false, 5) as Checked<unknown>)).toMatch(/answered null/);

    expect(value(checkReply({}, false, 5))).toEqual({});
    expect(value(checkReply({ rep: 2 }, false, 5))).toEqual({ rep: 2 });
    expect(value(checkReply({ rep: 5 }, true, "4a"))).toEqual({ rep: 5 });
    expect(value(checkReply({ bound: { host: "10.0.0.1", port: 7 } }, false, 4))).toEqual({ bound: { host: "10.0.0.1", port: 7 } });
    expect(value(checkReply({ bound: { host: "proxy.example", port: 7 } }, false, 5))).toEqual({ bound: { host: "proxy.example", port: 7 } });
  });

  it("onData and onDatagram: replace takes bytes or text; flags must be true; redirect is up only", () => {
    expect(problem(checkData({ replace: null }))).toMatch(/replace must be a Uint8Array/);
    expect(problem(checkData({ replace: 123 }))).toMatch(/replace must be a Uint8Array/);
    expect(problem(checkData({ replace: [1, 2] }))).toMatch(/replace must be a Uint8Array/);
    expect(problem(checkData({ foo: 1 }))).toMatch(/unknown field "foo"/);
    expect(problem(checkData({ drop: 1 }))).toMatch(/drop must be true/);
    expect(problem(checkDatagram({ replace: 123 }, "up"))).toMatch(/replace must be a Uint8Array/);
    expect(problem(checkDatagram({ redirect: { port: -1 } }, "up"))).toMatch(/redirect.port must be an integer from 1 to 65535/);
    expect(problem(checkDatagram({ redirect: { port: 53 } }, "down"))).toMatch(/"up" datagrams only/);
    expect(problem(checkDatagram("garbage", "up"))).toMatch(/answered "garbage"/);

    expect(Buffer.from((value(checkData({ replace: "hé" })) as { replace: Uint8Array }).replace).toString()).toBe("hé");
    const bytes = new Uint8Array([1, 2, 3]);
    expect(value(checkData({ replace: bytes }))).toEqual({ replace: bytes });
    expect(value(checkData({ reset: true }))).toEqual({ reset: true });
    expect(value(checkDatagram({ redirect: { host: "127.0.0.1", port: 53 } }, "up"))).toEqual({ redirect: { host: "127.0.0.1", port: 53 } });
  });

  it("onOpen and onAuth: only { reject: true } / { accept: true }", () => {
    expect(problem(checkAuth({}))).toMatch(/expected \{ accept \}, \{ reject \} or undefined/);
    expect(problem(checkAuth({ accept: 1 }))).toMatch(/accept must be true/);
    expect(problem(checkOpen({ accept: true }))).toMatch(/unknown field "accept"/);
    expect(value(checkAuth({ reject: true }))).toEqual({ reject: true });
    expect(value(checkOpen({ reject: true }))).toEqual({ reject: true });
  });

  it("onTlsClientHello: only { intercept: true } / { passthrough: true }, one of them", () => {
    expect(problem(checkTlsHello({}))).toMatch(/expected \{ intercept \}, \{ passthrough \} or undefined/);
    expect(problem(checkTlsHello({ intercept: false }))).toMatch(/intercept must be true/);
    expect(problem(checkTlsHello({ passthrough: "true" }))).toMatch(/passthrough must be true/);
    expect(problem(checkTlsHello({ intercept: true, passthrough: true }))).toMatch(/one of intercept, passthrough, not several/);
    expect(problem(checkTlsHello({ allow: true }))).toMatch(/unknown field "allow"/);
    expect(problem(checkTlsHello("passthrough"))).toMatch(/expected \{ intercept \}, \{ passthrough \}/);
    expect(value(checkTlsHello({ intercept: true }))).toEqual({ intercept: true });
    expect(value(checkTlsHello({ passthrough: true }))).toEqual({ passthrough: true });
  });

  it("ctx.injectDatagram's peer", () => {
    expect(problem(checkPeer({ host: "127.0.0.1", port: 0 }))).toMatch(/peer must be/);
    expect(problem(checkPeer("127.0.0.1:53"))).toMatch(/peer must be/);
    expect(value(checkPeer({ host: "127.0.0.1", port: 53, extra: 1 }))).toEqual({ host: "127.0.0.1", port: 53 });
  });

  it("hostile values never make a check throw: getters that throw, revoked proxies, cycles, bigints", () => {
    const throwing = Object.defineProperty({}, "deny", {
      enumerable: true,
      get: () => {
        throw new Error("gotcha");
      },
    });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const cyclic: Record<string, unknown> = { replace: undefined };
    cyclic.self = cyclic;
    for (const answer of [throwing, proxy, cyclic, { deny: 2n }, { replace: Symbol("x") }, { then: 1 }]) {
      for (const check of checks) expect(() => check(answer)).not.toThrow();
    }
    expect(describeValue(cyclic)).toBe("an object");
  });

  const checks: Array<(answer: unknown) => Checked<unknown>> = [
    checkOpen,
    checkAuth,
    (a) => checkRequest(a, "connect"),
    (a) => checkReply(a, true, 5),
    (a) => checkReply(a, false, 4),
    checkData,
    (a) => checkDatagram(a, "up"),
    (a) => checkDatagram(a, "down"),
    checkTlsHello,
  ];

  it("property: any value is either refused or comes out as a documented shape, never a throw", () => {
    const near = fc.oneof(
      fc.anything(),
      fc.record({ deny: fc.anything() }),
      fc.record({ allow: fc.anything() }),
      fc.record({ redirect: fc.anything() }),
      fc.record({ upstream: fc.oneof(fc.anything(), fc.array(fc.oneof(fc.string(), fc.webUrl(), fc.anything()), { maxLength: 10 })) }),
      fc.record({ redirect: fc.record({ host: fc.anything(), port: fc.anything() }, { requiredKeys: [] }) }),
      fc.record({ replace: fc.anything() }),
      fc.record({ intercept: fc.anything(), passthrough: fc.anything() }, { requiredKeys: [] }),
      fc.record({ rep: fc.anything(), bound: fc.anything() }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(near, (answer) => {
        const request = checkRequest(answer, "connect");
        if (!isProblem(request)) {
          const d = request.value;
          if ("deny" in d) expect(Number.isInteger(d.deny) && d.deny >= 1 && d.deny <= 255).toBe(true);
          if ("redirect" in d) {
            if (d.redirect.port !== undefined) expect(Number.isInteger(d.redirect.port) && d.redirect.port >= 1 && d.redirect.port <= 65535).toBe(true);
            if (d.redirect.host !== undefined) expect(typeof d.redirect.host).toBe("string");
          }
          if ("upstream" in d) expect(d.upstream.length).toBeLessThanOrEqual(8);
        }
        const reply = checkReply(answer, true, 5);
        if (!isProblem(reply) && reply.value.rep !== undefined) expect(reply.value.rep).toBeGreaterThan(0);
        const data = checkData(answer);
        if (!isProblem(data) && "replace" in data.value) expect(data.value.replace).toBeInstanceOf(Uint8Array);
        const tls = checkTlsHello(answer);
        if (!isProblem(tls)) expect([{ intercept: true }, { passthrough: true }]).toContainEqual(tls.value);
        for (const check of checks) check(answer);
      }),
      { numRuns: 2000 },
    );
  });
});
