/**
 * SOCKS4 and SOCKS4a CONNECT over real loopback sockets. Replies are 8 bytes with VN 0; every failure is CD 91 (0x5b), never 92/93.
 * The 4a name is `localhost`, so nothing leaves the machine.
 */
import { describe, expect, it } from "vitest";
import type { Socket } from "node:net";
import { RawClient, closedPort, connect4, fakeLookup, hex, sleep, startServer, useTestProxies } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

const { cleanups, proxy } = useTestProxies();

/** An echo target that records the peer of each connection and every byte it got. */
async function target() {
  const peers: Array<{ address: string; port: number }> = [];
  const received: Buffer[] = [];
  const server = await startServer(
    (socket: Socket) => {
      peers.push({ address: socket.remoteAddress!, port: socket.remotePort! });
      socket.on("data", (d: Buffer) => received.push(d));
      socket.pipe(socket);
    },
    undefined,
    { allowHalfOpen: true },
  );
  cleanups.push(() => server.close());
  return { ...server, peers, received };
}

async function client(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  cleanups.push(() => c.destroy());
  return c;
}

/** A SOCKS4a CONNECT: DSTIP 0.0.0.1, USERID, NUL, name, NUL. */
function connect4a(port: number, name: string, userid = ""): Buffer {
  return Buffer.concat([
    Buffer.of(4, 1, port >> 8, port & 0xff, 0, 0, 0, 1),
    Buffer.from(userid, "latin1"),
    Buffer.of(0),
    Buffer.from(name, "latin1"),
    Buffer.of(0),
  ]);
}

const REJECTED = "005b000000000000";

