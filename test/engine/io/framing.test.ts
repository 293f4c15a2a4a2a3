/**
 * Framing and method negotiation over real loopback sockets. Handshakes are byte streams: split, pipelined and one-byte-at-a-time input
 * must all work, and bytes that are not SOCKS are recorded and closed.
 */
import { describe, expect, it } from "vitest";
import type { Socket } from "node:net";
import { Credentials, type SessionClosedFact } from "../../../src/engine/index.js";
import { RawClient, connect5, hex, sleep, until, startEchoServer, startServer, type TestProxy, useTestProxies } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

async function client(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  cleanups.push(async () => c.destroy());
  return c;
}

/** A target that keeps every byte each connection sent, and counts connections. */
async function recorder() {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = await startServer((socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    sockets.push(socket);
    socket.on("data", (d: Buffer) => (received[index] = Buffer.concat([received[index]!, d])));
  });
  cleanups.push(() => server.close());
  return { ...server, received, sockets };
}

/** Checks that the tunnel relays both ways by echoing `text`. */
async function expectEcho(c: RawClient, text = "ping"): Promise<void> {
  c.write(Buffer.from(text));
  expect((await c.read(text.length)).toString()).toBe(text);
}

/** Waits until the client's session has closed (after our side ended too), returns its fact. */
async function closedFact(p: TestProxy, c: RawClient): Promise<SessionClosedFact> {
  c.end();
  return p.observer.lastClosed();
}

const port16 = (port: number): string => port.toString(16).padStart(4, "0");

