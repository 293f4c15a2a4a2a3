/**
 * Stream lifecycle over real loopback sockets
 * (half-close both ways, resets, handshake and idle timeouts, the session limit), a 64 MiB
 * transfer each way checked by SHA-256, and graceful shutdown.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { RawClient, connect5, hex, openTunnel, sleep, startEchoServer, startServer, until, withTimeout, useTestProxies } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

const { cleanups, proxy } = useTestProxies();

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

/** A half-close aware target; `handler` gets each connection. */
async function target(handler: (socket: Socket) => void) {
  const server = await startServer(handler, undefined, { allowHalfOpen: true });
  cleanups.push(() => server.close());
  return server;
}

async function tunnel(proxyPort: number, targetPort: number): Promise<RawClient> {
  const c = await openTunnel(proxyPort, targetPort);
  cleanups.push(() => c.destroy());
  return c;
}

/** Reads a socket to its end and resolves with everything received. */
function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => socket.once("end", () => resolve(Buffer.concat(chunks))));
}

describe("half-close (research §7, scenarios 34–35)", () => {
  it("#34 client half-close: the target sees EOF, its reply (sent only after EOF) still reaches the client, then FIN", async () => {
    let targetSawEnd = false;
    const t = await target((socket) => {
      collect(socket).then((data) => {
        targetSawEnd = true;
        socket.end(Buffer.concat([Buffer.from("got:"), data]));
      });
    });
    const p = await proxy();
    const c = await tunnel(p.port, t.port);
    c.write("68 69");
    c.end();
    expect((await c.readToEnd(3000)).toString()).toBe("got:hi");
    expect(targetSawEnd).toBe(true);
    // Both FINs are in, so the proxy closes its client socket at once (tcp-relay.ts passFin): still a FIN, not a reset.
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("completed");
    expect(closed).toMatchObject({ bytesUpReceived: 2, bytesUpSent: 2, bytesDownReceived: 6, bytesDownSent: 6 });
  });

  it("#34 request + data + FIN in one burst (printf | nc): the FIN is passed on after the connect, the reply arrives", async () => {
    const t = await target((socket) => {
      collect(socket).then((data) => socket.end(Buffer.concat([Buffer.from("got:"), data])));
    });
    const p = await proxy();
    const c = await RawClient.connect(p.port);
    cleanups.push(() => c.destroy());
    c.write(Buffer.concat([hex("050100"), connect5(t.port), Buffer.from("hi")]));
    c.end();
    expect((await c.read(12)).subarray(0, 5).toString("hex")).toBe("0500050000");
    expect((await c.readToEnd(3000)).toString()).toBe("got:hi");
    expect((await p.observer.lastClosed()).reason).toBe("completed");
  });

  it("#35 target half-close: the client gets the target's data and FIN, keeps sending, and its data still arrives", async () => {
    let received: Promise<Buffer> | undefined;
    const t = await target((socket) => {
      received = collect(socket);
      socket.end("bye");
    });
    const p = await proxy();
    const c = await tunnel(p.port, t.port);
    expect((await c.readToEnd(3000)).toString()).toBe("bye");
    expect(c.closed).toBe(false);
    const parts: string[] = [];
    for (let i = 0; i < 5; i++) {
      const part = `after-fin-${i};`;
      parts.push(part);
      c.write(Buffer.from(part));
      // Pacing on purpose: five separate writes over half a second after the target's FIN.
      await sleep(100);
    }
    c.end();
    const data = await withTimeout(received!, 3000, "target did not get the client's FIN");
    expect(data.toString()).toBe(parts.join(""));
    await c.waitClosed();
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("completed");
    expect(closed.bytesUpSent).toBe(parts.join("").length);
    expect(closed.bytesDownSent).toBe(3);
  });
});

