/**
 * Malformed hook answers over a real engine and real sockets (issue 11, part 1): each answer the
 * trust review reproduced — answers that used to throw out of the engine and end the process, or
 * that were silently misread — is now a hook failure of kind "invalid", and the session goes on as
 * if the hook had answered undefined. Also: `ctx` helpers given bad arguments (or called from a
 * timer after the hook returned) report and do nothing; and a loaded addon's invalid answers and
 * timeouts name the hook's own file:line.
 */
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Addon } from "../../src/hooks/api.js";
import { Dispatcher, type AddonInstance, type HookFailure } from "../../src/hooks/dispatcher.js";
import { loadAddon } from "../../src/hooks/loader.js";
import { combineObservers } from "../../src/engine/index.js";
import { decodeUdpDatagram, encodeUdpDatagram } from "../../src/engine/codec/udp.js";
import { RawClient, RecordingObserver, closedPort, connect5, hex, openTunnel, startEchoServer, until, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();
const dir = mkdtempSync(join(tmpdir(), "socksmith-answers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function instance(name: string, addon: Addon): AddonInstance {
  return { name, file: `/virtual/${name}.ts`, addon, options: {} };
}

async function withAddons(addons: AddonInstance[], hookTimeoutMs = 5000) {
  const failures: HookFailure[] = [];
  const dispatcher = new Dispatcher(addons, { hookTimeoutMs, events: { hookFailed: (f) => failures.push(f), tagged: () => {}, logged: () => {} } });
  const recorder = new RecordingObserver();
  const p = await proxy({ hooks: dispatcher, observer: combineObservers([recorder, dispatcher.observer]) });
  return { port: p.port, failures, recorder };
}

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

/** A CONNECT through the proxy; the reply's REP, and whether an echo round trip works. */
async function connect(port: number, targetPort: number): Promise<{ rep: number; echoes: boolean }> {
  const c = await RawClient.connect(port);
  c.write(Buffer.concat([hex("050100"), connect5(targetPort)]));
  await c.read(2);
  const reply = await c.read(10);
  if (reply[1] !== 0) return { rep: reply[1]!, echoes: false };
  c.write(Buffer.from("ping"));
  const back = await c.read(4);
  c.end();
  return { rep: 0, echoes: back.toString() === "ping" };
}

/** An answer that is the same whatever the hook is asked (typed loosely on purpose). */
const answers = (value: unknown) => () => value as never;

describe("malformed hook answers are hook failures, never crashes or silent misreads", () => {
  it("onRequest: each reproduced answer counts as no opinion (the request is allowed) and is reported", async () => {
    const target = await echo();
    const bad: unknown[] = [
      {},
      { block: true },
      { redirect: null },
      { redirect: { port: -1 } },
      { redirect: { host: 5 } },
      { deny: 0 },
      { deny: "x" },
      { deny: "2" },
      { deny: 999 },
      { allow: false },
    ];
    for (const answer of bad) {
      const { port, failures } = await withAddons([instance("bad", { onRequest: answers(answer) })]);
      expect(await connect(port, target.port), JSON.stringify(answer)).toEqual({ rep: 0, echoes: true });
      expect(failures, JSON.stringify(answer)).toEqual([
        expect.objectContaining({ addon: "bad", hook: "onRequest", kind: "invalid", session: expect.any(Number) }),
      ]);
      expect(failures[0]!.message).toMatch(/^answered /);
    }
  });

  it("onRequest: after an invalid answer the next addon decides", async () => {
    const target = await echo();
    const { port, failures } = await withAddons([instance("bad", { onRequest: answers({ deny: "2" }) }), instance("good", { onRequest: () => ({ deny: 5 }) })]);
    expect(await connect(port, target.port)).toEqual({ rep: 5, echoes: false });
    expect(failures.map((f) => f.kind)).toEqual(["invalid"]);
  });

  it("onReply: { rep: 0 } cannot turn a refused connect into success; { rep: 'x' } changes nothing", async () => {
    const target = await echo();
    const refused = await closedPort();
    const zero = await withAddons([instance("zero", { onReply: answers({ rep: 0 }) })]);
    expect(await connect(zero.port, refused)).toEqual({ rep: 5, echoes: false });
    expect(zero.failures.map((f) => `${f.hook}:${f.kind}`)).toEqual(["onReply:invalid"]);
    expect(await connect(zero.port, target.port)).toEqual({ rep: 0, echoes: true });

    const text = await withAddons([instance("text", { onReply: answers({ rep: "x" }) })]);
    expect(await connect(text.port, target.port)).toEqual({ rep: 0, echoes: true });
    expect(await connect(text.port, refused)).toEqual({ rep: 5, echoes: false });
    expect(text.failures.map((f) => f.kind)).toEqual(["invalid", "invalid"]);
  });

  it("onData: { replace: null }, { replace: 123 } and { foo: 1 } pass the chunk on unchanged, and the next addon still sees it", async () => {
    const target = await echo();
    for (const answer of [{ replace: null }, { replace: 123 }, { foo: 1 }, "garbage", { drop: "yes" }]) {
      const seen: string[] = [];
      const { port, failures } = await withAddons([
        instance("bad", { onData: answers(answer) }),
        instance("upper", {
          onData: (c) => (
            seen.push(Buffer.from(c.data).toString()), c.direction === "up" ? { replace: Buffer.from(c.data).toString().toUpperCase() } : undefined
          ),
        }),
      ]);
      const c = await openTunnel(port, target.port);
      c.write(Buffer.from("hello"));
      expect((await c.read(5)).toString(), JSON.stringify(answer)).toBe("HELLO");
      c.end();
      expect(seen).toEqual(["hello", "HELLO"]);
      expect(failures.map((f) => `${f.hook}:${f.kind}`)).toEqual(["onData:invalid", "onData:invalid"]);
    }
  });

  it("onDatagram: { replace: 123 }, { redirect: { port: -1 } } and 'garbage' relay the datagram unchanged", async () => {
    const peer = createSocket("udp4");
    cleanups.push(() => void peer.close());
    peer.on("message", (msg, from) => peer.send(Buffer.concat([Buffer.from("re:"), msg]), from.port, from.address));
    await new Promise<void>((resolve) => peer.bind(0, "127.0.0.1", resolve));
    const peerPort = peer.address().port;
    for (const answer of [{ replace: 123 }, { redirect: { port: -1 } }, "garbage"]) {
      const { port, failures } = await withAddons([instance("bad", { onDatagram: answers(answer) })]);
      const control = await RawClient.connect(port);
      control.write(Buffer.concat([hex("050100"), hex("05 03 00 01 00000000 0000")]));
      await control.read(2);
      const relayPort = (await control.read(10)).readUInt16BE(8);
      const udp = createSocket("udp4");
      cleanups.push(() => void udp.close());
      await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
      const answer1 = new Promise<Buffer>((resolve) => udp.once("message", resolve));
      udp.send(encodeUdpDatagram("127.0.0.1", peerPort, Buffer.from("q1")), relayPort, "127.0.0.1");
      const decoded = decodeUdpDatagram(await answer1);
      expect(decoded.kind).toBe("ok");
      if (decoded.kind === "ok") expect(decoded.value.data.toString(), JSON.stringify(answer)).toBe("re:q1");
      expect(failures.map((f) => `${f.addon}.${f.hook}:${f.kind}`)).toEqual(["bad.onDatagram:invalid", "bad.onDatagram:invalid"]);
      control.end();
    }
  });

  it("thenables that misbehave: then throws, settles twice, resolves to a thenable; each is reported once and the session goes on", async () => {
    const target = await echo();
    const cases: Array<[string, () => unknown, string]> = [
      [
        "then throws",
        () => ({
          then: () => {
            throw new Error("then broke");
          },
        }),
        "threw",
      ],
      [
        "then getter throws",
        () =>
          Object.defineProperty({}, "then", {
            get: () => {
              throw new Error("no then");
            },
          }),
        "invalid",
      ],
      ["settles twice", () => ({ then: (ok: (v: unknown) => void, no: (e: unknown) => void) => (ok({ deny: 5 }), no(new Error("late"))) }), ""],
      ["resolves to a thenable", () => ({ then: (ok: (v: unknown) => void) => ok({ then: () => {} }) }), "invalid"],
    ];
    for (const [name, answer, kind] of cases) {
      const { port, failures } = await withAddons([instance("odd", { onRequest: answer as never })], 200);
      const expected = name === "settles twice" ? { rep: 5, echoes: false } : { rep: 0, echoes: true };
      expect(await connect(port, target.port), name).toEqual(expected);
      expect(
        failures.map((f) => f.kind),
        name,
      ).toEqual(kind === "" ? [] : [kind]);
    }
  });

  it("onAuth: {} is no opinion (without --auth everyone gets in), not a rejection", async () => {
    const target = await echo();
    const { port, failures } = await withAddons([instance("auth", { onAuth: answers({}) })]);
    expect(await connect(port, target.port)).toEqual({ rep: 0, echoes: true });
    expect(failures.map((f) => `${f.hook}:${f.kind}`)).toEqual(["onAuth:invalid"]);
  });

  it("ctx helpers: bad arguments, during the hook or from a timer after it, are reported and ignored", async () => {
    const target = await echo();
    const { port, failures } = await withAddons([
      instance("helpers", {
        onRequest: (_r, ctx) => {
          (ctx.inject as (d: unknown, b: unknown) => void)("sideways", "x");
          (ctx.inject as (d: unknown, b: unknown) => void)("down", 5);
          setTimeout(() => (ctx.inject as (d: unknown, b: unknown) => void)("up", { not: "bytes" }), 5);
          setTimeout(() => (ctx.injectDatagram as (p: unknown, b: unknown) => void)("127.0.0.1:53", "x"), 5);
          // Not text: stored as a description of the value, never a throw.
          ctx.tag("k", {
            toString: () => {
              throw new Error("no text");
            },
          } as never);
          return undefined;
        },
      }),
    ]);
    expect(await connect(port, target.port)).toEqual({ rep: 0, echoes: true });
    await until(() => failures.length >= 4, 2000, "the four invalid-call failures");
    expect(failures.map((f) => f.message)).toEqual([
      expect.stringMatching(/^ctx\.inject: direction must be "up" or "down", got "sideways" \(ignored\)/),
      expect.stringMatching(/^ctx\.inject: data must be a Uint8Array \(a Buffer\) or a string, got 5/),
      expect.stringMatching(/^ctx\.inject: data must be/),
      expect.stringMatching(/^ctx\.injectDatagram: peer must be/),
    ]);
    expect(new Set(failures.map((f) => `${f.hook}:${f.kind}`))).toEqual(new Set(["onRequest:invalid"]));
  });

  it("a loaded addon's invalid answers and timeouts name the hook's own file:line", async () => {
    const file = join(dir, "wrong.ts");
    writeFileSync(
      file,
      [
        'import type { Addon } from "socksmith/addon";',
        "",
        "export default {",
        "  onRequest(request) {",
        "    return { deny: String(2) } as never;",
        "  },",
        "  onData: () => new Promise(() => {}),",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const loaded = await loadAddon(file);
    const target = await echo();
    const { port, failures } = await withAddons([{ name: loaded.name, file: loaded.file, addon: loaded.addon, options: loaded.options }], 100);
    const c = await openTunnel(port, target.port);
    c.write(Buffer.from("x"));
    await until(() => failures.some((f) => f.kind === "invalid") && failures.some((f) => f.kind === "timed-out"), 3000, "the invalid and timed-out failures");
    c.destroy();
    expect(failures.find((f) => f.kind === "invalid")).toMatchObject({ hook: "onRequest", location: `${file}:4:3` });
    expect(failures.find((f) => f.kind === "timed-out")).toMatchObject({ hook: "onData", location: `${file}:7:11` });
  });
});
