/**
 * The recorder over real sockets: traffic through a running engine whose observer is the
 * recorder, then assertions on the capture file read back with the reader (and raw SQL).
 */
import { describeSession } from "../../src/cli/commands/show.js";
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { allowAllHooks, combineObservers, SocksEngine, type EngineOptions, type HookRunner } from "../../src/engine/index.js";
import { encodeUdpDatagram, decodeUdpDatagram } from "../../src/engine/codec/udp.js";
import { CaptureReader } from "../../src/store/reader.js";
import { Recorder, type RecorderOptions } from "../../src/store/recorder.js";
import type { CaptureError } from "../../src/store/database.js";
import { RawClient, RecordingObserver, openTunnel, startEchoServer, startServer, until } from "../support/net.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-recorder-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Captured {
  file: string;
  recorder: Recorder;
  port: number;
  engine: SocksEngine;
  facts: RecordingObserver;
  /** Stops the engine and the recorder, then opens the file for reading. */
  finish(): Promise<CaptureReader>;
}

async function capturing(recorderOptions: RecorderOptions = {}, engineOptions: Partial<EngineOptions> = {}): Promise<Captured> {
  const file = join(root, `c${++counter}.db`);
  const recorder = new Recorder(file, recorderOptions);
  const facts = new RecordingObserver();
  const engine = new SocksEngine({ listen: [{ host: "127.0.0.1", port: 0 }], observer: combineObservers([facts, recorder]), ...engineOptions });
  const [bound] = await engine.start();
  let finished = false;
  const stop = async () => {
    if (finished) return;
    finished = true;
    await engine.stop(200);
    await recorder.close();
  };
  cleanups.push(stop);
  return {
    file,
    recorder,
    port: bound!.port,
    engine,
    facts,
    finish: async () => {
      await stop();
      const reader = new CaptureReader(file);
      cleanups.push(() => reader.close());
      return reader;
    },
  };
}

function payload(reader: CaptureReader, id: number, direction: "up" | "down", as: "data" | "sent" = "data"): Buffer {
  const parts: Buffer[] = [];
  for (const c of reader.chunks(id)) if (c.direction === direction) parts.push(as === "sent" ? (c.sent ?? c.data) : c.data);
  return Buffer.concat(parts);
}

