/**
 * The trust rule "Hook answers are checked at run time" (docs/architecture.md, "Trust rules"), as a property: generated answers (any
 * value, near misses like `{ deny: "2" }`, hostile objects, valid answers) for onOpen, onAuth,
 * onRequest, onReply, onData and onDatagram, through the loader, the Dispatcher, the engine and
 * the capture in this process, with real loopback clients; for onTlsClientHello (asked only with
 * --tls) through the loader and the Dispatcher's port. A valid answer's decision happens;
 * an invalid one is a hook error at the addon's line and the session goes on as if the hook
 * had answered undefined; every session ends; nothing crashes. A dozen cases per hook here;
 * `npm run torture` runs hundreds (torture/hook-answers.torture.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANSWER_HOOKS, Hostile } from "../../torture/lib/answers.js";
import { checkCase, inProcessProxy, learn, startTargets, type HookProxy, type Targets } from "../../torture/lib/hook-harness.js";
import { checkHook } from "../../torture/lib/hook-properties.js";
import { checkTlsHelloHook } from "../../torture/lib/tls-hello-property.js";
import { runSeed } from "../../torture/lib/random.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-trust-hooks-"));
let proxy: HookProxy;
let targets: Targets;

beforeAll(async () => {
  targets = await startTargets();
  proxy = await inProcessProxy(dir);
  await learn(proxy, targets);
});
afterAll(async () => {
  await proxy?.close();
  await targets?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("hook answers are checked against the contract (property)", () => {
  for (const hook of ANSWER_HOOKS) {
    it(`${hook}: 12 generated answers`, async () => {
      const figures = await checkHook(proxy, targets, hook, { runs: 12, seed: runSeed(), json: false });
      expect(figures.runs).toBe(12);
    });
  }
});

describe("onTlsClientHello answers are checked against the contract (property, through the Dispatcher's port)", () => {
  // The engine asks it only with --tls; the cases are cheap (no sockets), so more of them.
  it("onTlsClientHello: 200 generated answers", async () => {
    const figures = await checkTlsHelloHook({ runs: 200, seed: runSeed() });
    expect(figures.runs).toBe(200);
    expect(figures.valid).toBeGreaterThan(0);
    expect(figures.invalid).toBeGreaterThan(0);
  });
});

describe("the answers issue 11 reproduced (each crashed or was misread before answers were checked)", () => {
  const reproduced: Array<[(typeof ANSWER_HOOKS)[number], unknown, boolean?]> = [
    ["onRequest", {}],
    ["onRequest", { block: true }],
    ["onRequest", { redirect: null }],
    ["onRequest", { redirect: { port: -1 } }],
    ["onRequest", { redirect: { host: 5 } }],
    ["onRequest", { deny: 0 }],
    ["onRequest", { deny: "x" }],
    ["onRequest", { deny: "2" }],
    ["onRequest", { deny: 999 }],
    ["onRequest", { allow: false }],
    ["onReply", { rep: 0 }, true],
    ["onReply", { rep: "x" }],
    ["onData", { replace: null }],
    ["onData", { replace: 123 }],
    ["onData", { foo: 1 }],
    ["onAuth", {}],
    ["onDatagram", { replace: 123 }],
    ["onDatagram", { redirect: { port: -1 } }],
    ["onDatagram", "garbage"],
  ];
  for (const [hook, answer, failing] of reproduced) {
    it(`${hook} ${JSON.stringify(answer)}${failing ? " on a failed connect" : ""}`, async () => {
      expect(await checkCase(proxy, targets, { hook, answer, async: false, failing: failing ?? false })).toEqual([]);
    });
  }
});

describe("answers that fight back are hook errors at the addon's line, not engine failures", () => {
  for (const kind of ["throwing-proxy", "throwing-getter", "cycle"]) {
    for (const hook of ["onRequest", "onData"] as const) {
      it(`${hook} answers a ${kind}`, async () => {
        expect(await checkCase(proxy, targets, { hook, answer: new Hostile(kind), async: false, failing: false })).toEqual([]);
      });
    }
  }
});
