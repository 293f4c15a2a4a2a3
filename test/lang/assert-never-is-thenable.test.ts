/** assertNever and isThenable: the one copy of each. */
import { describe, expect, it } from "vitest";
import { assertNever } from "../../src/lang/assert-never.js";
import { isThenable } from "../../src/lang/is-thenable.js";

describe("assertNever", () => {
  it("throws naming what it was given, even for values JSON cannot show", () => {
    expect(() => assertNever("x" as never, "event")).toThrow('unexpected event "x"');
    expect(() => assertNever({ kind: "z" } as never)).toThrow('unexpected value {"kind":"z"}');
    expect(() => assertNever(10n as never)).toThrow("unexpected value 10");
    expect(() => assertNever(undefined as never)).toThrow("unexpected value undefined");
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => assertNever(cycle as never)).toThrow("unexpected value [object Object]");
  });
});

describe("isThenable", () => {
  // Factories: the test runner would read a hostile `then` while printing a row.
  const hostileThen = (): object =>
    Object.defineProperty({}, "then", {
      get: () => {
        throw new Error("no");
      },
    });
  const revoked = (): object => {
    const p = Proxy.revocable({}, {});
    p.revoke();
    return p.proxy;
  };
  it.each<readonly [string, () => unknown, boolean]>([
    ["a promise", () => Promise.resolve(1), true],
    ["an object with then", () => ({ then: () => {} }), true],
    ["a function with then", () => Object.assign(() => {}, { then: () => {} }), true],
    ["a then that throws when read", hostileThen, true],
    ["a revoked proxy", revoked, true],
    ["a then that is no function", () => ({ then: 1 }), false],
    ["an object", () => ({ allow: true }), false],
    ["a function", () => () => {}, false],
    ["null", () => null, false],
    ["undefined", () => undefined, false],
    ["a string", () => "then", false],
  ])("%s", (_what, make, expected) => {
    expect(isThenable(make())).toBe(expected);
  });
});
