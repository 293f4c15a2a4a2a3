/**
 * The filter bar's text editing as a pure function (use-filter-editing.ts `typeInto`): what a
 * typed or pasted read does to the bar's text, and where an enter within it ends the text.
 */
import { describe, expect, it } from "vitest";
import { typeInto } from "../../src/tui/use-filter-editing.js";

describe("typeInto", () => {
  it("appends printable text, including spaces and non-ASCII", () => {
    expect(typeInto("host:", '*.example.com ~"é"')).toEqual({ text: 'host:*.example.com ~"é"', entered: false, rest: "" });
  });

  it("ctrl-U clears what came before it; DEL and BS erase one character each", () => {
    expect(typeInto("status:ok", "\x15port:80")).toEqual({ text: "port:80", entered: false, rest: "" });
    expect(typeInto("port:8080", "\x7f\b1")).toEqual({ text: "port:801", entered: false, rest: "" });
    expect(typeInto("", "\x7f")).toEqual({ text: "", entered: false, rest: "" });
  });

  it("drops other control characters (an escape sequence's ESC, tab, NUL)", () => {
    expect(typeInto("a", "\x1b\t\x00b")).toEqual({ text: "ab", entered: false, rest: "" });
  });

  it("an enter (CR or LF) ends the text: what follows it is returned as keys", () => {
    expect(typeInto("", "status:failed\rjj")).toEqual({ text: "status:failed", entered: true, rest: "jj" });
    expect(typeInto("host:a", "\n")).toEqual({ text: "host:a", entered: true, rest: "" });
    expect(typeInto("x", "y\r\rq")).toEqual({ text: "xy", entered: true, rest: "\rq" });
  });
});