describe("resets and timeouts (research §7, scenarios 36–38)", () => {
  it("#36 target RST mid-stream → the client connection is reset (not FIN), session recorded as target-reset", async () => {
    let targetSocket: Socket | undefined;
    const t = await target((socket) => {
      targetSocket = socket;
      socket.write("partial");
    });
    const p = await proxy();
    const c = await tunnel(p.port, t.port);
    expect((await c.read(7)).toString()).toBe("partial");
    targetSocket!.resetAndDestroy();
    await c.waitClosed(3000);
    expect(c.error?.code).toBe("ECONNRESET");
    expect(c.ended).toBe(false);
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("target-reset");
    expect(closed.errno).toBe("ECONNRESET");
    expect(closed.bytesDownSent).toBe(7);
  });

  it("#36 (mirror) client RST → the target connection is reset, session recorded as client-reset", async () => {
    let targetError: string | undefined;
    let targetEnded = false;
    let targetClosed!: () => void;
    const closedOnTarget = new Promise<void>((resolve) => (targetClosed = resolve));
    const t = await target((socket) => {
      socket.on("error", (e: NodeJS.ErrnoException) => (targetError = e.code));
      socket.on("end", () => (targetEnded = true));
      socket.on("close", () => targetClosed());
      socket.write("x");
    });
    const p = await proxy();
    const c = await tunnel(p.port, t.port);
    expect((await c.read(1)).toString()).toBe("x");
    c.socket.resetAndDestroy();
    await withTimeout(closedOnTarget, 3000, "target socket did not close");
    expect(targetError).toBe("ECONNRESET");
    expect(targetEnded).toBe(false);
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("client-reset");
    expect(closed.errno).toBe("ECONNRESET");
  });

  it("#37 silent client is closed at the handshake timeout (handshake-timeout) while others are served", async () => {
    const clock = new ManualClock();
    const e = await echo();
    const p = await proxy({ handshakeTimeoutMs: 300, clock });
    const silent = await RawClient.connect(p.port);
    cleanups.push(() => silent.destroy());
    await clock.armed(300);
    // Meanwhile the accept loop keeps serving other clients, before and after the timeout.
    const busy = await tunnel(p.port, e.port);
    busy.write(Buffer.from("during"));
    expect((await busy.read(6)).toString()).toBe("during");
    // 1 ms before the deadline the slow client is still served: its greeting gets an answer.
    clock.advance(299);
    expect(p.observer.of("anomaly")).toEqual([]);
    silent.write("050100");
    expect((await silent.read(2)).toString("hex")).toBe("0500");
    // The greeting alone does not finish the handshake: at the deadline the session ends.
    clock.advance(1);
    expect((await silent.readToEnd(3000)).length).toBe(0);
    const silentClose = await p.observer.lastClosed();
    expect(silentClose.reason).toBe("handshake-timeout");
    const opened = p.observer.of("opened").find((f) => f.id === silentClose.id);
    expect(silentClose.at - opened!.at).toBe(300);
    expect(
      p.observer
        .of("anomaly")
        .filter((a) => a.code === "handshake-timeout")
        .map((a) => a.id),
    ).toEqual([silentClose.id]);
    // The tunnel that finished its handshake is not subject to the handshake timeout.
    clock.advance(10_000);
    busy.write(Buffer.from("after"));
    expect((await busy.read(5)).toString()).toBe("after");
    const late = await tunnel(p.port, e.port);
    late.write(Buffer.from("late"));
    expect((await late.read(4)).toString()).toBe("late");
    expect(p.observer.of("closed")).toHaveLength(1);
  });

  // The idle sweeper runs every quarter of the timeout (75 ms here): a tunnel is closed between
  // 300 and 375 ms after its last byte.
  it("#38 idle tunnel is closed on both sides after idleTimeoutMs (idle-timeout)", async () => {
    const clock = new ManualClock();
    let targetClosed = false;
    const t = await target((socket) => {
      socket.on("close", () => (targetClosed = true));
      socket.pipe(socket);
    });
    const p = await proxy({ idleTimeoutMs: 300, clock });
    const c = await tunnel(p.port, t.port);
    c.write(Buffer.from("x"));
    expect((await c.read(1)).toString()).toBe("x");
    await clock.armed(75);
    // 1 ms before the timeout the tunnel still relays (and that byte starts a new idle period).
    clock.advance(299);
    c.write(Buffer.from("y"));
    expect((await c.read(1)).toString()).toBe("y");
    clock.advance(299);
    c.write(Buffer.from("z"));
    expect((await c.read(1)).toString()).toBe("z");
    expect(p.observer.of("closed")).toEqual([]);
    // Past the timeout plus one sweep with no byte, it is closed.
    clock.advance(375);
    expect((await c.readToEnd(3000)).length).toBe(0);
    await until(() => targetClosed, 2000, "target side closed");
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("idle-timeout");
  });

  it("#38 a tunnel with traffic every 100 ms outlives the 300 ms idle timeout", async () => {
    const clock = new ManualClock();
    const e = await echo();
    const p = await proxy({ idleTimeoutMs: 300, clock });
    const c = await tunnel(p.port, e.port);
    for (let i = 0; i < 9; i++) {
      c.write(Buffer.of(0x30 + i));
      expect((await c.read(1))[0]).toBe(0x30 + i);
      clock.advance(100);
    }
    expect(c.ended || c.closed).toBe(false);
    expect(p.observer.of("closed")).toEqual([]);
    // The 900 ms above were the engine's time too: without traffic the same tunnel times out.
    clock.advance(375);
    expect((await c.readToEnd(3000)).length).toBe(0);
    expect((await p.observer.lastClosed()).reason).toBe("idle-timeout");
  });

  it("#38 one-way traffic (downloads only) keeps the tunnel alive too", async () => {
    const clock = new ManualClock();
    let targetSocket: Socket | undefined;
    const t = await target((socket) => (targetSocket = socket));
    const p = await proxy({ idleTimeoutMs: 300, clock });
    const c = await tunnel(p.port, t.port);
    for (let i = 0; i < 8; i++) {
      targetSocket!.write("d");
      expect((await c.read(1)).toString()).toBe("d");
      clock.advance(100);
    }
    expect(c.ended || c.closed).toBe(false);
    expect(p.observer.of("closed")).toEqual([]);
    clock.advance(375);
    expect((await c.readToEnd(3000)).length).toBe(0);
    expect((await p.observer.lastClosed()).reason).toBe("idle-timeout");
  });
});

