/**
 * Pins the public addon contract (src/hooks/api.ts): what an addon may return from each hook
 * and what it receives. These are compile-time checks (tsc runs in `npm test`), plus one runtime
 * test so vitest lists the file.
 */
import { describe, expectTypeOf, it } from "vitest";
import type {
  Addon,
  AuthInfo,
  DataChunk,
  HookContext,
  HookName,
  ReplyInfo,
  RequestDecision,
  RequestInfo,
  TlsClientHello,
  TlsClientHelloDecision,
  TlsSessionInfo,
} from "../../src/hooks/api.js";

describe("addon contract", () => {
  it("accepts every documented decision and rejects others", () => {
    const addon = {
      name: "pinned",
      options: { hosts: { type: "string", default: "*.example.com" }, rate: { type: "number" } },
      onOpen: () => ({ reject: true }),
      onAuth: (a) => (a.method === "userpass" && a.password === "x" ? { accept: true } : a.method === "socks4" ? { reject: true } : undefined),
      onRequest: async (r) => (r.port === 25 ? { deny: 2 } : r.host === "a" ? { redirect: { host: "b" } } : { allow: true }),
      onReply: (r) => (r.rep === 5 ? { rep: 4, bound: { host: "0.0.0.0", port: 0 } } : undefined),
      onData: (c, ctx) => {
        ctx.tag("seen", "yes");
        ctx.inject("down", "hi");
        return c.direction === "up" ? { replace: new Uint8Array(0) } : c.seq > 3 ? { drop: true } : c.seq > 9 ? { close: true } : { reset: true };
      },
      onTlsClientHello: (h, ctx) => (h.sni === ctx.session.target?.host ? { passthrough: true } : h.alpn.includes("h2") ? { intercept: true } : undefined),
      onDatagram: (d) => (d.direction === "up" ? { redirect: { port: 53 } } : { replace: "x" }),
      onClose: (s, ctx) => ctx.log(`${s.reason} ${s.bytesUp}`),
      onLoad: (ctx) => ctx.log(String(ctx.options.hosts)),
      onDispose: async () => {},
    } satisfies Addon;
    expectTypeOf(addon).toMatchTypeOf<Addon>();

    // @ts-expect-error a decision that does not exist
    const bad: Addon = { onRequest: () => ({ action: "block" }) };
    // @ts-expect-error onData cannot redirect
    const bad2: Addon = { onData: () => ({ redirect: { port: 1 } }) };
    // @ts-expect-error onTlsClientHello decides with a literal true
    const bad3: Addon = { onTlsClientHello: () => ({ intercept: false }) };
    void bad;
    void bad2;
    void bad3;
  });

  it("gives hooks the documented payloads", () => {
    expectTypeOf<RequestInfo>().toHaveProperty("addressType").toEqualTypeOf<"ipv4" | "ipv6" | "domain">();
    expectTypeOf<DataChunk["direction"]>().toEqualTypeOf<"up" | "down">();
    expectTypeOf<ReplyInfo["stage"]>().toEqualTypeOf<"final" | "bind-first" | "bind-second" | "udp">();
    expectTypeOf<Extract<AuthInfo, { method: "userpass" }>["password"]>().toEqualTypeOf<string>();
    expectTypeOf<HookContext["session"]["tags"]>().toEqualTypeOf<Readonly<Record<string, string>>>();
    expectTypeOf<RequestDecision>().toMatchTypeOf<
      { allow: true } | { deny: number } | { redirect: object } | { serve: true } | { upstream: string | readonly string[] }
    >();
    expectTypeOf<HookName>().toEqualTypeOf<
      "onLoad" | "onDispose" | "onOpen" | "onAuth" | "onRequest" | "onReply" | "onTlsClientHello" | "onData" | "onDatagram" | "onClose"
    >();
    expectTypeOf<TlsClientHello>().toEqualTypeOf<{
      readonly sni?: string;
      readonly alpn: readonly string[];
      readonly versions: readonly string[];
      readonly target: { readonly host: string; readonly port: number };
    }>();
    expectTypeOf<TlsClientHelloDecision>().toEqualTypeOf<{ readonly intercept: true } | { readonly passthrough: true }>();
    expectTypeOf<HookContext["session"]["tls"]>().toEqualTypeOf<TlsSessionInfo | undefined>();
    expectTypeOf<TlsSessionInfo>().toEqualTypeOf<{
      readonly sni?: string;
      readonly alpn?: string;
      readonly version?: string;
      readonly cipher?: string;
      readonly intercepted: boolean;
    }>();
  });

  it("typed options flow into the context", () => {
    const addon: Addon<{ limit: number }> = {
      options: { limit: { type: "number", default: 10 } },
      onRequest: (_r, ctx) => {
        expectTypeOf(ctx.options.limit).toEqualTypeOf<number>();
        return undefined;
      },
    };
    void addon;
  });
});
