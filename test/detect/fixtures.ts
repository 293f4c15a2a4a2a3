/**
 * Helpers for the detection tests: real first bytes captured over loopback from real clients,
 * a ClientHello builder for the cases no client sends, and the split / trickle checks of
 * docs/architecture.md, "Tests". Loopback only; every server is closed before its capture resolves.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { execFile } from "node:child_process";
import { expect } from "vitest";
import { detectProtocol, ProtocolSniffer, type Detection } from "../../src/detect/index.js";

export const HOST = "127.0.0.1";

export interface Capture {
  /** The chunks as they arrived. */
  readonly chunks: readonly Buffer[];
  readonly bytes: Buffer;
}

/**
 * Starts a server on 127.0.0.1:0, runs `client(port)`, and records what the first connection
 * sends until `done(bytes)` holds (or `idleMs` pass without data), then drops the connection and
 * closes the server. The client is expected to fail after that; its errors are ignored.
 */
export async function capture(client: (port: number) => unknown, done: (bytes: Buffer) => boolean, idleMs = 1500): Promise<Capture> {
  const chunks: Buffer[] = [];
  let socket: Socket | undefined;
  const server = createServer();
  const finished = new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    server.once("connection", (s) => {
      socket = s;
      s.on("error", () => {});
      timer = setTimeout(finish, idleMs);
      s.on("data", (d: Buffer) => {
        chunks.push(Buffer.from(d));
        clearTimeout(timer);
        if (done(Buffer.concat(chunks))) finish();
        else timer = setTimeout(finish, idleMs);
      });
      s.on("end", finish);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  const running = Promise.resolve()
    .then(() => client(port))
    .catch(() => undefined);
  await finished;
  socket?.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await running;
  return { chunks, bytes: Buffer.concat(chunks) };
}

/** Runs a program to completion, ignoring its exit status (it is expected to fail). */
export function run(file: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 4000 }, () => resolve());
  });
}

/** Whether a program is on PATH. */
export function hasProgram(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", `command -v ${name}`], (error) => resolve(error === null));
  });
}

/** Stop conditions that do not use the code under test. */
export const until = {
  /** One whole TLS record (Node's and curl's ClientHellos fit in one). */
  tlsRecord: (b: Buffer) => b.length >= 5 && b.length >= 5 + b.readUInt16BE(3),
  /** The end of an HTTP header section. */
  headers: (b: Buffer) => b.includes("\r\n\r\n"),
  /** The first line. */
  line: (b: Buffer) => b.includes("\n"),
  /** At least n bytes. */
  bytes: (n: number) => (b: Buffer) => b.length >= n,
};

/**
 * The checks every well-formed message gets: the first `decidedAt` bytes decide it to `answer`;
 * every shorter prefix is "need-more"; every longer one (up to the whole) gives the same answer.
 * Returns `decidedAt` when it is not given (the first prefix that decides).
 */
export function expectPrefixes(bytes: Uint8Array, answer: Detection, decidedAt?: number): number {
  let first = -1;
  for (let k = 0; k <= bytes.length; k++) {
    const r = detectProtocol(bytes.subarray(0, k));
    if (r.kind === "need-more") {
      if (first >= 0) expect.fail(`prefix ${k} is need-more after ${first} decided`);
      continue;
    }
    if (first < 0) first = k;
    expect(r, `prefix of ${k} bytes`).toEqual(answer);
  }
  expect(first, "decided at all").toBeGreaterThan(0);
  if (decidedAt !== undefined) expect(first).toBe(decidedAt);
  return first;
}

/** Every two-chunk split through the sniffer, and one byte at a time, ends with `answer`. */
export function expectSniffed(bytes: Uint8Array, answer: Detection): void {
  for (let i = 0; i <= bytes.length; i++) {
    const s = new ProtocolSniffer();
    s.push(bytes.subarray(0, i));
    expect(s.push(bytes.subarray(i)), `split at ${i}`).toEqual(answer);
  }
  const s = new ProtocolSniffer();
  let last: Detection = s.result;
  for (let i = 0; i < bytes.length; i++) {
    const before = s.decided;
    last = s.push(bytes.subarray(i, i + 1));
    if (before) expect(last).toEqual(answer);
  }
  expect(last).toEqual(answer);
  expect(s.result).toEqual(answer);
}

// ---------------------------------------------------------------------------------------------
// A ClientHello builder (RFC 8446 §4.1.2) for the cases real clients do not send
// ---------------------------------------------------------------------------------------------

export const u8 = (n: number) => Buffer.from([n]);
export const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
export const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
export const vec8 = (b: Uint8Array) => Buffer.concat([u8(b.length), b]);
export const vec16 = (b: Uint8Array) => Buffer.concat([u16(b.length), b]);

export function extension(type: number, data: Uint8Array): Buffer {
  return Buffer.concat([u16(type), vec16(data)]);
}

export function sniExtension(...names: Array<string | { type: number; name: string }>): Buffer {
  const entries = names.map((n) => (typeof n === "string" ? { type: 0, name: n } : n));
  return extension(0, vec16(Buffer.concat(entries.map((e) => Buffer.concat([u8(e.type), vec16(Buffer.from(e.name, "latin1"))])))));
}

export function alpnExtension(...ids: string[]): Buffer {
  return extension(16, vec16(Buffer.concat(ids.map((id) => vec8(Buffer.from(id, "latin1"))))));
}

export function versionsExtension(...versions: number[]): Buffer {
  return extension(43, vec8(Buffer.concat(versions.map(u16))));
}

export interface HelloOptions {
  legacyVersion?: number;
  sessionId?: Uint8Array;
  suites?: number[];
  compression?: number[];
  /** undefined: no extensions block at all. */
  extensions?: Uint8Array[];
}

/** The ClientHello body. */
export function helloBody(o: HelloOptions = {}): Buffer {
  const parts = [
    u16(o.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xab),
    vec8(o.sessionId ?? Buffer.alloc(32, 0x11)),
    vec16(Buffer.concat((o.suites ?? [0x1301, 0x1302, 0xc02f]).map(u16))),
    vec8(Buffer.from(o.compression ?? [0])),
  ];
  if (o.extensions !== undefined) parts.push(vec16(Buffer.concat(o.extensions)));
  return Buffer.concat(parts);
}

/** A handshake message: msg_type, uint24 length, body. */
export function handshake(body: Uint8Array, type = 1): Buffer {
  return Buffer.concat([u8(type), u24(body.length), body]);
}

/** Splits a handshake stream into handshake records of at most `size` bytes each (type 22, 0x0301). */
export function records(stream: Uint8Array, size = 16384, version = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < stream.length; at += size) {
    const piece = stream.subarray(at, at + size);
    out.push(Buffer.concat([u8(22), u16(version), u16(piece.length), piece]));
  }
  return Buffer.concat(out);
}

/** A whole ClientHello in one record. */
export function clientHello(o: HelloOptions = {}): Buffer {
  return records(handshake(helloBody(o)));
}