describe("Recorder: TCP sessions", () => {
  it("stores the session's facts and its bytes both ways, byte for byte", async () => {
    const answer = randomBytes(300_000);
    const target = await startServer((socket) => {
      let got = 0;
      socket.on("data", (d) => {
        got += d.length;
        if (got === 200_000) socket.end(answer);
      });
    });
    cleanups.push(() => target.close());
    const cap = await capturing();
    const c = await openTunnel(cap.port, target.port);
    const sent = randomBytes(200_000);
    c.write(sent);
    const got = await c.readToEnd();
    expect(got.equals(answer)).toBe(true);
    c.end();
    await cap.facts.lastClosed();
    const reader = await cap.finish();

    const [row] = reader.sessions();
    expect(row).toMatchObject({
      id: 1,
      engine_id: 1,
      client_host: "127.0.0.1",
      version: "5",
      command: "connect",
      auth_method: "none",
      requested_type: "ipv4",
      requested_host: "127.0.0.1",
      requested_port: target.port,
      target_host: "127.0.0.1",
      target_port: target.port,
      remote_host: "127.0.0.1",
      reply: 0,
      status: "ok",
      close_reason: "completed",
      bytes_up_received: 200_000,
      bytes_up_sent: 200_000,
      bytes_down_received: 300_000,
      bytes_down_sent: 300_000,
      captured_bytes: 500_000,
      truncated: 0,
    });
    expect(row!.closed_at).toBeGreaterThanOrEqual(row!.opened_at);
    expect(payload(reader, 1, "up").equals(sent)).toBe(true);
    expect(payload(reader, 1, "down").equals(answer)).toBe(true);
    const seqs = [...reader.chunks(1)].map((c) => c.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(reader.runs()).toHaveLength(1);
    expect(reader.runs()[0]!.ended_at).not.toBeNull();
  });

  it("stores 64 MiB uploaded through the proxy exactly, in a file no bigger than 1.1× the payload", async () => {
    const size = 64 * 1024 * 1024;
    const target = await startServer((socket) => {
      const hash = createHash("sha256");
      let got = 0;
      socket.on("data", (d) => {
        hash.update(d);
        got += d.length;
        if (got === size) socket.end(hash.digest("hex"));
      });
    });
    cleanups.push(() => target.close());
    const cap = await capturing();
    const c = await openTunnel(cap.port, target.port);
    const block = randomBytes(1024 * 1024);
    const hash = createHash("sha256");
    for (let i = 0; i < 64; i++) {
      block.writeUInt32BE(i, 0);
      hash.update(block);
      c.write(Buffer.from(block));
    }
    const digest = hash.digest("hex");
    expect((await c.readToEnd()).toString()).toBe(digest);
    c.end();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    const stored = createHash("sha256");
    let bytes = 0;
    for (const chunk of reader.chunks(1)) {
      if (chunk.direction !== "up") continue;
      stored.update(chunk.data);
      bytes += chunk.data.length;
    }
    expect(bytes).toBe(size);
    expect(stored.digest("hex")).toBe(digest);
    expect(reader.session(1)).toMatchObject({ bytes_up_received: size, captured_bytes: size + 64, status: "ok" });
    expect(statSync(cap.file).size).toBeLessThanOrEqual(1.1 * size);
  }, 60_000);

  it("stores a hook's changes: bytes as received and as sent, the verdict, and injected bytes", async () => {
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    let dropped = false;
    const hooks: HookRunner = {
      ...allowAllHooks,
      wantsData: () => true,
      data: (chunk, session) => {
        const text = chunk.data.toString();
        if (text === "drop") {
          dropped = true;
          return { drop: true };
        }
        if (chunk.direction === "up") {
          session.inject("down", Buffer.from("[hi]"));
          return { replace: Buffer.from(text.toUpperCase()) };
        }
        return undefined;
      },
    };
    const cap = await capturing({}, { hooks });
    const c = await openTunnel(cap.port, target.port);
    c.write(Buffer.from("abc"));
    expect((await c.read(7)).toString()).toBe("[hi]ABC");
    c.write(Buffer.from("drop"));
    // The FIN follows once "drop" has had its verdict.
    await until(() => dropped, 3000, "the drop verdict");
    c.end();
    await c.readToEnd();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    const rows = [...reader.chunks(1)].map((r) => ({ dir: r.direction, data: r.data.toString(), sent: r.sent?.toString() ?? null, verdict: r.verdict }));
    expect(rows).toEqual([
      { dir: "down", data: "", sent: "[hi]", verdict: "inject" },
      { dir: "up", data: "abc", sent: "ABC", verdict: "replace" },
      { dir: "down", data: "ABC", sent: null, verdict: null },
      { dir: "up", data: "drop", sent: "", verdict: "drop" },
    ]);
    expect(reader.session(1)).toMatchObject({ bytes_up_received: 7, bytes_up_sent: 3, bytes_down_sent: 7 });
  });

  it("--capture-limit keeps the first bytes, marks the session truncated, and keeps exact counts", async () => {
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    const cap = await capturing({ captureLimit: 1000 });
    const c = await openTunnel(cap.port, target.port);
    const sent = randomBytes(50_000);
    c.write(sent);
    expect((await c.read(sent.length)).equals(sent)).toBe(true);
    c.end();
    await c.readToEnd();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    expect(reader.session(1)).toMatchObject({ truncated: 1, captured_bytes: 1000, bytes_up_received: 50_000, bytes_down_received: 50_000 });
    const kept = [...reader.chunks(1)].reduce((n, ch) => n + ch.data.length, 0);
    expect(kept).toBe(1000);
    // The first kept bytes are the client's, as sent.
    expect(payload(reader, 1, "up").equals(sent.subarray(0, payload(reader, 1, "up").length))).toBe(true);
    expect(reader.events(1).map((e) => [e.kind, e.code])).toContainEqual(["capture", "truncated"]);
  });

  it("pauses the relay instead of dropping when the writer falls behind", async () => {
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    const cap = await capturing({ highWaterBytes: 64 * 1024 });
    let paused = 0;
    const original = cap.recorder.chunk.bind(cap.recorder);
    cap.recorder.chunk = (f) => {
      const r = original(f);
      if (r !== undefined) paused++;
      return r;
    };
    const c = await openTunnel(cap.port, target.port);
    const sent = randomBytes(8 * 1024 * 1024);
    c.write(sent);
    expect((await c.read(sent.length)).equals(sent)).toBe(true);
    c.end();
    await c.readToEnd();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    expect(paused).toBeGreaterThan(0);
    expect(payload(reader, 1, "up").equals(sent)).toBe(true);
    expect(payload(reader, 1, "down").equals(sent)).toBe(true);
  });

  it("records failed and denied requests with their reply, errno and status", async () => {
    const cap = await capturing({}, { hooks: { ...allowAllHooks, request: (r) => (r.destination.port === 9 ? { deny: 0x02 } : undefined) } });
    // Refused: a port nobody listens on.
    const closed = await startServer(() => {});
    const port = closed.port;
    await closed.close();
    const a = await RawClient.connect(cap.port);
    a.write(Buffer.concat([Buffer.from("050100", "hex"), Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 255])]));
    await a.readToEnd();
    const b = await RawClient.connect(cap.port);
    b.write(Buffer.concat([Buffer.from("050100", "hex"), Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 9])]));
    await b.readToEnd();
    await until(() => cap.facts.of("closed").length >= 2, 3000, "both sessions closed");
    const reader = await cap.finish();
    expect(reader.session(1)).toMatchObject({ reply: 5, errno: "ECONNREFUSED", status: "failed", close_reason: "request-failed" });
    expect(reader.session(2)).toMatchObject({ reply: 2, status: "denied", close_reason: "request-failed" });
    expect(reader.count({ filter: "status:denied" })).toBe(1);
  });

  it("stores the engine's anomalies as events", async () => {
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    const cap = await capturing();
    const c = await RawClient.connect(cap.port);
    // RSV = 0x01 instead of 0x00: tolerated, reported.
    c.write(Buffer.concat([Buffer.from("050100", "hex"), Buffer.from([5, 1, 1, 1, 127, 0, 0, 1, target.port >> 8, target.port & 255])]));
    await c.read(12);
    c.end();
    await c.readToEnd();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    const events = reader.events(1);
    expect(events.length).toBeGreaterThan(0);
    expect(events[0]).toMatchObject({ kind: "anomaly", session_id: 1 });
    expect(events[0]!.code).toMatch(/RSV/i);
  });

  it("detects the protocol from the client's first bytes", async () => {
    const target = await startServer((s) => s.on("data", () => s.end("HTTP/1.1 204 No Content\r\n\r\n")));
    cleanups.push(() => target.close());
    const cap = await capturing();
    const c = await openTunnel(cap.port, target.port);
    c.write(Buffer.from("GET /path?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n"));
    await c.readToEnd();
    c.end();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    const row = reader.session(1)!;
    expect(row).toMatchObject({ protocol: "http", sni: "example.test" });
    expect(JSON.parse(row.protocol_info!)).toMatchObject({ method: "GET", path: "/path?q=1" });
  });
});