describe("session limit (research §7, scenario 39)", () => {
  it("#39 maxSessions 2: the third connection is closed promptly (session-limit), the first two keep working", async () => {
    const e = await echo();
    const p = await proxy({ maxSessions: 2 });
    const first = await tunnel(p.port, e.port);
    const second = await tunnel(p.port, e.port);
    const third = await RawClient.connect(p.port);
    cleanups.push(() => third.destroy());
    const t0 = Date.now();
    expect((await third.readToEnd(2000)).length).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1000);
    const closed = p.observer.of("closed");
    expect(closed).toHaveLength(1);
    expect(closed[0]!.reason).toBe("session-limit");
    expect(p.observer.of("anomaly").map((a) => a.code)).toEqual(["session-limit"]);
    for (const [c, text] of [
      [first, "one"],
      [second, "two"],
    ] as const) {
      c.write(Buffer.from(text));
      expect((await c.read(text.length)).toString()).toBe(text);
    }
    // A slot frees up when a session ends.
    first.end();
    await first.readToEnd();
    await until(() => p.engine.sessionCount < 2, 2000, "first session ended");
    const fourth = await tunnel(p.port, e.port);
    fourth.write(Buffer.from("four"));
    expect((await fourth.read(4)).toString()).toBe("four");
  });
});

// ---------------------------------------------------------------------------------------------
// Bulk transfer
// ---------------------------------------------------------------------------------------------

const MiB = 1024 * 1024;
const TOTAL = 64 * MiB;

/** Deterministic pseudo-random bytes, 1 MiB at a time (xorshift32), never all 64 MiB at once. */
function* stream(seed: number, total: number): Generator<Buffer> {
  let x = seed >>> 0 || 1;
  for (let sent = 0; sent < total; sent += MiB) {
    const words = new Uint32Array(Math.min(MiB, total - sent) / 4);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
    yield Buffer.from(words.buffer);
  }
}

/** Writes the stream with backpressure, ends the socket, resolves with the SHA-256 of what was sent. */
async function send(socket: Socket, seed: number): Promise<string> {
  const hash = createHash("sha256");
  for (const chunk of stream(seed, TOTAL)) {
    hash.update(chunk);
    if (!socket.write(chunk)) await once(socket, "drain");
  }
  socket.end();
  return hash.digest("hex");
}

