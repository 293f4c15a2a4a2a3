/**
 * onRequest's `{ upstream }` answer in the Dispatcher: through the ports (the engine's route, parsed
 * once; first decision wins; a bad URL reported at the hook's file:line with parseUpstream's reason and
 * never the password, counted as no opinion) and over real sockets, with a second in-process engine
 * as the upstream (per-host routes from an addon file, "direct" overruling the engine's default
 * route, a bad answer going on as undefined).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Addon, ReplyInfo } from "../../src/hooks/api.js";
import { Dispatcher, type AddonInstance, type HookFailure } from "../../src/hooks/dispatcher.js";
import { addonLocation, loadAddon } from "../../src/hooks/loader.js";
import { combineObservers, parseUpstream, type Route, type SessionHandle } from "../../src/engine/index.js";
import { HOST, RawClient, RecordingObserver, closedPort, fakeLookup, hex, startEchoServer, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();
const dir = mkdtempSync(join(tmpdir(), "socksmith-upstream-hook-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function instance(name: string, addon: Addon): AddonInstance {
  return { name, file: `/virtual/${name}.ts`, addon, options: {} };
}

function harness(addons: AddonInstance[]) {
  const failures: HookFailure[] = [];
  const dispatcher = new Dispatcher(addons, { locate: addonLocation, events: { hookFailed: (f) => failures.push(f), tagged: () => {}, logged: () => {} } });
  return { dispatcher, failures };
}

const handle: SessionHandle = { id: 1, inject() {}, injectDatagram() {}, close() {} };
const client = { host: "127.0.0.1", port: 40001 };

function ask(dispatcher: Dispatcher, host = "example.test", command: "connect" | "bind" | "udp" = "connect") {
  return dispatcher.request({ id: 1, version: 5, command, destination: { type: "domain", host, port: 443 }, client }, handle);
}

describe("onRequest { upstream } through the ports", () => {
  it('a URL, a chain and "direct" become the engine\'s route; the first addon that decides wins', async () => {
    let laterAsked = 0;
    const later = instance("later", { onRequest: () => (laterAsked++, { deny: 2 }) });
    const one = harness([instance("one", { onRequest: () => ({ upstream: "socks5h://u:p@proxy.test:9050" }) }), later]);
    expect(await ask(one.dispatcher)).toEqual({ upstream: [{ scheme: "socks5h", host: "proxy.test", port: 9050, user: "u", password: "p" }] });
    const chain = harness([instance("chain", { onRequest: () => ({ upstream: ["socks5://127.0.0.1:1081", "http://[::1]:3128/"] }) }), later]);
    expect(await ask(chain.dispatcher, "x", "bind")).toEqual({ upstream: [parseUpstream("socks5://127.0.0.1:1081"), parseUpstream("http://[::1]:3128")] });
    const direct = harness([instance("direct", { onRequest: async () => ({ upstream: "direct" }) }), later]);
    expect(await ask(direct.dispatcher)).toEqual({ upstream: [] });
    expect(laterAsked).toBe(0);
    expect([...one.failures, ...chain.failures, ...direct.failures]).toEqual([]);
  });

  it("a bad URL is an invalid answer at the hook's file:line with parseUpstream's reason, never the password; the next addon decides", async () => {
    const file = join(dir, "bad-route.ts");
    writeFileSync(
      file,
      [
        'import type { Addon } from "socksmith/addon";',
        "",
        "export default {",
        "  onRequest: (request) => ({ upstream: request.host === 'a.test' ? 'socks5://alice:s3cret-pw@proxy.test:0' : ['http://proxy.test'] }),",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const loaded = await loadAddon(file);
    const { dispatcher, failures } = harness([
      { name: loaded.name, file: loaded.file, addon: loaded.addon, options: loaded.options },
      instance("next", { onRequest: () => ({ deny: 2 }) }),
    ]);
    expect(await ask(dispatcher, "a.test")).toEqual({ deny: 2 });
    expect(await ask(dispatcher, "b.test")).toEqual({ deny: 2 });
    expect(failures).toEqual([
      expect.objectContaining({ addon: "bad-route", hook: "onRequest", kind: "invalid", session: 1, location: `${file}:4:14` }),
      expect.objectContaining({ addon: "bad-route", hook: "onRequest", kind: "invalid", session: 1, location: `${file}:4:14` }),
    ]);
    expect(failures[0]!.message).toContain('upstream: "socks5://alice:***@proxy.test:0": port 0 cannot be dialled');
    expect(failures[1]!.message).toContain('upstream[0]: "http://proxy.test": an http upstream needs a port');
    expect(JSON.stringify(failures)).not.toContain("s3cret");
  });

  it("a bad URL from the only addon counts as undefined: the engine's default route applies", async () => {
    const { dispatcher, failures } = harness([instance("only", { onRequest: () => ({ upstream: "socks5://h:1", deny: 2 }) })]);
    expect(await ask(dispatcher)).toBeUndefined();
    expect(failures.map((f) => f.message)).toEqual([expect.stringMatching(/one of deny, upstream, not several/)]);
  });
});

/** A SOCKS5 CONNECT to `name`:`port` through `proxyPort`; the REP, and whether an echo round trip works. */
async function connectName(proxyPort: number, name: string, port: number): Promise<{ rep: number; echoes: boolean }> {
  const c = await RawClient.connect(proxyPort);
  cleanups.push(() => c.destroy());
  const bytes = Buffer.from(name);
  c.write(Buffer.concat([hex("050100"), Buffer.from([5, 1, 0, 3, bytes.length]), bytes, Buffer.from([port >> 8, port & 0xff])]));
  expect((await c.read(2)).toString("hex")).toBe("0500");
  const reply = await c.read(10);
  if (reply[1] !== 0) return { rep: reply[1]!, echoes: false };
  c.write(Buffer.from("ping"));
  const back = await c.read(4);
  c.end();
  return { rep: 0, echoes: back.toString() === "ping" };
}

