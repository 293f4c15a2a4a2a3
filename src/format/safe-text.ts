/**
 * Strings from the wire or from addons (hosts, user names, SNI, tags, addon messages, hook
 * errors) made safe to write to a terminal, as one line of text or as JSON: the one sanitizer.
 *
 * Security: written raw, an ESC or a C1 character starts a terminal control sequence (retitle or
 * clear the window, rewrite the screen, in some terminals answer back as typed input), and a bidi
 * override reorders what the reader sees (CVE-2021-42574). Neither function's output holds such a
 * character, nor a line break: a hostile value stays on its own line and reads as what it is.
 * Pure and total; the same rule as `printable` for bytes and the TUI's `safe`.
 */

// Controls (C0, DEL, C1), format characters (bidi overrides, zero-width joiners), private use,
// lone surrogates, unassigned code points, and the line and paragraph separators.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Cn}\p{Zl}\p{Zp}]/gu;

/**
 * `text` with every unsafe character escaped: `\xNN` up to U+00FF (as `printable` writes bytes),
 * `\u{XXXX}` above. Everything else is kept as is, a backslash too (so `\x1b` in the output may
 * also have been typed: the escapes make hostile text visible, they are not a reversible encoding).
 */
export function safeText(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/**
 * `JSON.stringify(value)` (one line) with every unsafe character written as a `\uXXXX` escape
 * (a surrogate pair for one above U+FFFF): the same JSON value, parsed back exactly, but only
 * printable characters on the terminal. JSON.stringify alone escapes C0 and lone surrogates,
 * not DEL, C1 or the bidi overrides. A value JSON cannot hold (undefined, a function) gives `null`.
 */
export function safeJson(value: unknown): string {
  // Outside strings JSON has no such characters, so replacing them anywhere only touches strings.
  return (JSON.stringify(value) ?? "null").replace(UNSAFE, (c) => {
    let out = "";
    for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
    return out;
  });
}
