import { it } from "vitest";
import { printable, looksLikeText, hexDump } from "../../src/format/index.js";
import { wrap, safe } from "../../src/tui/views/text.js";
it("prof", () => {
  const data = Buffer.alloc(65536, 0x61);
  for (let k = 0; k < 3; k++) {
    let t = performance.now();
    looksLikeText(data); const a = performance.now() - t; t = performance.now();
    const p = printable(data, { utf8: true }); const b = performance.now() - t; t = performance.now();
    const sf = safe("   " + p); const c = performance.now() - t; t = performance.now();
    const w = wrap(sf, 97); const d = performance.now() - t; t = performance.now();
    const w2 = wrap(w.slice(1).join(""), 94); const e = performance.now() - t; t = performance.now();
    hexDump(data, { width: 16 }); const f = performance.now() - t;
    console.log("looks", a.toFixed(1), "printable", b.toFixed(1), "safe", c.toFixed(1), "wrap", d.toFixed(1), "wrap2", e.toFixed(1), "hex", f.toFixed(1), w.length, w2.length);
  }
});
