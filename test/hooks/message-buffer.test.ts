/**
 * ctx.messages (message-buffer.ts) without sockets: framings, pass-through, limits, addon
 * mistakes, and the property that matters: the output does not depend on how reads cut the stream.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DataChunk, Framing, MessageEdit } from "../../src/hooks/api.js";
import { messageHelper } from "../../src/hooks/message-buffer.js";

type Edit = (message: Buffer) => MessageEdit;

/** Feeds `chunks` (one direction) and returns what went on (the chunk itself for undefined), plus logs and failures. */
function run(chunks: Array<string | Buffer>, framing: Framing | (() => Framing), edit: Edit) {
  const logs: string[] = [];
  const failures: unknown[] = [];
  const messages = messageHelper({ log: (l) => logs.push(l), failed: (e) => failures.push(e) });
  const out: Buffer[] = [];
  chunks.forEach((c, seq) => {
    const chunk: DataChunk = { direction: "up", data: Buffer.from(c), seq };
    const verdict = messages(chunk, framing, edit);
    if (verdict === undefined) out.push(Buffer.from(chunk.data));
    else if ("replace" in verdict) out.push(Buffer.from(verdict.replace as Uint8Array));
    else throw new Error(`unexpected verdict ${JSON.stringify(verdict)}`);
  });
  return { text: Buffer.concat(out).toString("latin1"), logs, failures, parts: out.map((b) => b.toString("latin1")) };
}

const upper: Edit = (m) => m.toString("latin1").toUpperCase();

/** An HTTP/1-like request stream: headers end at a blank line, `len: N` says how many body bytes follow. */
const httpEdit: Edit = (head) => {
  const text = head.toString("latin1");
  const len = /^len: (\d+)\r$/m.exec(text);
  return { replace: text.replace(/^ua:.*$/m, "ua: NEW"), pass: len ? Number(len[1]) : 0 };
};

