/** ProtocolSniffer: copying, the cap, and stopping once decided. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DETECT_LIMIT, detectProtocol, ProtocolSniffer } from "../../src/detect/index.js";
import { CURL_CLIENT_HELLO } from "./hello-fixture.js";
import { alpnExtension, clientHello, extension, handshake, helloBody, records, sniExtension } from "./fixtures.js";

/** `bytes` cut at the given offsets (any order, duplicates allowed). */
function cut(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  return pieces;
}

describe("ProtocolSniffer", () => {
  it("starts undecided with nothing kept", () => {
    const s = new ProtocolSniffer();
    expect(s.result).toEqual({ kind: "need-more" });
    expect(s.decided).toBe(false);
    expect(s.buffered).toBe(0);
    expect(s.push(new Uint8Array(0))).toEqual({ kind: "need-more" });
  });

  it("does not copy a first chunk that decides on its own", () => {
    const s = new ProtocolSniffer();
    expect(s.push(CURL_CLIENT_HELLO)).toMatchObject({ kind: "tls", sni: "example.test" });
    expect(s.buffered).toBe(0);
  });

  it("copies chunks: reusing the caller's buffer does not change the answer", () => {
    const s = new ProtocolSniffer();
    const shared = Buffer.from(CURL_CLIENT_HELLO.subarray(0, 100));
    expect(s.push(shared).kind).toBe("need-more");
    shared.fill(0);
    expect(s.push(CURL_CLIENT_HELLO.subarray(100))).toMatchObject({ kind: "tls", sni: "example.test" });
  });

  it("stays decided: later pushes are ignored and not copied", () => {
    const s = new ProtocolSniffer();
    s.push(Buffer.from("GET / HT"));
    expect(s.push(Buffer.from("TP/1.1\r\n\r\n"))).toMatchObject({ kind: "http" });
    expect(s.push(Buffer.from("garbage \x00\x1b"))).toMatchObject({ kind: "http" });
    expect(s.decided).toBe(true);
    expect(s.buffered).toBe(8 + 10);
  });

  it("decides unknown at the cap and keeps no more than DETECT_LIMIT bytes", () => {
    const s = new ProtocolSniffer();
    expect(s.push(Buffer.from("GET /")).kind).toBe("need-more");
    const chunk = Buffer.alloc(1000, 0x61);
    let r = s.result;
    let pushes = 0;
    while (!s.decided) {
      r = s.push(chunk);
      pushes++;
      expect(s.buffered).toBeLessThanOrEqual(DETECT_LIMIT);
    }
    expect(r).toEqual({ kind: "unknown" });
    expect(pushes).toBe(Math.ceil((DETECT_LIMIT - 5) / 1000));
    expect(s.buffered).toBe(DETECT_LIMIT);
  });

  it("a huge first chunk is decided from its first DETECT_LIMIT bytes", () => {
    const s = new ProtocolSniffer();
    expect(s.push(Buffer.concat([Buffer.from("GET /"), Buffer.alloc(100_000, 0x61)]))).toEqual({ kind: "unknown" });
  });

  it("any chunking of any bytes ends where detectProtocol on the first DETECT_LIMIT bytes does", () => {
    const starts = [Buffer.alloc(0), Buffer.from("GET / HTTP/1.1\r\n"), Buffer.from("SSH-2.0-"), CURL_CLIENT_HELLO.subarray(0, 200)];
    fc.assert(
      fc.property(fc.constantFrom(...starts), fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 }), (start, chunks) => {
        const s = new ProtocolSniffer();
        for (const c of [start, ...chunks]) s.push(c);
        const all = Buffer.concat([start, ...chunks]);
        expect(s.result).toEqual(detectProtocol(all));
      }),
      { numRuns: 1000 },
    );
  });

  it("any chunking of real and built messages, intact or with one byte changed, ends where detectProtocol does", () => {
    const messages = [
      CURL_CLIENT_HELLO,
      records(handshake(helloBody({ extensions: [sniExtension("a.test"), alpnExtension("h2"), extension(21, new Uint8Array(300))] })), 7),
      clientHello({ extensions: [] }),
      Buffer.from("POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nhi"),
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"),
      Buffer.from("SSH-2.0-OpenSSH_9.6\r\n\x00\x00\x01"),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...messages),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.option(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { nil: undefined }),
        (message, offsets, change) => {
          const bytes = Buffer.from(message);
          if (change !== undefined) bytes[change[0] % bytes.length] = change[1];
          const s = new ProtocolSniffer();
          for (const piece of cut(bytes, offsets)) {
            const before = s.result;
            const r = s.push(piece);
            if (before.kind !== "need-more") expect(r).toEqual(before);
          }
          expect(s.result).toEqual(detectProtocol(bytes));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("trickling DETECT_LIMIT bytes one at a time costs linear work (hostile 1-byte TLS records, endless headers)", () => {
    const tls = records(handshake(helloBody({ extensions: [extension(21, new Uint8Array(12_000))] })), 1).subarray(0, DETECT_LIMIT);
    const headers = Buffer.concat([Buffer.from("GET / HTTP/1.1\r\nX: "), Buffer.alloc(DETECT_LIMIT, 0x61)]);
    const target = Buffer.concat([Buffer.from("GET /"), Buffer.alloc(DETECT_LIMIT, 0x61)]);
    const started = performance.now();
    for (const bytes of [tls, headers, target]) {
      const s = new ProtocolSniffer();
      for (let i = 0; i < bytes.length && !s.decided; i++) s.push(bytes.subarray(i, i + 1));
      expect(s.decided).toBe(true);
    }
    // Linear: about 0.1 s here; re-scanning everything per push took over 4 s.
    expect(performance.now() - started).toBeLessThan(1500);
  });
});