describe("framing (research §7, scenarios 1–4)", () => {
  it("#1 split greeting: 05, 100 ms pause, 01 00 → 05 00 only after the third byte, no close", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    c.write("05");
    await sleep(100);
    expect(c.pending.length).toBe(0);
    expect(c.ended || c.closed).toBe(false);
    c.write("01 00");
    expect((await c.read(2)).toString("hex")).toBe("0500");
    // The session goes on normally.
    c.write(connect5(target.port));
    const reply = await c.read(10);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
    await expectEcho(c);
    expect(p.observer.of("anomaly")).toEqual([]);
  });

  it("#1 greeting + CONNECT split into two writes at every offset all succeed", async () => {
    const p = await proxy();
    const target = await echo();
    const message = Buffer.concat([hex("050100"), connect5(target.port)]);
    for (let at = 1; at < message.length; at++) {
      const c = await client(p.port);
      c.write(message.subarray(0, at));
      // Pacing on purpose: the two parts arrive as separate reads.
      await sleep(10);
      c.write(message.subarray(at));
      const answer = await c.read(12);
      expect(answer.subarray(0, 5).toString("hex"), `split at ${at}`).toBe("0500050000");
      await expectEcho(c, `split-${at}`);
      c.destroy();
    }
    expect(p.observer.of("reply").map((r) => r.rep)).toEqual(new Array(message.length - 1).fill(0));
  });

  it("#2 pipelined greeting + CONNECT in one write: 05 00 then a full 10-byte success reply", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    c.write(`05 01 00 05 01 00 01 7f 00 00 01 ${port16(target.port)}`);
    expect((await c.read(2)).toString("hex")).toBe("0500");
    const reply = await c.read(10);
    expect(reply[0]).toBe(5);
    expect(reply[1]).toBe(0);
    expect(reply[2]).toBe(0);
    expect(reply[3]).toBe(1);
    await expectEcho(c);
    expect(p.observer.of("request")).toHaveLength(1);
    expect(p.observer.first("request").destination).toEqual({ type: "ipv4", host: "127.0.0.1", port: target.port });
  });

  it("#3 auth + CONNECT + early data in one write: 01 00, success, and GET\\r\\n reaches the target after the connect", async () => {
    const credentials = new Credentials();
    credentials.add("user", "pass");
    const p = await proxy({ credentials });
    const target = await recorder();
    const c = await client(p.port);
    c.write("05 01 02");
    expect((await c.read(2)).toString("hex")).toBe("0502");
    c.write(`01 04 75736572 04 70617373  05 01 00 01 7f 00 00 01 ${port16(target.port)}  47 45 54 0d 0a`);
    expect((await c.read(2)).toString("hex")).toBe("0100");
    const reply = await c.read(10);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
    // Buffered during the connect, delivered once, never dropped or duplicated.
    await until(() => (target.received[0]?.length ?? 0) >= 5, 5000, "the early bytes at the target");
    // A negative check needs a duration: 50 ms in which no duplicate may arrive.
    await sleep(50);
    expect(target.received).toHaveLength(1);
    expect(target.received[0]!.toString("latin1")).toBe("GET\r\n");
    // And the tunnel keeps working in both directions.
    target.sockets[0]!.write("HTTP/1.0 200 OK\r\n");
    expect((await c.read(17)).toString()).toBe("HTTP/1.0 200 OK\r\n");
    const auth = p.observer.of("auth");
    expect(auth).toHaveLength(1);
    expect(auth[0]).toMatchObject({ method: 2, user: "user", accepted: true });
    c.end();
    const closed = await p.observer.lastClosed();
    expect(closed.bytesUpReceived).toBe(5);
    expect(closed.bytesUpSent).toBe(5);
    expect(closed.bytesDownSent).toBe(17);
  });

  it("#3 greeting + auth + CONNECT + early data all in one write (no wait for 05 02) work the same", async () => {
    const credentials = new Credentials();
    credentials.add("user", "pass");
    const p = await proxy({ credentials });
    const target = await recorder();
    const c = await client(p.port);
    c.write(`05 01 02  01 04 75736572 04 70617373  05 01 00 01 7f 00 00 01 ${port16(target.port)}  47 45 54 0d 0a`);
    const answer = await c.read(14);
    expect(answer.subarray(0, 8).toString("hex")).toBe("0502010005000001");
    await until(() => (target.received[0]?.length ?? 0) >= 5, 5000, "the early bytes at the target");
    expect(target.received.map((b) => b.toString("latin1"))).toEqual(["GET\r\n"]);
  });

  it("#4 one byte per write for a whole SOCKS5 username/password handshake (greeting, auth, request)", async () => {
    const credentials = new Credentials();
    credentials.add("user", "pass");
    const p = await proxy({ credentials });
    const target = await echo();
    const c = await client(p.port);
    const bytes = Buffer.concat([hex("05 01 02 01 04 75736572 04 70617373"), connect5(target.port)]);
    for (const byte of bytes) {
      c.write(Buffer.of(byte));
      await sleep(10);
    }
    const answer = await c.read(14);
    expect(answer.subarray(0, 8).toString("hex")).toBe("0502010005000001");
    await expectEcho(c);
  });

  it("#4 one byte per write for a whole SOCKS4a request (20 ms gaps) → 00 5a + 6 bytes", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    const request = Buffer.concat([hex(`04 01 ${port16(target.port)} 00 00 00 01`), Buffer.from("\0localhost\0", "latin1")]);
    for (const byte of request) {
      c.write(Buffer.of(byte));
      await sleep(20);
      if (c.pending.length > 0 || c.ended) break;
    }
    const reply = await c.read(8);
    expect(reply[0]).toBe(0x00);
    expect(reply[1]).toBe(0x5a);
    await expectEcho(c);
    const request4a = p.observer.first("request");
    expect(request4a.version).toBe("4a");
    expect(request4a.destination).toEqual({ type: "domain", host: "localhost", port: target.port });
  });
});