describe("onRequest { upstream } over real sockets, a second engine as the upstream", () => {
  async function setUp(defaultRoute?: Route) {
    const echo = await startEchoServer();
    cleanups.push(() => echo.close());
    const back = await proxy();
    const file = join(dir, `per-host-${back.port}.ts`);
    writeFileSync(
      file,
      [
        'import type { Addon } from "socksmith/addon";',
        "",
        "export default {",
        "  onRequest: (request, ctx) =>",
        "    request.host === 'via.test' ? { upstream: 'socks5://127.0.0.1:' + ctx.options.back } :",
        "    request.host === 'direct.test' ? { upstream: 'direct' } : { upstream: 'socks5://alice:s3cret-pw@127.0.0.1:0' },",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const loaded = await loadAddon(file);
    const replies: ReplyInfo[] = [];
    const { dispatcher, failures } = harness([
      { name: loaded.name, file: loaded.file, addon: loaded.addon, options: { back: back.port } },
      instance("replies", { onReply: (reply) => void replies.push(reply) }),
    ]);
    const names = fakeLookup({ "via.test": [HOST], "direct.test": [HOST], "bad.test": [HOST] });
    const recorder = new RecordingObserver();
    const front = await proxy({
      hooks: dispatcher,
      observer: combineObservers([recorder, dispatcher.observer]),
      lookup: names,
      ...(defaultRoute === undefined ? {} : { route: () => defaultRoute }),
    });
    return { echo, back, front, recorder, file, failures, replies };
  }

  it("one host goes through the upstream (its observer sees the request), another direct, a bad answer direct as undefined", async () => {
    const { echo, back, front, file, failures, replies } = await setUp();
    expect(await connectName(front.port, "via.test", echo.port)).toEqual({ rep: 0, echoes: true });
    const backRequests = back.observer.facts.filter((f) => f.kind === "request");
    // socks5:// (not socks5h): the front resolved the name and the upstream was asked for the address.
    expect(backRequests.map((f) => f.fact)).toEqual([expect.objectContaining({ destination: { type: "ipv4", host: HOST, port: echo.port } })]);
    // onReply's bound is what the last hop reported.
    const backReply = back.observer.facts.find((f) => f.kind === "reply")?.fact as { bound: { host: string; port: number } } | undefined;
    expect(replies[0]?.bound).toEqual(backReply?.bound);

    expect(await connectName(front.port, "direct.test", echo.port)).toEqual({ rep: 0, echoes: true });
    expect(await connectName(front.port, "bad.test", echo.port)).toEqual({ rep: 0, echoes: true });
    expect(back.observer.facts.filter((f) => f.kind === "request")).toHaveLength(1);
    expect(failures).toEqual([expect.objectContaining({ hook: "onRequest", kind: "invalid", location: `${file}:4:14` })]);
    expect(failures[0]!.message).toContain("port 0 cannot be dialled");
    expect(failures[0]!.message).not.toContain("s3cret");
  });

  it('an answer overrules the engine\'s default route: "direct" and an upstream both avoid it; a bad answer leaves it in force', async () => {
    const down = await closedPort();
    const { echo, back, front, recorder } = await setUp([parseUpstream(`socks5://${HOST}:${down}`)]);
    expect(await connectName(front.port, "direct.test", echo.port)).toEqual({ rep: 0, echoes: true });
    expect(await connectName(front.port, "via.test", echo.port)).toEqual({ rep: 0, echoes: true });
    // No opinion: the default route, whose only hop is down (REP 05).
    expect(await connectName(front.port, "bad.test", echo.port)).toEqual({ rep: 5, echoes: false });
    const routes = recorder.facts.flatMap((f) => (f.kind === "reply" ? [f.fact.route] : []));
    expect(routes).toEqual([undefined, [`socks5://${HOST}:${back.port}`], [`socks5://${HOST}:${down}`]]);
  });
});