/** Hashes everything `socket` delivers until its end; resolves with the digest and the count. */
function receive(socket: Socket, already: Buffer = Buffer.alloc(0)): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256").update(already);
  let bytes = already.length;
  socket.on("data", (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  return new Promise((resolve, reject) => {
    socket.once("end", () => resolve({ sha256: hash.digest("hex"), bytes }));
    socket.once("error", reject);
  });
}

describe("bulk transfer", () => {
  it("64 MiB each way at once through the proxy, SHA-256 equal on both ends", { timeout: 30_000 }, async () => {
    let targetSent: Promise<string> | undefined;
    let targetGot: Promise<{ sha256: string; bytes: number }> | undefined;
    const t = await target((socket) => {
      targetGot = receive(socket);
      targetSent = send(socket, 0xdecafbad);
    });
    const p = await proxy();
    const c = await tunnel(p.port, t.port);
    // Take over from RawClient's buffering: bytes that came with the reply, then a hashing listener.
    const early = c.pending;
    c.socket.removeAllListeners("data");
    const clientGot = receive(c.socket, Buffer.from(early));
    const clientSent = await withTimeout(send(c.socket, 0x12345678), 25_000, "upload stalled");
    const up = await withTimeout(targetGot!, 25_000, "upload did not finish");
    const down = await withTimeout(clientGot, 25_000, "download did not finish");
    expect(up.bytes).toBe(TOTAL);
    expect(down.bytes).toBe(TOTAL);
    expect(up.sha256).toBe(clientSent);
    expect(down.sha256).toBe(await withTimeout(targetSent!, 5000, "target send stalled"));
    const closed = await p.observer.lastClosed(5000);
    expect(closed).toMatchObject({ reason: "completed", bytesUpReceived: TOTAL, bytesUpSent: TOTAL, bytesDownReceived: TOTAL, bytesDownSent: TOTAL });
  });
});

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

describe("engine.stop(graceMs)", () => {
  it("stops accepting at once but lets an open tunnel finish within the grace period", async () => {
    // Time stands still: stop() can only resolve because the last session ended.
    const clock = new ManualClock();
    const e = await echo();
    const p = await proxy({ clock });
    const c = await tunnel(p.port, e.port);
    let stopped = false;
    const stopping = p.engine.stop(3000).then(() => (stopped = true));
    await clock.armed(3000);
    // No new connections, from the moment stop() is called...
    const refused = await RawClient.connect(p.port).then(
      (late) => {
        late.destroy();
        return "connected";
      },
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(refused).toBe("ECONNREFUSED");
    // ...but the open tunnel keeps relaying.
    c.write(Buffer.from("still here"));
    expect((await c.read(10)).toString()).toBe("still here");
    expect(stopped).toBe(false);
    c.end();
    expect((await c.readToEnd()).length).toBe(0);
    await withTimeout(stopping, 2500, "stop did not resolve after the last session ended");
    expect(p.observer.of("closed").map((f) => f.reason)).toEqual(["completed"]);
    // The grace timer was cancelled, not left pending.
    expect(clock.pendingDelays).not.toContain(3000);
  });

  it("ends tunnels still open when the grace period runs out (shutdown)", async () => {
    const clock = new ManualClock();
    const e = await echo();
    const p = await proxy({ clock });
    const c = await tunnel(p.port, e.port);
    let stopped = false;
    const stopping = p.engine.stop(300).then(() => (stopped = true));
    await clock.armed(300);
    // 1 ms before the grace period ends the tunnel still relays.
    clock.advance(299);
    c.write(Buffer.from("still"));
    expect((await c.read(5)).toString()).toBe("still");
    expect(stopped).toBe(false);
    expect(p.observer.of("closed")).toEqual([]);
    clock.advance(1);
    await withTimeout(stopping, 3000, "stop did not resolve");
    // The proxy's end of the tunnel is gone (FIN to this half-open client), and so is the session.
    expect((await c.readToEnd(2000)).length).toBe(0);
    expect(p.observer.of("closed").map((f) => f.reason)).toEqual(["shutdown"]);
    expect(p.engine.sessionCount).toBe(0);
  });
});
