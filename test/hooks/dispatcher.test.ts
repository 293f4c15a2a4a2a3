/**
 * The dispatcher over a real engine and real sockets, with addons given as objects (the loader
 * has its own tests): ordering, first-decision-wins, sequential changes, isolation of throws,
 * rejections and timeouts, tags/logs/inject, onClose, onLoad/onDispose and atomic replacement.
 */
import { describe, expect, it } from "vitest";
import type { Addon } from "../../src/hooks/api.js";
import { Dispatcher, type AddonInstance, type HookFailure } from "../../src/hooks/dispatcher.js";
import { combineObservers } from "../../src/engine/index.js";
import { RawClient, RecordingObserver, connect5, hex, openTunnel, sleep, startEchoServer, startServer, until, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();

function instance(name: string, addon: Addon, options: Record<string, unknown> = {}): AddonInstance {
  return { name, file: `/virtual/${name}.ts`, addon, options };
}

function harness(addons: AddonInstance[], hookTimeoutMs = 5000) {
  const failures: HookFailure[] = [];
  const tags: string[] = [];
  const logs: string[] = [];
  const dispatcher = new Dispatcher(addons, {
    hookTimeoutMs,
    events: {
      hookFailed: (f) => failures.push(f),
      tagged: (s, a, k, v) => tags.push(`${s}:${a}:${k}=${v}`),
      logged: (s, a, m) => logs.push(`${s ?? "-"}:${a}:${m}`),
    },
  });
  return { dispatcher, failures, tags, logs };
}

async function withDispatcher(addons: AddonInstance[], hookTimeoutMs = 5000) {
  const h = harness(addons, hookTimeoutMs);
  const recorder = new RecordingObserver();
  const p = await proxy({ hooks: h.dispatcher, observer: combineObservers([recorder, h.dispatcher.observer]) });
  return { ...h, port: p.port, recorder };
}

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

describe("Dispatcher over the engine", () => {
  it("decisions: the first addon that decides wins, in -s order; undefined passes on", async () => {
    const target = await echo();
    const calls: string[] = [];
    const { port } = await withDispatcher([
      instance("a", { onRequest: (r) => void calls.push(`a:${r.port}`) }),
      instance("b", { onRequest: async (r) => (calls.push(`b:${r.port}`), r.port === 1 ? { deny: 2 } : undefined) }),
      instance("c", { onRequest: () => (calls.push("c"), { deny: 5 }) }),
    ]);
    const denied = await RawClient.connect(port);
    denied.write(Buffer.concat([hex("050100"), connect5(1)]));
    await denied.read(2);
    expect((await denied.readToEnd()).toString("hex")).toBe("05020001000000000000");
    expect(calls).toEqual(["a:1", "b:1"]);

    calls.length = 0;
    const lastWord = await RawClient.connect(port);
    lastWord.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    await lastWord.read(2);
    expect((await lastWord.readToEnd())[1]).toBe(5);
    expect(calls).toEqual([`a:${target.port}`, `b:${target.port}`, "c"]);
  });

  it("changes: onData addons see each other's output; onReply changes reach the client", async () => {
    const target = await echo();
    const { port } = await withDispatcher([
      instance("upper", { onData: (c) => (c.direction === "up" ? { replace: Buffer.from(c.data).toString().toUpperCase() } : undefined) }),
      instance("exclaim", { onData: (c) => (c.direction === "up" ? { replace: Buffer.concat([Buffer.from(c.data), Buffer.from("!")]) } : undefined) }),
      instance("bound", { onReply: (r) => (r.rep === 0 ? { bound: { host: "10.0.0.1", port: 7 } } : undefined) }),
    ]);
    const c = await RawClient.connect(port);
    c.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    await c.read(2);
    expect((await c.read(10)).toString("hex")).toBe("050000010a0000010007");
    c.write(Buffer.from("hi"));
    expect((await c.read(3)).toString()).toBe("HI!");
  });

  it("isolation: a throw, a rejection and a timeout are reported and count as no opinion", async () => {
    const target = await echo();
    const { port, failures } = await withDispatcher(
      [
        instance("thrower", {
          onRequest: () => {
            throw new Error("boom");
          },
        }),
        instance("rejecter", { onReply: () => Promise.reject(new Error("nope")) }),
        instance("sleeper", { onData: () => new Promise(() => {}) }),
      ],
      100,
    );
    const c = await openTunnel(port, target.port);
    c.write(Buffer.from("still works"));
    expect((await c.read(11)).toString()).toBe("still works");
    expect(failures.map((f) => `${f.addon}.${f.hook}:${f.kind}`)).toEqual(
      expect.arrayContaining(["thrower.onRequest:threw", "rejecter.onReply:rejected", "sleeper.onData:timed-out"]),
    );
    expect(failures.find((f) => f.kind === "threw")).toMatchObject({ message: "boom", session: expect.any(Number) });
  });

  it("context: tags, logs, inject and onClose with a summary", async () => {
    const target = await echo();
    const closes: string[] = [];
    // Collected in the hook, asserted in the test body: the dispatcher reports a hook's throw as a failure, not to vitest.
    const destSeen: string[] = [];
    const { port, tags, logs } = await withDispatcher([
      instance("ctx", {
        onRequest: (r, ctx) => {
          ctx.tag("dest", `${r.host}:${r.port}`);
          ctx.log(`request ${r.command}`);
          return undefined;
        },
        onData: (c, ctx) => {
          if (c.direction === "up") ctx.inject("down", "[hello]");
          destSeen.push(`${c.direction}:${ctx.session.tags.dest}`);
          return undefined;
        },
        onClose: (s, ctx) => void closes.push(`${s.reason}:${s.bytesUp}:${ctx.session.target?.port}`),
      }),
    ]);
    const c = await openTunnel(port, target.port);
    c.write(Buffer.from("x"));
    expect((await c.read(8)).toString()).toBe("[hello]x");
    c.end();
    await c.readToEnd();
    await until(() => closes.length > 0, 5000, "onClose");
    expect(destSeen).toEqual([`up:127.0.0.1:${target.port}`, `down:127.0.0.1:${target.port}`]);
    expect(tags).toEqual([expect.stringMatching(new RegExp(`^\\d+:ctx:dest=127.0.0.1:${target.port}$`))]);
    expect(logs).toEqual([expect.stringMatching(/^\d+:ctx:request connect$/)]);
    expect(closes).toEqual([`completed:1:${target.port}`]);
  });

  it("a slow onData hook holds its sender back: memory stays bounded on a fast sender", async () => {
    let received = 0;
    const sink = await startServer((s) => s.on("data", (d: Buffer) => (received += d.length)));
    cleanups.push(() => sink.close());
    // How many calls are pending at once, and how many bytes their answers let through.
    let pending = 0;
    let mostPending = 0;
    let answered = 0;
    const slow = async (c: { data: Uint8Array }) => {
      mostPending = Math.max(mostPending, ++pending);
      await sleep(20);
      pending--;
      answered += c.data.length;
      return undefined;
    };
    const { port } = await withDispatcher([instance("slow", { onData: slow })]);
    const c = await openTunnel(port, sink.port);
    const chunk = Buffer.alloc(64 * 1024);
    let handedOff = 0;
    let heldBack = 0;
    // Write for 400 ms, waiting only when the socket says so. Unthrottled, loopback takes
    // gigabytes in that time; held back by a 20 ms hook per read, only socket buffers and the
    // reads the hook let through (≤ 20 reads of ≤ 1 MiB) can be taken.
    const until = Date.now() + 400;
    while (Date.now() < until) {
      handedOff += chunk.length;
      if (!c.socket.write(chunk)) {
        heldBack++;
        await Promise.race([new Promise((r) => c.socket.once("drain", r)), sleep(until - Date.now())]);
      }
    }
    // The sender had to wait for the proxy (its buffer full), not just at the end of the loop.
    expect(heldBack).toBeGreaterThan(0);
    expect(handedOff).toBeLessThan(64 * 1024 * 1024);
    // The relay reads no more while a chunk's hook is pending (one call at a time holds at most one
    // read), and nothing reaches the target before its hook has answered.
    expect(mostPending).toBe(1);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(answered);
  });

  it("onLoad/onDispose and replace: the new version answers from the next call; a failing onLoad keeps the old", async () => {
    const target = await echo();
    const events: string[] = [];
    const v1 = instance("gate", { onLoad: () => void events.push("load v1"), onDispose: () => void events.push("dispose v1"), onRequest: () => ({ deny: 2 }) });
    const { dispatcher, port, failures } = await withDispatcher([v1]);
    await dispatcher.start();
    const first = await RawClient.connect(port);
    first.write(Buffer.concat([hex("050100"), connect5(target.port)]));
    await first.read(2);
    expect((await first.readToEnd())[1]).toBe(2);

    const broken = instance("gate", {
      onLoad: () => {
        throw new Error("bad v2");
      },
      onRequest: () => ({ allow: true }),
    });
    expect(await dispatcher.replace(0, broken)).toBe(false);
    expect(failures.at(-1)).toMatchObject({ hook: "onLoad", message: "bad v2" });

    const v3 = instance("gate", { onLoad: () => void events.push("load v3"), onRequest: () => ({ allow: true }) });
    expect(await dispatcher.replace(0, v3)).toBe(true);
    const second = await openTunnel(port, target.port);
    second.write(Buffer.from("ok"));
    expect((await second.read(2)).toString()).toBe("ok");
    expect(events).toEqual(["load v1", "load v3", "dispose v1"]);
  });

  it("a served session greets first: inject from onRequest follows the success reply; ctx.injectDatagram answers UDP locally", async () => {
    const { port } = await withDispatcher([
      instance("greeter", {
        onRequest: (r, ctx) => {
          if (r.command !== "connect") return undefined;
          ctx.inject("down", "220 hello\r\n");
          return { serve: true };
        },
        onData: (c, ctx) => void ctx.inject("down", `you said ${Buffer.from(c.data).toString()}`),
        onDatagram: (d, ctx) => {
          if (d.direction !== "up") return undefined;
          ctx.injectDatagram({ host: "192.0.2.1", port: 53 }, `answer to ${Buffer.from(d.data).toString()}`);
          return { drop: true };
        },
      }),
    ]);
    const c = await openTunnel(port, 9);
    expect((await c.read(11)).toString()).toBe("220 hello\r\n");
    c.write(Buffer.from("hi"));
    expect((await c.read(11)).toString()).toBe("you said hi");

    const { createSocket } = await import("node:dgram");
    const { decodeUdpDatagram, encodeUdpDatagram } = await import("../../src/engine/codec/udp.js");
    const control = await RawClient.connect(port);
    control.write(Buffer.concat([hex("050100"), hex("05 03 00 01 00000000 0000")]));
    await control.read(2);
    const reply = await control.read(10);
    const relayPort = reply.readUInt16BE(8);
    const udp = createSocket("udp4");
    cleanups.push(() => void udp.close());
    udp.bind(0, "127.0.0.1");
    const answer = new Promise<Buffer>((resolve) => udp.once("message", resolve));
    udp.send(encodeUdpDatagram("198.51.100.7", 53, Buffer.from("q1")), relayPort, "127.0.0.1");
    const decoded = decodeUdpDatagram(await answer);
    expect(decoded.kind).toBe("ok");
    if (decoded.kind !== "ok") return;
    expect(decoded.value.address).toMatchObject({ host: "192.0.2.1", port: 53 });
    expect(decoded.value.data.toString()).toBe("answer to q1");
  });

  it("an onData hook may keep the chunks it sees: after 8 MiB they hold exactly the bytes sent", async () => {
    const target = await echo();
    const kept: Buffer[] = [];
    const { port } = await withDispatcher([instance("keeper", { onData: (c) => void (c.direction === "up" && kept.push(c.data as Buffer)) })]);
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 2654435761) >>> 24;
    const c = await openTunnel(port, target.port);
    c.write(payload);
    // The echo comes back through the same relay; once it is all here, every chunk was seen.
    const echoed = await c.read(payload.length, 20_000);
    expect(echoed.equals(payload)).toBe(true);
    expect(Buffer.concat(kept).equals(payload)).toBe(true);
  });

  it("without onData or onDatagram addons the engine keeps its fast paths", () => {
    const { dispatcher } = harness([instance("r", { onRequest: () => undefined })]);
    expect(dispatcher.wantsData()).toBe(false);
    expect(dispatcher.wantsDatagrams()).toBe(false);
  });
});
