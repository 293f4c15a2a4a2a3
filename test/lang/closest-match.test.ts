/** closestMatch and editDistance: the one "did you mean" of the loader and the filter. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { closestMatch, editDistance } from "../../src/lang/closest-match.js";

/** Optimal string alignment by its recursive definition on prefixes (memoised). */
function reference(a: string, b: string): number {
  const memo = new Map<string, number>();
  const d = (i: number, j: number): number => {
    if (i === 0 || j === 0) return i + j;
    const key = `${i},${j}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let best = Math.min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
    if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d(i - 2, j - 2) + 1);
    memo.set(key, best);
    return best;
  };
  return d(a.length, b.length);
}

describe("editDistance", () => {
  it.each([
    ["", "", 0],
    ["", "abc", 3],
    ["abc", "", 3],
    ["host", "host", 0],
    ["hots", "host", 1], // a swap
    ["stauts", "status", 1],
    ["byte", "bytes", 1],
    ["kitten", "sitting", 3],
    ["ca", "abc", 3], // OSA, not Damerau: no edit inside a swapped pair
    ["Host", "host", 1], // case counts here; closestMatch ignores it
  ])("%j → %j is %d", (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });

  it("equals the recursive definition on short strings", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "b", "c"), maxLength: 7 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(editDistance(a, b)).toBe(reference(a, b));
      }),
    );
  });
});

describe("closestMatch", () => {
  const FIELDS = ["host", "port", "cmd", "v", "status", "proto", "rep", "reason", "id", "user", "sni", "client", "tag"];
  const HOOKS = ["onLoad", "onDispose", "onOpen", "onAuth", "onRequest", "onReply", "onData", "onDatagram", "onClose"];

  it.each([
    ["hots", FIELDS, "host"],
    ["stauts", FIELDS, "status"],
    ["STATUS", FIELDS, "status"], // case is ignored, the candidate keeps its spelling
    ["onrequets", HOOKS, "onRequest"],
    ["nRequest", HOOKS, "onRequest"],
    ["onDatagrams", HOOKS, "onDatagram"],
    ["defualt", ["type", "default", "description"], "default"],
    ["onRequestt", HOOKS, "onRequest"],
  ])("%j in the list → %j", (word, candidates, match) => {
    expect(closestMatch(word, candidates)).toBe(match);
  });

  it.each([
    ["size", ["bytes", "up", "down", "dur"]], // 4 edits from each
    ["y", ["x"]], // one edit, but the whole word
    ["ab", ["up"]], // two edits in two characters
    ["online", HOOKS],
    ["", FIELDS],
  ])("%j has no match", (word, candidates) => {
    expect(closestMatch(word, candidates)).toBeUndefined();
  });

  it("allows ⌊length/3⌋ edits in long words, and takes the first of equals", () => {
    expect(closestMatch("onDisposeXYZ", HOOKS)).toBe("onDispose"); // 3 edits, 12 characters
    expect(closestMatch("onDisposeXYZW", HOOKS)).toBe("onDispose"); // 4 edits, 13 characters
    expect(closestMatch("onDisposeXYZWV", HOOKS)).toBeUndefined(); // 5 edits, 14 characters
    expect(closestMatch("ab", ["ax", "ay"])).toBe("ax");
  });

  it("a match is within its bounds, and a candidate itself matches itself", () => {
    const word = fc.string({ unit: fc.constantFrom("a", "b", "c", "A"), maxLength: 8 });
    fc.assert(
      fc.property(word, fc.array(word, { maxLength: 5 }), (w, list) => {
        const match = closestMatch(w, list);
        if (match !== undefined) {
          const d = editDistance(w.toLowerCase(), match.toLowerCase());
          expect(d).toBeLessThan(w.length);
          expect(d).toBeLessThanOrEqual(Math.max(2, Math.floor(w.length / 3)));
        }
        // With the word itself among the candidates, the match is the word (or an earlier spelling of it in another case).
        if (w.length > 0) expect(closestMatch(w, [...list, w])?.toLowerCase()).toBe(w.toLowerCase());
      }),
    );
  });
});
