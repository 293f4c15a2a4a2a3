/**
 * addons/route-by-host.ts, loaded by the real loader into a dispatcher on a real engine: hosts that
 * match its globs go through the upstream (second in-process engines, one or a chain of two), the
 * rest direct even when the engine has a default route; over loopback, names resolved by injected
 * lookups only.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { combineObservers, parseUpstream, type Route } from "../../src/engine/index.js";
import { Dispatcher, type HookFailure } from "../../src/hooks/dispatcher.js";
import { loadAddon } from "../../src/hooks/loader.js";
import { HOST, RawClient, RecordingObserver, closedPort, fakeLookup, hex, startEchoServer, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();
const recipe = join(import.meta.dirname, "../../addons/route-by-host.ts");

async function front(settings: Record<string, string>, route?: Route) {
  const loaded = await loadAddon(recipe, settings);
  const failures: HookFailure[] = [];
  const tags: string[] = [];
  const logs: string[] = [];
  const dispatcher = new Dispatcher([loaded], {
    events: { hookFailed: (f) => failures.push(f), tagged: (_s, _a, key, value) => tags.push(`${key}=${value}`), logged: (_s, _a, m) => logs.push(m) },
  });
  await dispatcher.start();
  const recorder = new RecordingObserver();
  const p = await proxy({
    hooks: dispatcher,
    observer: combineObservers([recorder, dispatcher.observer]),
    // The front knows the public name only: a corp name that went direct would fail (REP 04).
    lookup: fakeLookup({ "public.test": [HOST] }),
    ...(route === undefined ? {} : { route: () => route }),
  });
  return { port: p.port, recorder, failures, tags, logs };
}

async function echo(): Promise<number> {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server.port;
}

/** A SOCKS5 CONNECT to a name; the REP, and whether an echo round trip works. */
async function connectName(port: number, name: string, targetPort: number): Promise<{ rep: number; echoes: boolean }> {
  const c = await RawClient.connect(port);
  cleanups.push(() => c.destroy());
  c.write(Buffer.concat([hex("050100 05010003"), Buffer.from([name.length]), Buffer.from(name), Buffer.from([targetPort >> 8, targetPort & 0xff])]));
  await c.read(2);
  const reply = await c.read(4);
  await c.read(reply[3] === 4 ? 18 : 6);
  if (reply[1] !== 0) return { rep: reply[1]!, echoes: false };
  c.write(Buffer.from("ping"));
  const back = await c.read(4);
  c.end();
  return { rep: 0, echoes: back.toString() === "ping" };
}

const requests = (p: { observer: RecordingObserver }) => p.observer.facts.filter((f) => f.kind === "request").map((f) => f.fact);

describe("addons/route-by-host.ts", () => {
  it("matching hosts go through the upstream (which resolves them), the rest direct even over a default route", async () => {
    const target = await echo();
    const back = await proxy({ lookup: fakeLookup({ "git.corp.test": [HOST], "WIKI.Corp.Test": [HOST] }) });
    const down = await closedPort();
    const f = await front({ hosts: "*.corp.test, intranet", upstream: `socks5h://${HOST}:${back.port}` }, [parseUpstream(`socks5://${HOST}:${down}`)]);
    expect(await connectName(f.port, "git.corp.test", target)).toEqual({ rep: 0, echoes: true });
    expect(await connectName(f.port, "WIKI.Corp.Test", target)).toEqual({ rep: 0, echoes: true });
    expect(await connectName(f.port, "public.test", target)).toEqual({ rep: 0, echoes: true });
    expect(requests(back).map((r) => r.destination.host)).toEqual(["git.corp.test", "WIKI.Corp.Test"]);
    const routes = f.recorder.facts.flatMap((x) => (x.kind === "reply" ? [x.fact.route] : []));
    expect(routes).toEqual([[`socks5h://${HOST}:${back.port}`], [`socks5h://${HOST}:${back.port}`], undefined]);
    expect(f.tags).toEqual(["route=upstream", "route=upstream", "route=direct"]);
    expect(f.failures).toEqual([]);
  });

  it("several URLs separated by spaces form a chain, in order", async () => {
    const target = await echo();
    const second = await proxy({ lookup: fakeLookup({ "git.corp.test": [HOST] }) });
    const first = await proxy();
    const f = await front({ hosts: "*.corp.test", upstream: `socks5://${HOST}:${first.port}  socks4a://${HOST}:${second.port}` });
    expect(await connectName(f.port, "git.corp.test", target)).toEqual({ rep: 0, echoes: true });
    expect(requests(first).map((r) => r.destination.port)).toEqual([second.port]);
    expect(requests(second).map((r) => [r.version, r.destination.host])).toEqual([["4a", "git.corp.test"]]);
  });

  it("a bad upstream URL is reported (with the reason, without the password) and the request keeps its default route", async () => {
    const target = await echo();
    const f = await front({ hosts: "*", upstream: "socks9://me:hunter2@proxy.test" });
    expect(await connectName(f.port, "public.test", target)).toEqual({ rep: 0, echoes: true });
    expect(f.failures.map((x) => x.message)).toEqual([expect.stringContaining('unknown scheme "socks9"')]);
    expect(f.failures[0]!.message).not.toContain("hunter2");
  });

  it("without an upstream it says so once and routes nothing", async () => {
    const target = await echo();
    const f = await front({ hosts: "*.corp.test" });
    expect(f.logs).toEqual([expect.stringContaining("no upstream set")]);
    expect(await connectName(f.port, "public.test", target)).toEqual({ rep: 0, echoes: true });
    expect(f.tags).toEqual([]);
  });
});