describe("Recorder: UDP datagrams", () => {
  it("stores every datagram of an association both ways, with peers and verdicts", async () => {
    const echo = createSocket("udp4");
    await new Promise<void>((r) => echo.bind(0, "127.0.0.1", () => r()));
    echo.on("message", (msg, rinfo) => echo.send(Buffer.concat([Buffer.from("re:"), msg]), rinfo.port, rinfo.address));
    const client: UdpSocket = createSocket("udp4");
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));
    cleanups.push(() => {
      echo.close();
      client.close();
    });
    const cap = await capturing();
    const tcp = await RawClient.connect(cap.port);
    tcp.write(Buffer.from("050100050300010000000000000", "hex").subarray(0, 13));
    await tcp.read(2);
    const reply = await tcp.read(10);
    const relayPort = reply.readUInt16BE(8);
    const messages: Buffer[] = [];
    client.on("message", (m) => messages.push(m));
    const sent = [Buffer.from("one"), randomBytes(1200), Buffer.from([0, 1, 2, 255])];
    for (const data of sent) {
      client.send(encodeUdpDatagram("127.0.0.1", echo.address().port, data), relayPort, "127.0.0.1");
      const before = messages.length;
      await until(() => messages.length > before, 1000, `the answer to datagram ${before + 1}`);
    }
    expect(messages).toHaveLength(3);
    // While the association is open its row already counts what went each way (a crash now
    // would leave these counts, not 0).
    const upBytes = sent.reduce((n, d) => n + d.length, 0);
    const live = new CaptureReader(cap.file);
    try {
      await until(() => live.session(1)?.bytes_down_sent === upBytes + 3 * 3, 2000, "the open association's byte counts in the capture");
      expect(live.session(1)).toMatchObject({ status: "open", bytes_up_received: upBytes, bytes_up_sent: upBytes, bytes_down_received: upBytes + 9 });
    } finally {
      live.close();
    }
    tcp.end();
    await tcp.readToEnd();
    await cap.facts.lastClosed();
    const reader = await cap.finish();
    expect(reader.session(1)).toMatchObject({ bytes_up_sent: upBytes, bytes_down_sent: upBytes + 9 });
    const rows = [...reader.datagrams(1)];
    const up = rows.filter((r) => r.direction === "up");
    const down = rows.filter((r) => r.direction === "down");
    expect(up.map((r) => r.data)).toEqual(sent);
    expect(down.map((r) => r.data)).toEqual(sent.map((d) => Buffer.concat([Buffer.from("re:"), d])));
    for (const r of rows) expect(r).toMatchObject({ verdict: "relayed", peer_host: "127.0.0.1", peer_port: echo.address().port });
    expect(up[0]).toMatchObject({ from_host: "127.0.0.1", from_port: client.address().port, to_port: echo.address().port });
    const decoded = messages.map((m) => decodeUdpDatagram(m));
    expect(decoded.every((d) => "value" in d)).toBe(true);
    expect(reader.session(1)).toMatchObject({ command: "udp", status: "ok" });
  });
});

