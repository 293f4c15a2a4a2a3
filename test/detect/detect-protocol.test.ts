/**
 * detectProtocol on first bytes captured from real clients over loopback (Node tls, curl, Node
 * http and http2, OpenSSH when installed), whole, split at every offset and trickled, plus the
 * dispatch rules, the size cap and a fuzz property.
 */
import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { connect as tlsConnect } from "node:tls";
import { request } from "node:http";
import { connect as h2connect } from "node:http2";
import { DETECT_LIMIT, detectProtocol, type Detection } from "../../src/detect/index.js";
import { HOST, capture, expectPrefixes, expectSniffed, hasProgram, run, until, type Capture } from "./fixtures.js";

const caps: Record<string, Capture> = {};
let haveSsh = false;

beforeAll(async () => {
  haveSsh = await hasProgram("ssh");
  const [nodeTls, curlTls, nodeTlsNoSni, curlHttp, nodeHttp, nodeH2, ssh] = await Promise.all([
    capture((port) => {
      const s = tlsConnect({ host: HOST, port, servername: "example.test", ALPNProtocols: ["h2", "http/1.1"], rejectUnauthorized: false });
      s.on("error", () => {});
    }, until.tlsRecord),
    capture(
      (port) => run("curl", ["-sk", "--max-time", "2", `https://example.test:${port}/`, "--connect-to", `example.test:${port}:${HOST}:${port}`]),
      until.tlsRecord,
    ),
    // An IP address as the host: Node sends no server_name (RFC 6066 §3 forbids literal IPs).
    capture((port) => {
      const s = tlsConnect({ host: HOST, port, rejectUnauthorized: false, minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
      s.on("error", () => {});
    }, until.tlsRecord),
    capture((port) => run("curl", ["-s", "--max-time", "2", `http://${HOST}:${port}/x?y`]), until.headers),
    capture(
      (port) => {
        const req = request({ host: HOST, port, method: "POST", path: "/submit?q=1", headers: { "X-Test": "1", "Content-Type": "text/plain" } });
        req.on("error", () => {});
        req.end("hello body");
      },
      (b) => until.headers(b) && b.includes("hello body"),
    ),
    capture((port) => {
      const session = h2connect(`http://${HOST}:${port}`);
      session.on("error", () => {});
    }, until.bytes(24)),
    haveSsh
      ? capture(
          (port) =>
            run("ssh", [
              "-F",
              "/dev/null",
              "-o",
              "BatchMode=yes",
              "-o",
              "ConnectTimeout=2",
              "-o",
              "StrictHostKeyChecking=no",
              "-o",
              "UserKnownHostsFile=/dev/null",
              "-p",
              String(port),
              `nobody@${HOST}`,
              "true",
            ]),
          until.line,
        )
      : Promise.resolve({ chunks: [], bytes: Buffer.alloc(0) }),
  ]);
  Object.assign(caps, { nodeTls, curlTls, nodeTlsNoSni, curlHttp, nodeHttp, nodeH2, ssh });
});

/** The whole capture, its prefixes, the sniffer over every split, and the chunks as they came. */
function checkCapture(c: Capture, answer: Detection, decidedAt?: number): void {
  expect(c.bytes.length).toBeGreaterThan(0);
  expect(detectProtocol(c.bytes)).toEqual(answer);
  expectPrefixes(c.bytes, answer, decidedAt);
  expectSniffed(c.bytes, answer);
}

describe("TLS ClientHello from real clients", () => {
  it("Node tls.connect: SNI, ALPN h2 + http/1.1, TLS 1.3", () => {
    const c = caps.nodeTls!;
    // Decided by the last byte of the hello, not earlier.
    checkCapture(c, { kind: "tls", sni: "example.test", alpn: ["h2", "http/1.1"], version: "TLS 1.3" }, c.bytes.length);
  });

  it("curl: SNI from the URL, its ALPN list", () => {
    const c = caps.curlTls!;
    const r = detectProtocol(c.bytes);
    expect(r).toMatchObject({ kind: "tls", sni: "example.test", version: "TLS 1.3" });
    expect(r.kind === "tls" && r.alpn).toContain("http/1.1");
    checkCapture(c, r, c.bytes.length);
  });

  it("without SNI (IP address host) and capped at TLS 1.2: still TLS, no sni, version TLS 1.2", () => {
    const c = caps.nodeTlsNoSni!;
    const r = detectProtocol(c.bytes);
    expect(r).toEqual({ kind: "tls", alpn: [], version: "TLS 1.2" });
    expect("sni" in r).toBe(false);
    checkCapture(c, r, c.bytes.length);
  });

  it("every truncation of a real hello is need-more, never another answer", () => {
    const b = caps.nodeTls!.bytes;
    for (let k = 0; k < b.length; k++) expect(detectProtocol(b.subarray(0, k)).kind).toBe("need-more");
  });

  it("the same hello re-cut into 1-byte to 300-byte records and chunks", () => {
    const b = caps.nodeTls!.bytes;
    const stream = b.subarray(5);
    for (const size of [1, 2, 3, 4, 5, 7, 100, 300]) {
      const recut: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) {
        const piece = stream.subarray(at, at + size);
        recut.push(Buffer.from([22, 3, 1, piece.length >> 8, piece.length & 0xff]), piece);
      }
      const bytes = Buffer.concat(recut);
      expect(detectProtocol(bytes), `records of ${size}`).toEqual(detectProtocol(b));
      if (size >= 100) expectPrefixes(bytes, detectProtocol(b), bytes.length);
    }
  });
});

describe("HTTP from real clients", () => {
  it("curl http://127.0.0.1:PORT/x?y", () => {
    const c = caps.curlHttp!;
    const host = c.bytes.toString("latin1").match(/\r\nHost: ([^\r]*)\r\n/)![1];
    checkCapture(c, { kind: "http", method: "GET", path: "/x?y", host, version: "1.1" }, c.bytes.length);
    expect(host).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("Node http.request POST with a body: decided at the end of the headers", () => {
    const c = caps.nodeHttp!;
    const headerEnd = c.bytes.indexOf("\r\n\r\n") + 4;
    const host = c.bytes.toString("latin1").match(/\r\nHost: ([^\r]*)\r\n/)![1];
    checkCapture(c, { kind: "http", method: "POST", path: "/submit?q=1", host, version: "1.1" }, headerEnd);
  });

  it("Node http2.connect (prior knowledge): the 24-byte preface decides", () => {
    const c = caps.nodeH2!;
    expect(c.bytes.subarray(0, 24).toString("latin1")).toBe("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    checkCapture(c, { kind: "http2" }, 24);
  });
});

describe("SSH", () => {
  it("a hand-made banner followed by the binary packet that comes next", () => {
    const banner = "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13";
    const bytes = Buffer.concat([Buffer.from(`${banner}\r\n`), Buffer.from([0, 0, 5, 0xdc, 4, 20, 1, 2, 3])]);
    const c = { chunks: [bytes], bytes };
    checkCapture(c, { kind: "ssh", banner }, banner.length + 2);
  });

  it("the OpenSSH client's own banner (when ssh is installed)", (ctx) => {
    if (!haveSsh) ctx.skip();
    const c = caps.ssh!;
    const line = c.bytes.toString("latin1").split("\r\n")[0]!;
    expect(line).toMatch(/^SSH-2\.0-OpenSSH/);
    checkCapture(c, { kind: "ssh", banner: line }, line.length + 2);
  });
});

describe("dispatch on the first byte", () => {
  it("nothing yet is need-more", () => {
    expect(detectProtocol(new Uint8Array(0))).toEqual({ kind: "need-more" });
  });

  it("is unknown at once for a first byte no protocol starts with", () => {
    const starts = new Set([0x16, ..."SCDGHOPT"].map((c) => (typeof c === "number" ? c : c.charCodeAt(0))));
    for (let b = 0; b < 256; b++) {
      const r = detectProtocol(Uint8Array.of(b));
      expect(r.kind, `first byte 0x${b.toString(16)}`).toBe(starts.has(b) ? "need-more" : "unknown");
    }
  });

  it.each([
    ["SOCKS5 greeting", "05 01 00"],
    ["SOCKS4 request", "04 01 00 50 7f 00 00 01 00"],
    ["TLS alert record", "15 03 03 00 02 02 28"],
    ["TLS application data", "17 03 03 00 05 01 02 03 04 05"],
    ["SSLv2-compatible hello", "80 2e 01 00 02 00 15 00 00 00 10"],
    ["DNS over TCP", "00 1d ab cd 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65"],
    ["SMTP command (client speaks first)", Buffer.from("EHLO example.test\r\n").toString("hex")],
    ["lowercase method", Buffer.from("get / HTTP/1.1\r\n\r\n").toString("hex")],
    ["unknown method", Buffer.from("PROPFIND / HTTP/1.1\r\n\r\n").toString("hex")],
    ["HTTP/2 version on a GET", Buffer.from("GET / HTTP/2.0\r\n\r\n").toString("hex")],
    ["SSH-1.5 (SSH1 only)", Buffer.from("SSH-1.5-OpenSSH\r\n").toString("hex")],
    ["Redis RESP", Buffer.from("*1\r\n$4\r\nPING\r\n").toString("hex")],
    ["PostgreSQL startup", "00 00 00 08 04 d2 16 2f"],
  ])("%s is unknown", (_name, hexBytes) => {
    const bytes = Buffer.from(hexBytes.replace(/ /g, ""), "hex");
    expect(detectProtocol(bytes)).toEqual({ kind: "unknown" });
  });
});

describe("the DETECT_LIMIT cap", () => {
  it("is 16 KiB", () => {
    expect(DETECT_LIMIT).toBe(16384);
  });

  it("headers that never end: need-more below the cap; at the cap, HTTP with what was seen", () => {
    const head = Buffer.from("GET /big HTTP/1.1\r\nHost: a.test\r\nX-Pad: ");
    const bytes = Buffer.concat([head, Buffer.alloc(DETECT_LIMIT, 0x61)]);
    expect(detectProtocol(bytes.subarray(0, DETECT_LIMIT - 1))).toEqual({ kind: "need-more" });
    const capped = { kind: "http", method: "GET", path: "/big", host: "a.test", version: "1.1" };
    expect(detectProtocol(bytes.subarray(0, DETECT_LIMIT))).toEqual(capped);
    expect(detectProtocol(bytes)).toEqual(capped);
  });

  it("a request line longer than the cap is unknown", () => {
    const bytes = Buffer.concat([Buffer.from("GET /"), Buffer.alloc(DETECT_LIMIT, 0x61)]);
    expect(detectProtocol(bytes.subarray(0, DETECT_LIMIT - 1))).toEqual({ kind: "need-more" });
    expect(detectProtocol(bytes)).toEqual({ kind: "unknown" });
  });

  it("bytes past the cap are never looked at", () => {
    const hello = caps.nodeTls!.bytes;
    const padded = Buffer.concat([Buffer.from("GET / HTTP/1.1\r\nX: "), Buffer.alloc(DETECT_LIMIT), hello]);
    expect(detectProtocol(padded)).toEqual({ kind: "unknown" });
  });
});

describe("properties", () => {
  it("arbitrary bytes never throw, and every answer is one of the kinds", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const r = detectProtocol(bytes);
        expect(["need-more", "unknown", "tls", "http", "http2", "ssh"]).toContain(r.kind);
      }),
      { numRuns: 2000 },
    );
  });

  it("arbitrary bytes after each protocol's first bytes never throw, and decisions are monotonic", () => {
    const starts = [Buffer.from([0x16, 0x03, 0x01]), Buffer.from("GET /"), Buffer.from("SSH-2.0-"), Buffer.from("PRI * HTTP/2.0\r\n")];
    fc.assert(
      fc.property(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 300 }), fc.nat(), (start, tail, cut) => {
        const bytes = Buffer.concat([start, tail]);
        const whole = detectProtocol(bytes);
        const prefix = detectProtocol(bytes.subarray(0, cut % (bytes.length + 1)));
        if (prefix.kind !== "need-more") expect(whole).toEqual(prefix);
      }),
      { numRuns: 2000 },
    );
  });

  it("a mutated real ClientHello never throws and, decided, is monotonic in its prefixes", () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (pos, value, cut) => {
        const hello = Buffer.from(caps.nodeTls!.bytes);
        hello[pos % hello.length] = value;
        const whole = detectProtocol(hello);
        const prefix = detectProtocol(hello.subarray(0, cut % (hello.length + 1)));
        if (prefix.kind !== "need-more") expect(whole).toEqual(prefix);
      }),
      { numRuns: 1000 },
    );
  });

  it("random printable HTTP requests are detected with their fields", () => {
    const token = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&%"), minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"),
        token,
        token,
        fc.boolean(),
        (method, path, host, crlf) => {
          const eol = crlf ? "\r\n" : "\n";
          const bytes = Buffer.from(`${method} /${path} HTTP/1.0${eol}hOsT:  ${host} ${eol}Accept: */*${eol}${eol}`);
          expect(detectProtocol(bytes)).toEqual({ kind: "http", method, path: `/${path}`, host, version: "1.0" });
        },
      ),
    );
  });
});
