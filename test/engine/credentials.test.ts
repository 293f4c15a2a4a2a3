/**
 * Credentials.verify: right answers for equal, unequal, different-length and empty passwords and
 * unknown names; and the same work for each (one timingSafeEqual of two 32-byte digests), so the
 * time cannot depend on the password's length. No timing assertion: the work is checked instead.
 */
import * as crypto from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Credentials } from "../../src/engine/credentials.js";

vi.mock("node:crypto", async (original) => {
  const real = await original<typeof import("node:crypto")>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});
const compare = vi.mocked(crypto.timingSafeEqual);
afterEach(() => compare.mockClear());

const b = (text: string) => Buffer.from(text, "utf8");

function table(): Credentials {
  const c = new Credentials();
  c.add("alice", "s3cret");
  c.add("bob", "");
  c.add("carol", "pa:ss:wörd");
  return c;
}

describe("Credentials.verify", () => {
  it("accepts exactly the stored password, byte for byte", () => {
    const c = table();
    expect(c.verify(b("alice"), b("s3cret"))).toBe(true);
    expect(c.verify(b("carol"), b("pa:ss:wörd"))).toBe(true);
    expect(c.verify(b("bob"), b(""))).toBe(true);
    expect(c.verify(b("alice"), b("s3creT"))).toBe(false);
    expect(c.verify(b("alice"), b("s3cre"))).toBe(false);
    expect(c.verify(b("alice"), b("s3crett"))).toBe(false);
    expect(c.verify(b("alice"), b(""))).toBe(false);
    expect(c.verify(b("bob"), b("x"))).toBe(false);
    expect(c.verify(b("carol"), Buffer.from("pa:ss:wörd", "latin1"))).toBe(false);
    expect(c.verify(b("mallory"), b("s3cret"))).toBe(false);
    expect(c.verify(b("mallory"), b(""))).toBe(false);
    expect(c.verify(b(""), b(""))).toBe(false);
    expect(c.verify(b("Alice"), b("s3cret"))).toBe(false);
  });

  it("a later add replaces the password", () => {
    const c = table();
    c.add("alice", "new");
    expect(c.verify(b("alice"), b("s3cret"))).toBe(false);
    expect(c.verify(b("alice"), b("new"))).toBe(true);
  });

  it("does the same work whatever the length, content or name: one comparison of two 32-byte digests", () => {
    const c = table();
    const attempts: Array<[string, Buffer]> = [
      ["alice", b("s3cret")],
      ["alice", b("")],
      ["alice", b("x")],
      ["alice", Buffer.alloc(255, 0x61)],
      ["bob", b("")],
      ["bob", b("longer than nothing")],
      ["mallory", b("s3cret")],
      ["mallory", Buffer.alloc(255)],
    ];
    for (const [user, password] of attempts) {
      compare.mockClear();
      c.verify(b(user), password);
      expect(compare, `${user} / ${password.length} bytes`).toHaveBeenCalledTimes(1);
      const [x, y] = compare.mock.calls[0]!;
      expect([(x as Buffer).length, (y as Buffer).length]).toEqual([32, 32]);
    }
  });
});