describe("Recorder: UDP when the capture is behind", () => {
  it("leaves datagram records out and counts them on the session (one event per burst): what it holds stays bounded", async () => {
    const file = join(root, `c${++counter}.db`);
    const highWaterBytes = 64 * 1024;
    const recorder = new Recorder(file, { highWaterBytes });
    cleanups.push(() => recorder.close());
    const from = { host: "127.0.0.1", port: 5353 };
    const peer = { type: "ipv4" as const, host: "127.0.0.1", port: 53 };
    let seq = 0;
    /** A burst of 1 KiB datagrams, reported at once: the writer cannot catch up in between. */
    const burst = (n: number) => {
      for (let i = 0; i < n; i++) {
        recorder.datagram({
          id: 1,
          direction: "up",
          seq: seq++,
          at: 1000 + seq,
          peer,
          from,
          received: Buffer.alloc(1024, i),
          to: { host: "127.0.0.1", port: 53 },
          verdict: "relayed",
        });
      }
    };
    recorder.sessionOpened({ id: 1, at: 1000, client: { host: "127.0.0.1", port: 40000 }, local: { host: "127.0.0.1", port: 1080 } });
    burst(1000);
    // Before: every record was queued (about 1.2 MiB held for a 64 KiB capture budget).
    expect(recorder.held).toBeLessThanOrEqual(highWaterBytes);
    expect(recorder.maxHeld).toBeLessThanOrEqual(highWaterBytes);
    await until(() => recorder.held === 0, 2000, "the writer catching up after the first burst");
    burst(1000);
    recorder.sessionClosed({
      id: 1,
      at: 5000,
      reason: "completed",
      bytesUpReceived: 2_048_000,
      bytesUpSent: 2_048_000,
      bytesDownReceived: 0,
      bytesDownSent: 0,
    });
    await recorder.close();
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    const stored = [...reader.datagrams(1)].length;
    const session = reader.session(1)!;
    expect(stored).toBeGreaterThan(0);
    expect(session.uncaptured_datagrams).toBeGreaterThan(1000);
    expect(stored + session.uncaptured_datagrams).toBe(2000);
    const events = reader.events(1).filter((e) => e.code === "datagrams-not-captured");
    expect(events).toHaveLength(2);
    const counted = events.map((e) => Number(/^(\d+) datagram records were left out/.exec(e.message)?.[1]));
    expect(counted[0]! + counted[1]!).toBe(session.uncaptured_datagrams);
    const shown = [...describeSession(reader, session, { hex: false, maxBytes: 0 })].join("\n");
    expect(shown).toContain(`uncaptured: ${session.uncaptured_datagrams} datagrams (relayed while the capture was behind)`);
  });
});

describe("Recorder: failures and durability", () => {
  it("a write error stops capture once, loudly, and the proxy goes on relaying", async () => {
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    const failures: CaptureError[] = [];
    // A file bounded to a few pages: "database or disk is full" after a little payload.
    const cap = await capturing({ maxPageCount: 40, failed: (e) => failures.push(e) });
    const c = await openTunnel(cap.port, target.port);
    const sent = randomBytes(2 * 1024 * 1024);
    c.write(sent);
    expect((await c.read(sent.length)).equals(sent)).toBe(true);
    await until(() => failures.length > 0, 2000, "the capture failure");
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/disk full/);
    expect(cap.recorder.capturing).toBe(false);
    // Still relaying after capture stopped.
    c.write(Buffer.from("still here"));
    expect((await c.read(10)).toString()).toBe("still here");
    c.end();
    await c.readToEnd();
    await cap.finish();
    const db = new Database(cap.file, { readonly: true });
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    db.close();
  });

  it("creates the file 0600, and its WAL too", async () => {
    const cap = await capturing();
    const target = await startEchoServer();
    cleanups.push(() => target.close());
    const c = await openTunnel(cap.port, target.port);
    c.write(Buffer.from("x"));
    await c.read(1);
    // The WAL appears with the writer's first batch (within a flush interval, later on a loaded machine).
    await until(() => existsSync(`${cap.file}-wal`), 5000, "the WAL file");
    expect(statSync(cap.file).mode & 0o777).toBe(0o600);
    expect(statSync(`${cap.file}-wal`).mode & 0o777).toBe(0o600);
    c.end();
    await c.readToEnd();
  });
});
