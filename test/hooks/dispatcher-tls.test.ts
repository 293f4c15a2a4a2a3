/**
 * onTlsClientHello and `ctx.session.tls` in the Dispatcher, driven through the engine's ports
 * directly (HookRunner calls and EngineObserver facts in the order the engine makes them): addon
 * order, first decision wins, wrong answers and throws reported at the addon's own file:line and
 * counted as no opinion, timeouts, async answers, the payload, and the session's tls facts as
 * later hooks (onData, onClose) see them. The engine's own tests drive it over sockets.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Addon, HookContext, TlsClientHello } from "../../src/hooks/api.js";
import { Dispatcher, type AddonInstance, type HookFailure } from "../../src/hooks/dispatcher.js";
import { addonLocation, loadAddon } from "../../src/hooks/loader.js";
import { ReplayMarks } from "../../src/hooks/replay-marks.js";
import type { SessionHandle, TlsFact, TlsHelloInfo } from "../../src/engine/index.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-tls-hook-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function instance(name: string, addon: Addon): AddonInstance {
  return { name, file: `/virtual/${name}.ts`, addon, options: {} };
}

function harness(addons: AddonInstance[], options: { hookTimeoutMs?: number; replays?: ReplayMarks } = {}) {
  const failures: HookFailure[] = [];
  const dispatcher = new Dispatcher(addons, {
    ...options,
    locate: addonLocation,
    events: { hookFailed: (f) => failures.push(f), tagged: () => {}, logged: () => {} },
  });
  return { dispatcher, failures };
}

const handle: SessionHandle = { id: 1, inject() {}, injectDatagram() {}, close() {} };

const client = { host: "127.0.0.1", port: 40001 };

/** A session as the engine starts one: open, then the CONNECT request (the tunnel is up when the ClientHello comes). */
async function opened(dispatcher: Dispatcher, id = 1): Promise<void> {
  await dispatcher.open({ id, client, local: { host: "127.0.0.1", port: 1080 } }, { ...handle, id });
  await dispatcher.request({ id, version: 5, command: "connect", destination: { type: "domain", host: "example.test", port: 443 }, client }, { ...handle, id });
}

