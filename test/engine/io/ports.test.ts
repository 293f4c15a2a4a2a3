/**
 * The engine's ports over real sockets: every decision a HookRunner can make, sync and async,
 * and the facts and backpressure of the EngineObserver.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Credentials, allowAllHooks, type HookRunner, type LogLevel } from "../../../src/engine/index.js";
import { RawClient, connect5, hex, openTunnel, sleep, startEchoServer, startProxy, startServer, until, type TestProxy } from "../../support/net.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyWith(hooks: Partial<HookRunner>, extra: Record<string, unknown> = {}): Promise<TestProxy> {
  const proxy = await startProxy({ hooks: { ...allowAllHooks, ...hooks }, ...extra });
  cleanups.push(() => proxy.stop());
  return proxy;
}

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

const later = <T>(value: T, ms = 20): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

describe("HookRunner decisions", () => {
  it("open: a rejected connection is closed before any byte is read", async () => {
    const proxy = await proxyWith({ open: () => ({ reject: true }) });
    const c = await RawClient.connect(proxy.port);
    c.write("050100");
    expect((await c.readToEnd()).length).toBe(0);
    expect((await proxy.observer.lastClosed()).reason).toBe("rejected");
  });

  it("auth: a hook cannot accept credentials the table refuses (it narrows, never widens), and refuses a no-auth client", async () => {
    const credentials = new Credentials();
    credentials.add("alice", "right");
    const proxy = await proxyWith(
      { auth: (attempt) => (attempt.method === "userpass" && attempt.user.toString() === "mallory" ? { accept: true } : undefined) },
      { credentials },
    );
    const c = await RawClient.connect(proxy.port);
    c.write("050102");
    expect((await c.read(2)).toString("hex")).toBe("0502");
    c.write(Buffer.concat([hex("0107"), Buffer.from("mallory"), hex("01"), Buffer.from("x")]));
    expect((await c.read(2)).toString("hex")).toBe("0101");
    c.destroy();

    const noAuth = await proxyWith({ auth: (attempt) => (attempt.method === "none" ? { reject: true } : undefined) });
    const d = await RawClient.connect(noAuth.port);
    d.write("050100");
    expect((await d.readToEnd()).toString("hex")).toBe("05ff");
  });

  it("request: deny with a code or a raw REP sends that failure", async () => {
    const target = await echo();
    let deny: "DENIED" | number = "DENIED";
    const proxy = await proxyWith({ request: () => ({ deny }) });
    for (const [value, rep] of [
      ["DENIED", 0x02],
      [0x05, 0x05],
    ] as const) {
      deny = value;
      const c = await RawClient.connect(proxy.port);
      c.write(Buffer.concat([hex("050100"), connect5(target.port)]));
      await c.read(2);
      expect((await c.readToEnd()).toString("hex")).toBe(`05${rep.toString(16).padStart(2, "0")}00010000000000 00`.replace(/ /g, ""));
    }
  });

  it("request: redirect dials another port; the reply fact shows requested and actual target", async () => {
    const real = await startServer((s) => s.end("redirected!"));
    cleanups.push(() => real.close());
    const proxy = await proxyWith({ request: (r) => (r.destination.port === 1 ? { redirect: { port: real.port } } : undefined) });
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.concat([hex("050100"), connect5(1)]));
    await c.read(12);
    expect((await c.readToEnd()).toString()).toBe("redirected!");
    const reply = proxy.observer.last("reply");
    expect(reply.target).toEqual({ host: "127.0.0.1", port: real.port });
    expect(proxy.observer.last("request").destination.port).toBe(1);
  });

  it("reply: a hook can turn a success into a failure and change the bound address", async () => {
    const target = await echo();
    let change: { rep?: number; bound?: { host: string; port: number } } = { bound: { host: "10.9.8.7", port: 4242 } };
    const proxy = await proxyWith({ reply: () => change });
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    await c.read(2);
    expect((await c.read(10)).toString("hex")).toBe(`050000010a090807${(4242).toString(16).padStart(4, "0")}`);
    c.destroy();

    change = { rep: 0x02 };
    const d = await RawClient.connect(proxy.port);
    d.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    await d.read(2);
    expect((await d.readToEnd()).toString("hex")).toBe("05020001000000000000");
  });

  it("reply: malformed requests go through the reply hook and are reported like any reply", async () => {
    const seen: number[] = [];
    const proxy = await proxyWith({ reply: (r) => void seen.push(r.rep) });
    const c = await RawClient.connect(proxy.port);
    c.write("050100 05090001 7f000001 1f90");
    await c.read(2);
    expect((await c.readToEnd()).toString("hex")).toBe("05070001000000000000");
    expect(seen).toEqual([0x07]);
    expect(proxy.observer.last("reply")).toMatchObject({ rep: 0x07, code: "UNKNOWN_COMMAND" });
    expect((await proxy.observer.lastClosed()).reason).toBe("protocol-error");
  });

  it("async hooks: the session waits, and bytes sent meanwhile are delivered after the connect", async () => {
    const target = await echo();
    const proxy = await proxyWith({
      open: () => later(undefined),
      auth: () => later(undefined),
      request: () => later(undefined, 100),
      reply: () => later(undefined),
    });
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.concat([hex("050100"), connect5(target.port), Buffer.from("early")]));
    // Pacing on purpose: the second write arrives while the hooks are still deciding.
    await sleep(30);
    c.write(Buffer.from("+later"));
    await c.read(12);
    expect((await c.read(11)).toString()).toBe("early+later");
  });

  it("a target that speaks first is not read until the reply is decided, and nothing is lost", async () => {
    const banner = await startServer((s) => s.write("220 hello from the target\r\n"));
    cleanups.push(() => banner.close());
    const proxy = await proxyWith({ reply: () => later(undefined, 100) });
    const c = await RawClient.connect(proxy.port);
    c.write(Buffer.concat([hex("050100"), connect5(banner.port)]));
    await c.read(2);
    expect((await c.read(10))[1]).toBe(0);
    expect((await c.read(27)).toString()).toBe("220 hello from the target\r\n");
  });

  it("a runner that throws or rejects counts as no opinion, and is logged", async () => {
    const target = await echo();
    const logs: Array<[LogLevel, string]> = [];
    const proxy = await proxyWith(
      {
        request: () => {
          throw new Error("boom");
        },
        reply: () => Promise.reject(new Error("bang")),
      },
      { logger: { log: (level: LogLevel, message: string) => logs.push([level, message]) } },
    );
    const c = await openTunnel(proxy.port, target.port);
    c.write(Buffer.from("ok"));
    expect((await c.read(2)).toString()).toBe("ok");
    expect(logs.map(([, m]) => m).join("\n")).toMatch(/request.*boom[\s\S]*reply.*bang/);
  });
});

describe("data hook", () => {
  it("replace, drop and ordering with async verdicts; chunk facts keep received and sent bytes", async () => {
    const target = await echo();
    const chunks: Array<{ received: string; sent?: string; direction: string }> = [];
    const proxy = await proxyWith(
      {
        wantsData: () => true,
        data: async (chunk) => {
          await sleep(chunk.data.includes("slow") ? 50 : 0);
          const text = chunk.data.toString();
          if (text.includes("drop")) return { drop: true };
          if (chunk.direction === "up") return { replace: Buffer.from(text.toUpperCase()) };
          return undefined;
        },
      },
      {},
    );
    proxy.observer.chunk = (fact) => {
      chunks.push({ direction: fact.direction, received: fact.received.toString(), ...(fact.sent ? { sent: Buffer.from(fact.sent).toString() } : {}) });
    };
    const c = await openTunnel(proxy.port, target.port);
    // TCP keeps no boundaries (a paused direction coalesces), so each chunk waits for the last.
    c.write(Buffer.from("slow-one"));
    expect((await c.read(8)).toString()).toBe("SLOW-ONE");
    c.write(Buffer.from("drop-me"));
    // "three" is written once "drop-me" has its verdict, so the two are never one read.
    await until(() => chunks.some((x) => x.received === "drop-me"), 3000, "the drop-me chunk fact");
    c.write(Buffer.from("three"));
    expect((await c.read(5)).toString()).toBe("THREE");
    expect(chunks.filter((x) => x.direction === "up")).toEqual([
      { direction: "up", received: "slow-one", sent: "SLOW-ONE" },
      { direction: "up", received: "drop-me", sent: "" },
      { direction: "up", received: "three", sent: "THREE" },
    ]);
  });

  it("close ends both sides gracefully; reset aborts both with RST", async () => {
    const target = await echo();
    const proxy = await proxyWith({
      wantsData: () => true,
      data: (chunk) => (chunk.data.toString() === "bye" ? { close: true } : chunk.data.toString() === "kill" ? { reset: true } : undefined),
    });
    const c = await openTunnel(proxy.port, target.port);
    c.write(Buffer.from("hi"));
    expect((await c.read(2)).toString()).toBe("hi");
    c.write(Buffer.from("bye"));
    expect((await c.readToEnd()).length).toBe(0);
    expect((await proxy.observer.lastClosed()).reason).toBe("closed-by-hook");

    const d = await openTunnel(proxy.port, target.port);
    d.write(Buffer.from("kill"));
    await d.readToEnd();
    expect(d.error?.code).toBe("ECONNRESET");
  });

  it("inject writes bytes toward either side through the session handle", async () => {
    const target = await echo();
    const proxy = await proxyWith({
      wantsData: () => true,
      data: (chunk, session) => {
        if (chunk.direction === "up") session.inject("down", Buffer.from("[injected]"));
        return undefined;
      },
    });
    const c = await openTunnel(proxy.port, target.port);
    c.write(Buffer.from("x"));
    expect((await c.read(11)).toString()).toBe("[injected]x");
  });
});

describe("EngineObserver", () => {
  it("reports opened, auth, request, reply and closed in order, with byte counts", async () => {
    const target = await echo();
    const proxy = await proxyWith({});
    const c = await openTunnel(proxy.port, target.port);
    c.write(Buffer.from("12345"));
    await c.read(5);
    c.end();
    await c.readToEnd();
    const closed = await proxy.observer.lastClosed();
    const kinds = proxy.observer.facts.filter((f) => f.fact.id === closed.id).map((f) => f.kind);
    expect(kinds).toEqual(["opened", "auth", "request", "reply", "closed"]);
    expect(closed).toMatchObject({ reason: "completed", bytesUpReceived: 5, bytesUpSent: 5, bytesDownReceived: 5, bytesDownSent: 5 });
  });

  it("a chunk observer that returns a promise pauses that direction until it settles", async () => {
    const target = await echo();
    const proxy = await proxyWith({});
    let release: () => void = () => {};
    let seen = 0;
    let held = false;
    proxy.observer.chunk = (fact) => {
      seen++;
      if (fact.direction === "up" && fact.received.toString() === "first") {
        held = true;
        return new Promise<void>((r) => (release = r));
      }
      return undefined;
    };
    const c = await openTunnel(proxy.port, target.port);
    c.write(Buffer.from("first"));
    expect((await c.read(5)).toString()).toBe("first");
    await until(() => held, 3000, "the observer holding the first chunk");
    c.write(Buffer.from("second"));
    // A negative check needs a duration: 100 ms in which "second" must not be read.
    await sleep(100);
    // Reading from the client is held: "second" has not been read yet.
    expect(c.pending.length).toBe(0);
    const before = seen;
    release();
    expect((await c.read(6)).toString()).toBe("second");
    expect(seen).toBeGreaterThan(before);
  });
});
