/**
 * The addons/tls-passthrough recipe, loaded by the real loader into a Dispatcher and asked through
 * the engine's hook port (`tlsClientHello`) and observer (`tls`), in the order the engine uses
 * them: listed hosts pass through (by SNI, or by the destination when there is none), the rest
 * are intercepted, and each decision and the negotiated parameters are tagged.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SessionHandle, TlsFact, TlsHelloInfo } from "../../src/engine/index.js";
import { Dispatcher } from "../../src/hooks/dispatcher.js";
import { loadAddon } from "../../src/hooks/loader.js";

const recipe = join(import.meta.dirname, "../../addons/tls-passthrough.ts");
const client = { host: "127.0.0.1", port: 40000 };

async function dispatcherWith(hosts: string) {
  const loaded = await loadAddon(recipe, { hosts });
  const tags: string[] = [];
  const dispatcher = new Dispatcher([loaded], {
    events: {
      hookFailed: (f) => {
        throw new Error(`${f.hook}: ${f.message}`);
      },
      tagged: (session, _addon, key, value) => tags.push(`${session}:${key}=${value}`),
      logged: () => {},
    },
  });
  await dispatcher.start();
  return { dispatcher, tags };
}

/** One session up to its ClientHello: the hook's decision. */
async function decide(dispatcher: Dispatcher, id: number, target: string, sni?: string) {
  const handle: SessionHandle = { id, inject() {}, injectDatagram() {}, close() {} };
  await dispatcher.open({ id, client, local: { host: "127.0.0.1", port: 1080 } }, handle);
  await dispatcher.request({ id, version: 5, command: "connect", destination: { type: "domain", host: target, port: 443 }, client }, handle);
  const hello: TlsHelloInfo = {
    id,
    ...(sni === undefined ? {} : { sni }),
    alpn: ["h2", "http/1.1"],
    versions: ["TLSv1.3"],
    target: { host: target, port: 443 },
  };
  return dispatcher.tlsClientHello(hello, handle);
}

function end(dispatcher: Dispatcher, id: number): void {
  dispatcher.observer.sessionClosed({ id, at: Date.now(), reason: "completed", bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 });
}

describe("addons/tls-passthrough", () => {
  it("passes listed hosts through (SNI first, the destination without SNI), intercepts the rest, and tags both", async () => {
    const { dispatcher, tags } = await dispatcherWith("*.apple.com, bank.example,10.0.0.*");
    expect(await decide(dispatcher, 1, "gateway.icloud.com", "Push.Apple.com")).toEqual({ passthrough: true });
    expect(await decide(dispatcher, 2, "bank.example", "bank.example")).toEqual({ passthrough: true });
    expect(await decide(dispatcher, 3, "10.0.0.7")).toEqual({ passthrough: true });
    expect(await decide(dispatcher, 4, "example.com", "example.com")).toEqual({ intercept: true });
    // The SNI decides, not the destination it was sent to.
    expect(await decide(dispatcher, 5, "bank.example", "www.bank.example")).toEqual({ intercept: true });
    expect(await decide(dispatcher, 6, "10.0.1.7")).toEqual({ intercept: true });
    expect(tags).toEqual(["1:tls=passthrough", "2:tls=passthrough", "3:tls=passthrough", "4:tls=intercept", "5:tls=intercept", "6:tls=intercept"]);
  });

  it("with no hosts listed, intercepts everything", async () => {
    const { dispatcher } = await dispatcherWith("");
    expect(await decide(dispatcher, 1, "apple.com", "apple.com")).toEqual({ intercept: true });
  });

  it("tags what an intercepted session negotiated once it ends; a passed-through one gets no such tag", async () => {
    const { dispatcher, tags } = await dispatcherWith("bank.example");
    await decide(dispatcher, 1, "example.com", "example.com");
    await decide(dispatcher, 2, "bank.example", "bank.example");
    const hello = { sni: "example.com", alpn: ["h2"], versions: ["TLSv1.3"] };
    const facts: TlsFact[] = [
      { id: 1, at: Date.now(), intercepted: true, decidedBy: "hook", hello, client: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "h2" } },
      { id: 2, at: Date.now(), intercepted: false, decidedBy: "hook", hello: { ...hello, sni: "bank.example" } },
    ];
    for (const fact of facts) dispatcher.observer.tls!(fact);
    end(dispatcher, 1);
    end(dispatcher, 2);
    // onClose is called synchronously by the sessionClosed fact (a synchronous hook).
    expect(tags.filter((t) => t.includes("negotiated"))).toEqual(["1:tls-negotiated=TLSv1.3 h2"]);
  });
});