function hello(id = 1, overrides: Partial<TlsHelloInfo> = {}): TlsHelloInfo {
  return { id, sni: "example.test", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3", "TLSv1.2"], target: { host: "example.test", port: 443 }, ...overrides };
}

function fact(id: number, intercepted: boolean, extra: Partial<TlsFact> = {}): TlsFact {
  return {
    id,
    at: Date.now(),
    intercepted,
    decidedBy: "hook",
    hello: { sni: "example.test", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3", "TLSv1.2"] },
    ...(intercepted
      ? {
          client: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "h2" },
          upstream: { version: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256", alpn: "h2" },
        }
      : {}),
    ...extra,
  };
}

function closed(dispatcher: Dispatcher, id = 1): void {
  dispatcher.observer.sessionClosed({
    id,
    at: Date.now(),
    reason: "completed",
    bytesUpReceived: 0,
    bytesUpSent: 0,
    bytesDownReceived: 0,
    bytesDownSent: 0,
  });
}

describe("Dispatcher: onTlsClientHello", () => {
  it("asks addons in order; the first decision wins and later addons are not asked; undefined passes on", async () => {
    const calls: string[] = [];
    const { dispatcher, failures } = harness([
      instance("a", { onTlsClientHello: (h) => void calls.push(`a:${h.sni}`) }),
      instance("b", { onTlsClientHello: async (h) => (calls.push(`b:${h.sni}`), h.sni === "pinned.test" ? { passthrough: true } : undefined) }),
      instance("c", { onTlsClientHello: () => (calls.push("c"), { intercept: true }) }),
      instance("d", { onTlsClientHello: () => (calls.push("d"), { passthrough: true }) }),
    ]);
    await opened(dispatcher, 1);
    await opened(dispatcher, 2);
    expect(await dispatcher.tlsClientHello(hello(1, { sni: "pinned.test" }), handle)).toEqual({ passthrough: true });
    expect(calls).toEqual(["a:pinned.test", "b:pinned.test"]);
    calls.length = 0;
    expect(await dispatcher.tlsClientHello(hello(2), handle)).toEqual({ intercept: true });
    expect(calls).toEqual(["a:example.test", "b:example.test", "c"]);
    expect(failures).toEqual([]);
  });

  it("stays synchronous while every answer is, and answers undefined when no addon has the hook", async () => {
    const sync = harness([instance("s", { onTlsClientHello: () => ({ intercept: true }) })]).dispatcher;
    await opened(sync);
    expect(sync.tlsClientHello(hello(), handle)).toEqual({ intercept: true });
    const none = harness([instance("r", { onRequest: () => undefined })]).dispatcher;
    await opened(none);
    expect(none.tlsClientHello(hello(), handle)).toBeUndefined();
  });

  it("gives the hello, the target and the session; changing what it was given changes nothing of the engine's", async () => {
    let seen: TlsClientHello | undefined;
    let session: HookContext["session"] | undefined;
    const { dispatcher } = harness([
      instance("look", {
        onTlsClientHello: (h, ctx) => {
          seen = structuredClone(h);
          session = ctx.session;
          (h.alpn as string[]).push("evil");
          (h.target as { host: string }).host = "elsewhere";
        },
      }),
    ]);
    await opened(dispatcher);
    const info = hello(1, { sni: undefined, alpn: ["http/1.1"], target: { host: "10.9.8.7", port: 8443 } });
    delete (info as { sni?: string }).sni;
    expect(await dispatcher.tlsClientHello(info, handle)).toBeUndefined();
    expect(seen).toEqual({ alpn: ["http/1.1"], versions: ["TLSv1.3", "TLSv1.2"], target: { host: "10.9.8.7", port: 8443 } });
    expect(info.alpn).toEqual(["http/1.1"]);
    expect(info.target.host).toBe("10.9.8.7");
    expect(session).toMatchObject({ id: 1, client, version: 5, command: "connect", target: { host: "example.test", port: 443 } });
    // Not decided yet while the hook runs.
    expect(session?.tls).toBeUndefined();
  });

  it("wrong answers are reported as invalid at the hook's file:line, throws at the throw's; both count as no opinion", async () => {
    const file = join(dir, "wrong.ts");
    writeFileSync(
      file,
      [
        'import type { Addon } from "socksmith/addon";',
        "",
        "export default {",
        "  onTlsClientHello() {",
        "    const answer = (globalThis as { __tlsAnswer?: unknown }).__tlsAnswer;",
        '    if (answer === "throw") throw new Error("boom");',
        "    return answer as never;",
        "  },",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const loaded = await loadAddon(file);
    const next: string[] = [];
    const { dispatcher, failures } = harness([
      { name: loaded.name, file: loaded.file, addon: loaded.addon, options: loaded.options },
      instance("next", { onTlsClientHello: (h) => (next.push(h.sni ?? "-"), { passthrough: true }) }),
    ]);
    const wrong: unknown[] = [
      { intercept: false },
      { passthrough: "yes" },
      { passthrough: 1 },
      { intercept: true, passthrough: true },
      { intercept: true, extra: 1 },
      { allow: true },
      {},
      "intercept",
      true,
      [{ intercept: true }],
      Promise.resolve({ intercept: "true" }),
    ];
    const global = globalThis as { __tlsAnswer?: unknown };
    try {
      for (const [i, answer] of wrong.entries()) {
        global.__tlsAnswer = answer;
        await opened(dispatcher, i + 1);
        expect(await dispatcher.tlsClientHello(hello(i + 1, { sni: `s${i}` }), handle)).toEqual({ passthrough: true });
      }
      global.__tlsAnswer = "throw";
      await opened(dispatcher, 100);
      expect(await dispatcher.tlsClientHello(hello(100, { sni: "thrown" }), handle)).toEqual({ passthrough: true });
      global.__tlsAnswer = { intercept: true };
      await opened(dispatcher, 101);
      expect(await dispatcher.tlsClientHello(hello(101), handle)).toEqual({ intercept: true });
    } finally {
      delete global.__tlsAnswer;
    }
    expect(next).toEqual([...wrong.map((_a, i) => `s${i}`), "thrown"]);
    const invalid = failures.filter((f) => f.kind === "invalid");
    expect(invalid).toHaveLength(wrong.length);
    for (const f of invalid) expect(f).toMatchObject({ addon: "wrong", hook: "onTlsClientHello", location: `${file}:4:3` });
    expect(invalid.map((f) => f.session)).toEqual(wrong.map((_a, i) => i + 1));
    expect(invalid[0]!.message).toMatch(/^answered \{"intercept":false\}: intercept must be true/);
    expect(invalid[3]!.message).toMatch(/one of intercept, passthrough, not several/);
    expect(invalid[4]!.message).toMatch(/unknown field "extra"/);
    const thrown = failures.filter((f) => f.kind === "threw");
    expect(thrown).toEqual([
      expect.objectContaining({ hook: "onTlsClientHello", session: 100, message: "boom", location: expect.stringMatching(/wrong\.ts:6:\d+$/) }),
    ]);
    expect(failures).toHaveLength(wrong.length + 1);
  });

  it("a hook that does not answer in time is reported as timed out and counts as no opinion", async () => {
    const { dispatcher, failures } = harness(
      [
        instance("slow", { onTlsClientHello: () => new Promise<never>(() => {}) }),
        instance("rejects", { onTlsClientHello: () => Promise.reject(new Error("no")) }),
        instance("next", { onTlsClientHello: () => ({ intercept: true }) }),
      ],
      { hookTimeoutMs: 50 },
    );
    await opened(dispatcher);
    expect(await dispatcher.tlsClientHello(hello(), handle)).toEqual({ intercept: true });
    expect(failures.map((f) => `${f.addon}:${f.hook}:${f.kind}:${f.session}`)).toEqual([
      "slow:onTlsClientHello:timed-out:1",
      "rejects:onTlsClientHello:rejected:1",
    ]);
    expect(failures[0]!.message).toBe("no answer within 50 ms");
  });

  it("replayed sessions are marked for the hook like for onRequest", async () => {
    const replays = new ReplayMarks();
    const seen: string[] = [];
    const { dispatcher } = harness(
      [instance("r", { onTlsClientHello: (_h, ctx) => void seen.push(`${JSON.stringify(ctx.session.replay)}:${ctx.replayed}`) })],
      {
        replays,
      },
    );
    await opened(dispatcher, 1);
    replays.servedFrom(1, 42);
    await dispatcher.tlsClientHello(hello(1), handle);
    await opened(dispatcher, 2);
    await dispatcher.tlsClientHello(hello(2), handle);
    expect(seen).toEqual(['{"kind":"server","of":42}:true', "undefined:false"]);
  });
});

describe("Dispatcher: ctx.session.tls", () => {
  it("is set from the tls fact: the client side's parameters when intercepted, only the SNI when passed through; seen by onData and onClose", async () => {
    const seen: string[] = [];
    const { dispatcher } = harness([
      instance("watch", {
        onRequest: (_r, ctx) => void seen.push(`request:${ctx.session.id}:${JSON.stringify(ctx.session.tls)}`),
        onTlsClientHello: (_h, ctx) => void seen.push(`hello:${ctx.session.id}:${JSON.stringify(ctx.session.tls)}`),
        onData: (_c, ctx) => void seen.push(`data:${ctx.session.id}:${JSON.stringify(ctx.session.tls)}`),
        onClose: (_s, ctx) => void seen.push(`close:${ctx.session.id}:${JSON.stringify(ctx.session.tls)}`),
      }),
    ]);
    for (const id of [1, 2, 3]) {
      await opened(dispatcher, id);
      await dispatcher.tlsClientHello(hello(id), { ...handle, id });
    }
    dispatcher.observer.tls!(fact(1, true));
    dispatcher.observer.tls!(fact(2, false, { decidedBy: "filter" }));
    dispatcher.observer.tls!(
      fact(3, true, { client: { version: "TLSv1.2", cipher: "ECDHE-ECDSA-AES256-GCM-SHA384" }, hello: { alpn: [], versions: ["TLSv1.2"] } }),
    );
    for (const id of [1, 2, 3]) {
      await dispatcher.data({ id, direction: "up", seq: 0, data: Buffer.from("x") }, { ...handle, id });
      closed(dispatcher, id);
    }
    const intercepted = '{"sni":"example.test","alpn":"h2","version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256","intercepted":true}';
    const passed = '{"sni":"example.test","intercepted":false}';
    const bare = '{"version":"TLSv1.2","cipher":"ECDHE-ECDSA-AES256-GCM-SHA384","intercepted":true}';
    expect(seen).toEqual([
      "request:1:undefined",
      "hello:1:undefined",
      "request:2:undefined",
      "hello:2:undefined",
      "request:3:undefined",
      "hello:3:undefined",
      `data:1:${intercepted}`,
      `close:1:${intercepted}`,
      `data:2:${passed}`,
      `close:2:${passed}`,
      `data:3:${bare}`,
      `close:3:${bare}`,
    ]);
  });

  it("a failed interception leaves no version or cipher for onClose; a session without a tls fact has none", async () => {
    const seen: unknown[] = [];
    const { dispatcher } = harness([instance("watch", { onClose: (_s, ctx) => void seen.push(ctx.session.tls) })]);
    await opened(dispatcher, 1);
    await opened(dispatcher, 2);
    const failure = { side: "upstream" as const, code: "upstream-certificate", message: "the certificate of example.test has expired" };
    dispatcher.observer.tls!({ ...fact(1, false), failure });
    dispatcher.observer.tls!(fact(7, true)); // a session the dispatcher does not know: ignored
    closed(dispatcher, 1);
    closed(dispatcher, 2);
    expect(seen).toEqual([{ sni: "example.test", intercepted: false }, undefined]);
  });
});
