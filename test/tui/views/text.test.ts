/** The views' text helpers: terminal-safe strings and fitting text by its width on screen. */
import { describe, expect, it } from "vitest";
import { charWidth, displayWidth, fit, safe, shortLocation, tagsText, truncate, wrap } from "../../../src/tui/views/text.js";

describe("safe", () => {
  it("escapes C0, DEL, C1 and bidi/format characters, keeps the rest", () => {
    expect(safe("a\x1b[2Jb\x07\x7f\x9b")).toBe("a\\x1b[2Jb\\x07\\x7f\\x9b");
    expect(safe("evil\u202eexe.txt")).toBe("evil\\u{202e}exe.txt");
    expect(safe("line\u2028sep")).toBe("line\\u{2028}sep");
    expect(safe("héllo → 日本")).toBe("héllo → 日本");
  });

  it("never lets an unsafe character through, whatever the input", () => {
    let all = "";
    for (let c = 0; c < 0x3000; c++) all += String.fromCharCode(c);
    expect(safe(all)).not.toMatch(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/);
  });
});

describe("width", () => {
  it("counts wide characters as two columns and combining marks as none", () => {
    expect(charWidth("a".codePointAt(0)!)).toBe(1);
    expect(displayWidth("日本")).toBe(4);
    expect(displayWidth("e\u0301")).toBe(1);
    expect(displayWidth("🙂")).toBe(2);
  });

  it("truncates with an ellipsis within the width, never halving an escape", () => {
    expect(truncate("example.com", 20)).toBe("example.com");
    expect(truncate("example.com", 8)).toBe("example…");
    expect(truncate("example.com", 0)).toBe("");
    expect(truncate("日本語テキスト", 5)).toBe("日本…");
    expect(truncate("ab\\x1bcdef", 5)).toBe("ab…");
    for (let w = 1; w < 12; w++) expect(displayWidth(truncate("日本語 and more", w))).toBeLessThanOrEqual(w);
  });

  it("fits (pads) to an exact width, left or right", () => {
    expect(fit("ab", 4)).toBe("ab  ");
    expect(fit("ab", 4, "right")).toBe("  ab");
    expect(fit("abcdef", 4)).toBe("abc…");
  });

  it("wraps into rows of at most the width", () => {
    expect(wrap("", 5)).toEqual([""]);
    expect(wrap("abcdefghij", 4)).toEqual(["abcd", "efgh", "ij"]);
    expect(wrap("日本語", 4)).toEqual(["日本", "語"]);
  });
});

describe("tagsText and shortLocation", () => {
  it("shows tags as key=value, safe, and nothing for bad JSON", () => {
    expect(tagsText('{"env":"prod","team":"a b"}')).toBe("env=prod team=a b");
    expect(tagsText('{"x":"\\u001b[31m"}')).toBe("x=\\x1b[31m");
    expect(tagsText("{}")).toBe("");
    expect(tagsText("not json")).toBe("");
    expect(tagsText("[1]")).toBe("");
  });

  it("drops directories so file:line shows", () => {
    expect(shortLocation("/home/me/addons/thrower.ts:5:3: boom")).toBe("thrower.ts:5:3: boom");
    expect(shortLocation("addon C:\\x\\y\\a.ts:7 failed")).toBe("addon a.ts:7 failed");
    expect(shortLocation("at file:///srv/addons/b.ts:9:1")).toBe("at b.ts:9:1");
    expect(shortLocation("plain message")).toBe("plain message");
  });
});
