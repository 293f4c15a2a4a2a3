/** Choosing between recordings of one destination (server replay). */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { likeness, mostAlike } from "../../src/replay/recordings.js";

const b = (text: string) => Buffer.from(text, "latin1");

describe("mostAlike", () => {
  it("prefers the same bytes, then the most bytes equal at the same offsets, then the oldest", () => {
    const recorded = ["GET /alpha HTTP/1.1\r\n", "GET /beta HTTP/1.1\r\n", "GET /beta HTTP/1.1\r\n"].map(b);
    expect(mostAlike(recorded, b("GET /beta HTTP/1.1\r\n"), (x) => x)).toBe(recorded[1]);
    // A DNS-like query whose first two bytes (the ID) changed still finds its question.
    const queries = [b("\x12\x34example.org"), b("\x12\x34example.com")];
    expect(mostAlike(queries, b("\x99\x99example.com"), (x) => x)).toBe(queries[1]);
    expect(mostAlike([], b("x"), (x: Buffer) => x)).toBeUndefined();
    expect(mostAlike([b("aaaa"), b("bbbb")], b("cccc"), (x) => x)).toEqual(b("aaaa"));
  });

  it("likeness is symmetric, and greatest for the bytes themselves", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (x, y) => {
        expect(likeness(x, y)).toBe(likeness(y, x));
        expect(likeness(x, x)).toBeGreaterThanOrEqual(likeness(x, y));
      }),
    );
  });
});
