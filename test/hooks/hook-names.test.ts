/** The one runtime hook list: exactly HookName, once each, in api.ts order; used by the loader and the dispatcher. */
import { describe, expect, expectTypeOf, it } from "vitest";
import type { HookName } from "../../src/hooks/api.js";
import { HOOK_NAMES, isHookName, perHook } from "../../src/hooks/hook-names.js";

describe("HOOK_NAMES", () => {
  it("is exactly HookName (the compiler checks it), each once, in api.ts order", () => {
    expectTypeOf<(typeof HOOK_NAMES)[number]>().toEqualTypeOf<HookName>();
    expect(new Set(HOOK_NAMES).size).toBe(HOOK_NAMES.length);
    expect(HOOK_NAMES).toEqual(["onLoad", "onDispose", "onOpen", "onAuth", "onRequest", "onReply", "onTlsClientHello", "onData", "onDatagram", "onClose"]);
  });

  it("isHookName is exact: case and all; no inherited names", () => {
    for (const hook of HOOK_NAMES) expect(isHookName(hook)).toBe(true);
    for (const key of ["onrequest", "onRequests", "name", "options", "constructor", "toString", ""]) expect(isHookName(key)).toBe(false);
  });

  it("perHook gives one entry per hook, in order, and nothing else", () => {
    const record = perHook((hook) => hook.length);
    expect(Object.keys(record)).toEqual([...HOOK_NAMES]);
    expect(record.onDatagram).toBe("onDatagram".length);
  });
});