describe("method negotiation (research §7, scenarios 5–8)", () => {
  it("#5 NMETHODS = 0 → 05 ff, then close (no hang)", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.write("05 00");
    expect((await c.readToEnd(2000)).toString("hex")).toBe("05ff");
    const closed = await closedFact(p, c);
    expect(closed.reason).toBe("protocol-error");
    expect(p.observer.of("anomaly").map((a) => a.code)).toContain("no-methods");
    expect(p.observer.of("request")).toEqual([]);
  });

  it("#6 NMETHODS = 255 (00 … fe) → 05 00, and the session works", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    const methods = Buffer.from(Array.from({ length: 255 }, (_, i) => i));
    c.write(Buffer.concat([hex("05 ff"), methods]));
    expect((await c.read(2)).toString("hex")).toBe("0500");
    c.write(connect5(target.port));
    expect((await c.read(10))[1]).toBe(0);
    await expectEcho(c);
    const auth = p.observer.first("auth");
    expect(auth.offered).toHaveLength(255);
    expect(auth.offered[254]).toBe(0xfe);
    expect(auth.method).toBe(0);
  });

  for (const method of ["01", "80"]) {
    it(`#7 only an unsupported method offered (05 01 ${method}) → 05 ff and close, never 05 00`, async () => {
      const p = await proxy();
      const c = await client(p.port);
      c.write(`05 01 ${method}`);
      expect((await c.readToEnd(2000)).toString("hex")).toBe("05ff");
      const closed = await closedFact(p, c);
      expect(closed.reason).toBe("auth-failed");
      const auth = p.observer.of("auth");
      expect(auth).toHaveLength(1);
      expect(auth[0]).toMatchObject({ version: 5, offered: [parseInt(method, 16)], method: 0xff, accepted: false });
    });
  }

  it("#7 auth required and only 00 offered → 05 ff, never the unoffered 02", async () => {
    const credentials = new Credentials();
    credentials.add("user", "pass");
    const p = await proxy({ credentials });
    const c = await client(p.port);
    c.write("05 01 00");
    expect((await c.readToEnd(2000)).toString("hex")).toBe("05ff");
    expect((await closedFact(p, c)).reason).toBe("auth-failed");
  });

  it("#8 00 and 02 offered, auth optional → 05 00, and the offer is recorded", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    c.write("05 02 00 02");
    expect((await c.read(2)).toString("hex")).toBe("0500");
    c.write(connect5(target.port));
    expect((await c.read(10))[1]).toBe(0);
    const auth = p.observer.of("auth");
    expect(auth).toHaveLength(1);
    expect(auth[0]).toMatchObject({ version: 5, offered: [0, 2], method: 0, accepted: true });
  });

  it("#8 00 and 02 offered, auth required → 05 02 (policy), offer recorded", async () => {
    const credentials = new Credentials();
    credentials.add("user", "pass");
    const p = await proxy({ credentials });
    const c = await client(p.port);
    c.write("05 02 00 02");
    expect((await c.read(2)).toString("hex")).toBe("0502");
    c.write("01 04 75736572 04 70617373");
    expect((await c.read(2)).toString("hex")).toBe("0100");
    const auth = p.observer.of("auth");
    expect(auth).toHaveLength(1);
    expect(auth[0]).toMatchObject({ offered: [0, 2], method: 2, user: "user", accepted: true });
  });
});

describe("version dispatch (research §7, scenarios 9–10)", () => {
  it("#9 a SOCKS4 request on the same port → 00 5a + 6 bytes (8 total), then relay", async () => {
    const p = await proxy();
    const target = await echo();
    const c = await client(p.port);
    c.write(`04 01 ${port16(target.port)} 7f 00 00 01 00`);
    const reply = await c.read(8);
    expect(reply.subarray(0, 2).toString("hex")).toBe("005a");
    await expectEcho(c, "socks4 relay");
    const request = p.observer.first("request");
    expect(request.version).toBe(4);
    expect(request.destination).toEqual({ type: "ipv4", host: "127.0.0.1", port: target.port });
  });

  const notSocks: Array<[string, string]> = [
    ["GET / (HTTP)", "47 45 54 20 2f"],
    ["06 … (SOCKS6)", "06 00 01 02 03"],
  ];
  for (const [name, bytes] of notSocks) {
    it(`#10 not SOCKS: ${name} → close without any reply, first bytes recorded`, async () => {
      const p = await proxy();
      const c = await client(p.port);
      c.write(bytes);
      expect((await c.readToEnd(2000)).length).toBe(0);
      const closed = await closedFact(p, c);
      expect(closed.reason).toBe("protocol-error");
      const anomalies = p.observer.of("anomaly");
      expect(anomalies).toHaveLength(1);
      expect(anomalies[0]!.code).toBe("not-socks");
      expect(anomalies[0]!.detail).toContain(bytes.replace(/\s+/g, ""));
      expect(p.observer.of("auth")).toEqual([]);
      expect(p.observer.of("request")).toEqual([]);
    });
  }
});