describe("ctx.messages", () => {
  it("a delimited message split across chunks (delimiter split too) is edited whole; nothing goes on until it is complete", () => {
    const r = run(["GET / HTTP/1.1\r\nua: cu", "rl/8\r\n\r", "\nGET /2 HTTP/1.1\r\nua: x\r\n\r\n"], { delimiter: "\r\n\r\n" }, httpEdit);
    expect(r.parts).toEqual(["", "", "GET / HTTP/1.1\r\nua: NEW\r\n\r\nGET /2 HTTP/1.1\r\nua: NEW\r\n\r\n"]);
  });

  it("pass lets a body go on untouched and unbuffered, then framing resumes (keep-alive)", () => {
    const body = "ua: evil\r\n\r\n".repeat(3);
    const stream = `POST / HTTP/1.1\r\nua: a\r\nlen: ${body.length}\r\n\r\n${body}GET / HTTP/1.1\r\nua: b\r\n\r\n`;
    const r = run([stream.slice(0, 40), stream.slice(40, 50), stream.slice(50)], { delimiter: "\r\n\r\n" }, httpEdit);
    expect(r.text).toBe(stream.replace("ua: a", "ua: NEW").replace("ua: b", "ua: NEW"));
    // The body chunk in the middle went on as it came, never held.
    const bodyOnly = run([`POST / HTTP/1.1\r\nlen: 100\r\n\r\n`, "x".repeat(60), "y".repeat(40)], { delimiter: "\r\n\r\n" }, httpEdit);
    expect(bodyOnly.parts.slice(1)).toEqual(["x".repeat(60), "y".repeat(40)]);
  });

  it("fixed lengths and measured lengths (a length prefix)", () => {
    expect(run(["abcde", "fgh", "ij"], { length: 4 }, upper).parts).toEqual(["ABCD", "EFGH", "IJ"].map((s, i) => (i === 2 ? "" : s)));
    const prefixed: Framing = { measure: (b) => (b.length < 1 ? undefined : 1 + b[0]! - 48) };
    expect(run(["3ab", "c2", "xy1"], prefixed, upper).text).toBe("3ABC2XY");
  });

  it("returns undefined when a chunk goes on exactly as it came", () => {
    const messages = messageHelper({ log: () => {}, failed: () => {} });
    const chunk: DataChunk = { direction: "down", data: Buffer.from("one\ntwo\n"), seq: 0 };
    expect(messages(chunk, { delimiter: "\n" }, () => undefined)).toBeUndefined();
  });

  it("directions are framed separately", () => {
    const messages = messageHelper({ log: () => {}, failed: () => {} });
    const edit = (m: Buffer) => `[${m.toString()}]`;
    expect(messages({ direction: "up", data: Buffer.from("ab"), seq: 0 }, { delimiter: "." }, edit)).toEqual({ replace: Buffer.alloc(0) });
    expect(
      Buffer.from((messages({ direction: "down", data: Buffer.from("x."), seq: 1 }, { delimiter: "." }, edit) as { replace: Uint8Array }).replace).toString(),
    ).toBe("[x.]");
    expect(
      Buffer.from((messages({ direction: "up", data: Buffer.from("c."), seq: 2 }, { delimiter: "." }, edit) as { replace: Uint8Array }).replace).toString(),
    ).toBe("[abc.]");
  });

  it("memory is bounded by max: an oversized delimited message passes unedited as it comes, said once, and framing resumes after it", () => {
    const big = "h".repeat(100);
    const r = run([big.slice(0, 60), big.slice(60), "\n", "ok\n", `${"h".repeat(200)}\n`], { delimiter: "\n", max: 64 }, upper);
    expect(r.text).toBe(`${big}\nOK\n${"h".repeat(200)}\n`);
    expect(r.parts[0]).toBe("");
    expect(r.parts[1]).toBe(big);
    expect(r.logs).toEqual(["messages (up): a message over 64 bytes: passing it unedited"]);
  });

  it("a measure that cannot tell within max ends framing (everything passes); a known length over max passes unedited", () => {
    const never = run(["aaaa", "bbbb", "cc"], { measure: () => undefined, max: 6 }, upper);
    expect(never.text).toBe("aaaabbbbcc");
    expect(never.logs).toHaveLength(1);
    const long = run(["abcdefgh", "ij"], { length: 5, max: 4 }, upper);
    expect(long.text).toBe("abcdefghij");
    expect(long.parts).toEqual(["abcdefgh", "ij"]);
  });

  it("addon mistakes lose no byte: a throwing or wrong edit passes its message unedited and is reported; bad framings throw or end framing", () => {
    let n = 0;
    const r = run(["a.b.c.d."], { delimiter: "." }, (m) => {
      n++;
      if (n === 1) throw new Error("boom");
      if (n === 2) return Promise.resolve("x") as unknown as MessageEdit;
      if (n === 3) return { pass: -1 };
      return m.toString().toUpperCase();
    });
    expect(r.text).toBe("a.b.c.D.");
    expect(r.failures).toHaveLength(3);
    const badMeasure = run(["abc", "def"], { measure: () => 0 }, upper);
    expect(badMeasure.text).toBe("abcdef");
    expect(badMeasure.failures).toHaveLength(1);
    const badFraming = run(["abc"], { delimiter: "" }, upper);
    expect(badFraming.text).toBe("abc");
    const messages = messageHelper({ log: () => {}, failed: () => {} });
    expect(() => messages({ direction: "sideways" } as unknown as DataChunk, { length: 1 }, upper)).toThrow(TypeError);
    expect(() => messages({ direction: "up", data: Buffer.from("a"), seq: 0 }, { length: 1 }, "edit" as unknown as Edit)).toThrow(TypeError);
  });

  it("a framing function is asked before each message (a length-framed body after a header)", () => {
    let body = 0;
    const framing = (): Framing => (body > 0 ? { length: body } : { delimiter: "\n" });
    const edit: Edit = (m) => {
      if (body > 0) {
        body = 0;
        return m.toString().toUpperCase();
      }
      const n = /^body (\d+)\n$/.exec(m.toString());
      if (n) body = Number(n[1]);
      return undefined;
    };
    expect(run(["body 3\nabc", "body 2\nx", "y", "\n"], framing, edit).text).toBe("body 3\nABCbody 2\nXY\n");
  });

  it("property: for any split of a stream into chunks, the concatenated output equals the output for the unsplit stream", () => {
    const messageArb = fc.oneof(
      fc
        .record({ ua: fc.string({ maxLength: 8 }), body: fc.string({ maxLength: 30 }) })
        .map(({ ua, body }) => `GET / HTTP/1.1\r\nua: ${ua}\r\nlen: ${body.length}\r\n\r\n${body}`),
      fc.string({ maxLength: 40 }),
      fc.constantFrom("\r\n\r\n", "\r\n", "\r", "\n\n", "ua: x\r\n\r\n"),
    );
    const framings: Array<() => { framing: Framing | (() => Framing); edit: Edit }> = [
      () => ({ framing: { delimiter: "\r\n\r\n" }, edit: httpEdit }),
      () => ({ framing: { delimiter: "\r\n\r\n", max: 24 }, edit: httpEdit }),
      () => ({ framing: { length: 7 }, edit: upper }),
      () => ({ framing: { length: 7, max: 5 }, edit: upper }),
      () => ({
        framing: { measure: (b) => (b.length === 0 ? undefined : 1 + (b[0]! % 13)), max: 9 },
        edit: (m) => ({ replace: `<${m.toString("latin1")}>`, pass: m.length % 3 }),
      }),
      () => ({
        framing: {
          measure: (b) => {
            const i = b.indexOf(0x0a);
            return i === -1 ? undefined : i + 1;
          },
          max: 16,
        },
        edit: upper,
      }),
      () => {
        let body = 0;
        return {
          framing: () => (body > 0 ? { length: body } : { delimiter: "\n" }),
          edit: (m: Buffer) => {
            if (body > 0) return (void (body = 0), m.toString("latin1").toUpperCase());
            body = m.length % 5;
            return `${m.length}|`;
          },
        };
      },
    ];
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), fc.nat(framings.length - 1), (parts, cuts, which) => {
        const stream = parts.join("");
        const points = [...new Set(cuts.map((c) => (stream.length === 0 ? 0 : c % (stream.length + 1))))].sort((a, b) => a - b);
        const chunks: string[] = [];
        let last = 0;
        for (const p of [...points, stream.length]) {
          if (p > last) chunks.push(stream.slice(last, p));
          last = Math.max(last, p);
        }
        const whole = framings[which]!();
        const split = framings[which]!();
        const a = run(stream.length === 0 ? [] : [stream], whole.framing, whole.edit);
        const b = run(chunks, split.framing, split.edit);
        expect(b.text).toBe(a.text);
        expect(b.logs).toEqual(a.logs);
      }),
      { numRuns: 600 },
    );
  });
});