describe("SOCKS4 / 4a (research §7, scenarios 54–58)", () => {
  it("#54 4a: the proxy resolves the name itself (localhost) → 00 5a + 6 bytes, then relay", async () => {
    const t = await target();
    const p = await proxy();
    const c = await client(p.port);
    c.write(connect4a(t.port, "localhost", "alice"));
    const reply = await c.read(8);
    expect(reply.subarray(0, 2).toString("hex")).toBe("005a");
    // DSTPORT/DSTIP carry our outbound socket's address (clients ignore them for CONNECT).
    expect(reply.readUInt16BE(2)).toBe(t.peers[0]!.port);
    expect(reply.subarray(4, 8).toString("hex")).toBe("7f000001");
    c.write(Buffer.from("over 4a"));
    expect((await c.read(7)).toString()).toBe("over 4a");
    const request = p.observer.first("request");
    expect(request).toMatchObject({ version: "4a", command: "connect", user: "alice" });
    expect(request.destination).toEqual({ type: "domain", host: "localhost", port: t.port });
    expect(p.observer.first("reply").remote).toEqual({ host: "127.0.0.1", port: t.port });
    expect(p.observer.first("auth")).toMatchObject({ version: "4a", user: "alice", accepted: true });
  });

  it("#54 4a request + early data in one write: the data reaches the target after the connect", async () => {
    const t = await target();
    const p = await proxy();
    const c = await client(p.port);
    c.write(Buffer.concat([connect4a(t.port, "localhost"), Buffer.from("early")]));
    expect((await c.read(8)).subarray(0, 2).toString("hex")).toBe("005a");
    expect((await c.read(5)).toString()).toBe("early");
    expect(Buffer.concat(t.received).toString()).toBe("early");
  });

  it("#54 4a with a name that does not resolve (nonexistent.invalid) → 00 5b and close", async () => {
    // The resolver is injected: the system's is not asked, and its failure is ENOTFOUND for sure.
    const lookup = fakeLookup({});
    const p = await proxy({ lookup });
    const c = await client(p.port);
    c.write(connect4a(80, "nonexistent.invalid"));
    expect((await c.readToEnd(3000)).toString("hex")).toBe(REJECTED);
    expect(lookup.asked).toEqual(["nonexistent.invalid"]);
    expect(p.observer.first("reply")).toMatchObject({ version: "4a", code: "DNS_FAILED", errno: "ENOTFOUND" });
  });

  it("#55 DSTIP 0.0.0.0 is not 4a: → 00 5b and close, no hostname read, nothing dialled", async () => {
    const t = await target();
    const p = await proxy();
    const c = await client(p.port);
    // If 0.0.0.0 were taken as 4a the proxy would wait for a hostname; if it were dialled,
    // Linux would connect to the local target.
    c.write(`04 01 ${t.port.toString(16).padStart(4, "0")} 00 00 00 00 00`);
    expect((await c.readToEnd(2000)).toString("hex")).toBe(REJECTED);
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("request-failed");
    const request = p.observer.first("request");
    expect(request.version).toBe(4);
    expect(request.destination).toEqual({ type: "ipv4", host: "0.0.0.0", port: t.port });
    expect(p.observer.first("reply").target).toBeUndefined();
    expect(t.peers).toEqual([]);
  });

  it("#56 double NUL after USERID (empty 4a hostname) → 00 5b and close; trailing bytes are never relayed", async () => {
    const t = await target();
    const p = await proxy();
    const c = await client(p.port);
    c.write(Buffer.concat([hex(`04 01 ${t.port.toString(16).padStart(4, "0")} 00 00 00 01 00 00`), Buffer.from("example\0")]));
    expect((await c.readToEnd(2000)).toString("hex")).toBe(REJECTED);
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("request-failed");
    expect(p.observer.first("request").destination).toEqual({ type: "domain", host: "", port: t.port });
    // A negative check needs a duration: 50 ms in which nothing may reach the target.
    await sleep(50);
    expect(t.peers).toEqual([]);
    expect(t.received).toEqual([]);
  });

  it("#57 over-long USERID (2000 × 41, no NUL) is closed once the cap is exceeded, well before the handshake timeout; no crash", async () => {
    const p = await proxy({ handshakeTimeoutMs: 5000 });
    const c = await client(p.port);
    const t0 = Date.now();
    c.write(Buffer.concat([hex("04 01 00 50 7f 00 00 01"), Buffer.alloc(2000, 0x41)]));
    const answer = await c.readToEnd(2000);
    expect(Date.now() - t0).toBeLessThan(1500);
    // Closing silently or with a SOCKS4 rejection are both fine; anything else is not.
    expect(["", REJECTED]).toContain(answer.toString("hex"));
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("protocol-error");
    expect(p.observer.of("anomaly").map((a) => a.code)).toEqual(["field-too-long"]);
    expect(p.observer.of("request")).toEqual([]);
    // The engine is still serving.
    const t = await target();
    const next = await client(p.port);
    next.write(connect4(t.port));
    expect((await next.read(8)).subarray(0, 2).toString("hex")).toBe("005a");
  });

  it("#57 over-long 4a hostname (2000 bytes, no NUL) is closed once the cap is exceeded; no crash", async () => {
    const p = await proxy({ handshakeTimeoutMs: 5000 });
    const c = await client(p.port);
    const t0 = Date.now();
    c.write(Buffer.concat([hex("04 01 00 50 00 00 00 01 00"), Buffer.alloc(2000, 0x61)]));
    const answer = await c.readToEnd(2000);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(["", REJECTED]).toContain(answer.toString("hex"));
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("protocol-error");
    expect(p.observer.of("anomaly").map((a) => a.code)).toEqual(["field-too-long"]);
  });

  it("#57 unterminated but short USERID is closed at the handshake timeout", async () => {
    const clock = new ManualClock();
    const p = await proxy({ handshakeTimeoutMs: 300, clock });
    const c = await client(p.port);
    c.write(Buffer.concat([hex("04 01 00 50 7f 00 00 01"), Buffer.alloc(100, 0x41)]));
    await clock.armed(300);
    // The timeout reports its anomaly as it fires (inside advance): none 1 ms before the deadline.
    clock.advance(299);
    expect(p.observer.of("anomaly")).toEqual([]);
    clock.advance(1);
    expect((await c.readToEnd(3000)).length).toBe(0);
    expect((await p.observer.lastClosed()).reason).toBe("handshake-timeout");
  });

  it("#57 a USERID of exactly 255 bytes is still accepted", async () => {
    const t = await target();
    const p = await proxy();
    const c = await client(p.port);
    c.write(connect4(t.port, "127.0.0.1", "u".repeat(255)));
    expect((await c.read(8)).subarray(0, 2).toString("hex")).toBe("005a");
    expect(p.observer.first("request").user).toBe("u".repeat(255));
  });

  it("#58 every SOCKS4 failure is exactly 00 5b + 6 bytes, then close", async () => {
    const refused = await closedPort();
    const port = refused.toString(16).padStart(4, "0");
    const cases: Array<[string, Buffer]> = [
      ["refused", connect4(refused)],
      ["unknown CD 03", hex(`04 03 ${port} 7f 00 00 01 00`)],
      ["port 0", hex("04 01 00 00 7f 00 00 01 00")],
      ["0.0.0.0", hex(`04 01 ${port} 00 00 00 00 00`)],
      ["empty 4a name", hex(`04 01 ${port} 00 00 00 01 00 00`)],
      ["malformed 4a name", connect4a(refused, "evil name")],
      ["4a DNS failure", connect4a(80, "nonexistent.invalid")],
    ];
    const lookup = fakeLookup({});
    const p = await proxy({ lookup });
    for (const [label, request] of cases) {
      const c = await client(p.port);
      c.write(request);
      const answer = await c.readToEnd(3000).catch((err: Error) => {
        throw new Error(`${label}: ${err.message}`);
      });
      expect(answer.toString("hex"), label).toBe(REJECTED);
      c.destroy();
    }
    // Only the well-formed 4a name was looked up, by the injected resolver.
    expect(lookup.asked).toEqual(["nonexistent.invalid"]);
  });

  it("#58 SOCKS4 connection refused → 00 5b + 6 bytes (CD 91, never 92) and close", async () => {
    const port = await closedPort();
    const p = await proxy();
    const c = await client(p.port);
    c.write(connect4(port));
    expect((await c.readToEnd(3000)).toString("hex")).toBe(REJECTED);
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("request-failed");
    const reply = p.observer.first("reply");
    expect(reply).toMatchObject({ version: 4, rep: 5, errno: "ECONNREFUSED" });
  });
});
