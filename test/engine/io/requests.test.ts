/**
 * SOCKS5 requests, addresses and CONNECT replies over real loopback sockets.
 * Every failure reply is the full RFC 1928 form
 * followed by a FIN; names that must never be resolved are checked against a recording
 * wrapper around `dns.lookup` (the real resolver still answers, except for the fake `.test`
 * names a test registers).
 *
 * Not covered here: 26 (destination rules: destination-rules.test.ts beside this file) and 29
 * (ENETUNREACH needs a non-loopback destination).
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import { connect as tcpConnect, type Socket } from "node:net";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { allowAllHooks, type HookRunner } from "../../../src/engine/index.js";
import { RawClient, closedPort, nth, connect5, hex, sleep, until, withTimeout, startServer, type TestProxy, useTestProxies } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

/** Every name the engine asked the resolver for, in order; and fake names with their addresses. */
const { lookups, fakeHosts } = vi.hoisted(() => ({
  lookups: [] as string[],
  fakeHosts: new Map<string, Array<{ address: string; family: number }>>(),
}));

vi.mock("node:dns", async (importOriginal) => {
  const dns = await importOriginal<typeof import("node:dns")>();
  const lookup = (hostname: string, ...rest: unknown[]): unknown => {
    lookups.push(hostname);
    const fake = fakeHosts.get(hostname);
    if (fake !== undefined) {
      const options = rest[0] as { all?: boolean };
      const callback = rest[rest.length - 1] as (...args: unknown[]) => void;
      process.nextTick(() => (options?.all ? callback(null, fake) : callback(null, fake[0]!.address, fake[0]!.family)));
      return undefined;
    }
    if (hostname.endsWith(".invalid")) {
      // RFC 6761: never resolves. Answered here, so the test never asks the system resolver.
      const callback = rest[rest.length - 1] as (...args: unknown[]) => void;
      const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", syscall: "getaddrinfo", hostname });
      process.nextTick(() => callback(error));
      return undefined;
    }
    return (dns.lookup as (...args: unknown[]) => unknown)(hostname, ...rest);
  };
  return { ...dns, lookup, default: { ...dns, lookup } };
});

const { cleanups, proxy } = useTestProxies();
beforeEach(() => {
  lookups.length = 0;
  fakeHosts.clear();
});

/**
 * An echo target that records, for each connection, the peer address it sees: that is the proxy's
 * outbound socket, whose local address the success reply must carry.
 */
async function target(host = "127.0.0.1") {
  const peers: Array<{ address: string; port: number }> = [];
  const server = await startServer(
    (socket: Socket) => {
      peers.push({ address: socket.remoteAddress!, port: socket.remotePort! });
      socket.pipe(socket);
    },
    host,
    { allowHalfOpen: true },
  );
  cleanups.push(() => server.close());
  return { ...server, peers };
}

/** A client past the no-auth greeting. */
async function greeted(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  cleanups.push(() => c.destroy());
  c.write("05 01 00");
  expect((await c.read(2)).toString("hex")).toBe("0500");
  return c;
}

const port16 = (port: number): string => port.toString(16).padStart(4, "0");
/** `05 <rep> 00 01 00000000 0000`: the full IPv4-form failure reply. */
const R4 = (rep: number): string => `05${rep.toString(16).padStart(2, "0")}0001000000000000`;

/** ATYP 3 request for `name` (raw octets) and port. */
function domainRequest(name: Buffer, port: number, cmd = 1): Buffer {
  return Buffer.concat([Buffer.of(5, cmd, 0, 3, name.length), name, Buffer.of(port >> 8, port & 0xff)]);
}

function ipv6Request(address: string, port: number): Buffer {
  return Buffer.concat([hex("05 01 00 04"), hex(address), Buffer.of(port >> 8, port & 0xff)]);
}

/**
 * Sends `request` after the greeting and expects exactly the failure reply `expected` followed
 * by the proxy's FIN (no byte more), then lets the session close and returns its facts.
 */
async function expectFailure(p: TestProxy, request: Buffer | string, expected: string) {
  const c = await greeted(p.port);
  c.write(request);
  const rest = await c.readToEnd(3000);
  expect(rest.toString("hex")).toBe(expected);
  c.end();
  const closed = await p.observer.lastClosed();
  return { closed, reply: p.observer.last("reply"), anomalies: p.observer.of("anomaly").map((a) => a.code) };
}

describe("requests (research §7, scenarios 16–23)", () => {
  it("#16 RSV != 0 is accepted (lenient) and recorded as an rsv-nonzero anomaly", async () => {
    const t = await target();
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(`05 01 01 01 7f 00 00 01 ${port16(t.port)}`);
    const reply = await c.read(10);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
    c.write("6f6b");
    expect((await c.read(2)).toString()).toBe("ok");
    const anomalies = p.observer.of("anomaly");
    expect(anomalies).toHaveLength(1);
    expect(anomalies[0]!.code).toBe("rsv-nonzero");
    expect(anomalies[0]!.detail).toContain("0x01");
  });

  it("#17 unknown CMD gets a full 10-byte 07 reply, then close", async () => {
    const p = await proxy();
    const t = await target();
    const { closed, anomalies } = await expectFailure(p, `05 09 00 01 7f 00 00 01 ${port16(t.port)}`, "05070001000000000000");
    expect(closed.reason).not.toBe("completed");
    expect(anomalies).toContain("unknown-command");
    expect(t.peers).toEqual([]);
  });

  it("#18 unknown ATYP gets a full 10-byte 08 reply, then close", async () => {
    const p = await proxy();
    const { anomalies } = await expectFailure(p, "05 01 00 02 7f 00 00 01 1f 90", "05080001000000000000");
    expect(anomalies).toContain("unknown-address-type");
  });

  it("#19 zero-length domain → R4/04, no DNS query, no crash", async () => {
    const p = await proxy();
    const { closed, reply } = await expectFailure(p, "05 01 00 03 00 1f 90", R4(4));
    expect(closed.reason).toBe("request-failed");
    expect(reply.target).toBeUndefined();
    expect(lookups).toEqual([]);
    expect(p.observer.first("request").destination).toEqual({ type: "domain", host: "", port: 0x1f90 });
  });

  it("#20 255-byte domain is parsed in full → R4/04, no DNS query", async () => {
    const p = await proxy();
    const name = Buffer.alloc(255, 0x61);
    const { reply } = await expectFailure(p, domainRequest(name, 0x1f90), R4(4));
    expect(reply.rep).toBe(4);
    expect(lookups).toEqual([]);
    const request = p.observer.first("request");
    expect(request.destination.host).toBe("a".repeat(255));
    expect(request.destination.port).toBe(0x1f90);
  });

  it('#21 IP literal inside ATYP 3 ("127.0.0.1") connects without DNS', async () => {
    const t = await target();
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(domainRequest(Buffer.from("127.0.0.1"), t.port));
    const reply = await c.read(10);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
    c.write("6869");
    expect((await c.read(2)).toString()).toBe("hi");
    expect(lookups).toEqual([]);
    expect(t.peers).toHaveLength(1);
    const fact = p.observer.first("reply");
    expect(fact.remote).toEqual({ host: "127.0.0.1", port: t.port });
    expect(p.observer.first("request").destination).toEqual({ type: "domain", host: "127.0.0.1", port: t.port });
  });

  it('#21 IPv6 literal inside ATYP 3 ("::1") connects to ::1 without DNS; the reply is the 22-byte IPv6 form', async () => {
    const t = await target("::1");
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(domainRequest(Buffer.from("::1"), t.port));
    const reply = await c.read(22);
    expect(reply.subarray(0, 20).toString("hex")).toBe(`05000004${"00".repeat(15)}01`);
    expect(reply.readUInt16BE(20)).toBe(t.peers[0]!.port);
    expect(lookups).toEqual([]);
  });

  it('#21 bracketed IPv6 literal "[::1]" in ATYP 3 → R4/04, never sent to DNS', async () => {
    const t = await target("::1");
    const p = await proxy();
    await expectFailure(p, domainRequest(Buffer.from("[::1]"), t.port), R4(4));
    expect(lookups).toEqual([]);
    expect(t.peers).toEqual([]);
  });

  for (const [label, name] of [
    ["NUL", "evil\0.co"],
    ["CR LF", "evil\r\n.co"],
    ["space", "local host"],
  ] as const) {
    it(`#22 ${label} inside a name → R4/04 rejection, nothing resolved`, async () => {
      const p = await proxy();
      const { reply } = await expectFailure(p, domainRequest(Buffer.from(name, "latin1"), 0x1f90), R4(4));
      expect(reply.target).toBeUndefined();
      expect(lookups).toEqual([]);
      // The request fact keeps the bytes exactly as sent.
      expect(p.observer.first("request").destination.host).toBe(name);
    });
  }

  it("#23 port 0 → R4/02 without a connect attempt", async () => {
    const p = await proxy();
    const { closed, reply, anomalies } = await expectFailure(p, "05 01 00 01 7f 00 00 01 00 00", R4(2));
    expect(closed.reason).toBe("request-failed");
    expect(reply.target).toBeUndefined();
    expect(anomalies).toContain("port-zero");
  });

  it("#23 port 0 with a name → R4/02, the name is not even resolved", async () => {
    const p = await proxy();
    await expectFailure(p, domainRequest(Buffer.from("localhost"), 0), R4(2));
    expect(lookups).toEqual([]);
  });
});

describe("addresses (research §7, scenarios 24–25)", () => {
  it("#24 IPv6 target ::1 → 22-byte reply 05 00 00 04 + BND.ADDR ::1 + the outbound port", async () => {
    const t = await target("::1");
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(ipv6Request("00000000000000000000000000000001", t.port));
    const reply = await c.read(22);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000004");
    expect(reply.subarray(4, 20).toString("hex")).toBe("00000000000000000000000000000001");
    expect(t.peers).toHaveLength(1);
    expect(t.peers[0]!.address).toBe("::1");
    expect(reply.readUInt16BE(20)).toBe(t.peers[0]!.port);
    c.write("7636");
    expect((await c.read(2)).toString()).toBe("v6");
    expect(p.observer.first("reply").bound).toEqual({ host: "::1", port: t.peers[0]!.port });
  });

  it("#25 IPv4-mapped IPv6 target (::ffff:127.0.0.1) is treated as 127.0.0.1: ATYP 1 reply, 10 bytes", async () => {
    const t = await target();
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(ipv6Request("00000000000000000000ffff7f000001", t.port));
    const reply = await c.read(10);
    expect(reply.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(reply.readUInt16BE(8)).toBe(t.peers[0]!.port);
    c.write("6d6170");
    expect((await c.read(3)).toString()).toBe("map");
    expect(p.observer.first("request").destination).toEqual({ type: "ipv4", host: "127.0.0.1", port: t.port });
    expect(p.observer.first("reply").remote).toEqual({ host: "127.0.0.1", port: t.port });
  });

  it("#25 dual-stack listener: a client seen as ::ffff:127.0.0.1 and an IPv6 outbound socket to a mapped address are normalised", async () => {
    const t = await target();
    // Listening on the IPv4-mapped form of 127.0.0.1 makes the proxy an IPv6 socket that sees
    // IPv4 clients as ::ffff:127.0.0.1; redirecting to ::ffff:127.0.0.1 makes the outbound
    // socket an IPv6 one with a mapped local address. Both must surface as plain IPv4.
    const hooks: HookRunner = { ...allowAllHooks, request: () => ({ redirect: { host: "::ffff:127.0.0.1" } }) };
    const p = await proxy({ listen: [{ host: "::ffff:127.0.0.1", port: 0 }], hooks });
    const c = await greeted(p.port);
    c.write(connect5(t.port));
    const reply = await c.read(10);
    expect(reply.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(reply.readUInt16BE(8)).toBe(t.peers[0]!.port);
    const opened = p.observer.first("opened");
    expect(opened.client.host).toBe("127.0.0.1");
    expect(opened.local).toEqual({ host: "127.0.0.1", port: p.port });
    expect(p.observer.first("request").client.host).toBe("127.0.0.1");
    const fact = p.observer.first("reply");
    expect(fact.bound).toEqual({ host: "127.0.0.1", port: t.peers[0]!.port });
    expect(fact.remote).toEqual({ host: "127.0.0.1", port: t.port });
  });
});

/**
 * A TCP listener that never accepts: it lives in a worker whose event loop is blocked, so once
 * its accept queue (backlog 1) is full the kernel drops further SYNs and connects hang. Loopback
 * only; nothing leaves the machine.
 */
async function blackholeListener(host = "127.0.0.1", wantedPort = 0): Promise<{ port: number; close(): Promise<void> }> {
  const release = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const server = require("node:net").createServer();
     server.on("error", (err) => parentPort.postMessage(err.code));
     server.listen({ port: workerData.port, host: workerData.host, backlog: 1 }, () => {
       parentPort.postMessage(server.address().port);
       Atomics.wait(workerData.release, 0, 0);
       server.close();
     });`,
    { eval: true, workerData: { release, host, port: wantedPort } },
  );
  const [port] = (await once(worker, "message")) as [number | string];
  if (typeof port !== "number") {
    await worker.terminate();
    throw new Error(`blackhole listener on ${host}:${wantedPort}: ${port}`);
  }
  // Fill the accept queue (backlog 1 holds 2 connections) with many concurrent connects: the
  // kernel completes a couple and drops the SYNs of the rest, whatever the event loop's load.
  const fillers: Socket[] = [];
  const connected: Promise<unknown>[] = [];
  for (let i = 0; i < 16; i++) {
    const s = tcpConnect(port, host);
    s.on("error", () => {});
    fillers.push(s);
    connected.push(once(s, "connect"));
  }
  await withTimeout(Promise.race(connected), 2000, "blackhole listener not listening");
  // The rest of the SYNs are queued or dropped by the kernel with no event to wait for: 100 ms for that.
  await sleep(100);
  return {
    port,
    async close() {
      for (const s of fillers) s.destroy();
      Atomics.store(release, 0, 1);
      Atomics.notify(release, 0);
      await worker.terminate();
    },
  };
}

/**
 * An echo target on 127.0.0.1:P and a listener on [::1]:P that never accepts (same port), for
 * happy eyeballs: the IPv6 attempt hangs, the IPv4 one succeeds.
 */
async function dualStackTarget() {
  for (let attempt = 0; ; attempt++) {
    const t = await target();
    try {
      const hole = await blackholeListener("::1", t.port);
      cleanups.push(() => hole.close());
      return { t, hole };
    } catch (err) {
      // [::1]:P was taken by someone else: try another port.
      if (attempt >= 5) throw err;
    }
  }
}

describe("connect results and reply content (research §7, scenarios 27, 28, 30–33)", () => {
  it("#27 connection refused → R4/05 and close, never 05 00 first", async () => {
    const p = await proxy();
    const port = await closedPort();
    const { closed, reply } = await expectFailure(p, connect5(port), R4(5));
    expect(closed.reason).toBe("request-failed");
    expect(reply.errno).toBe("ECONNREFUSED");
    expect(reply.target).toEqual({ host: "127.0.0.1", port });
  });

  it("#28 DNS failure (nonexistent.invalid) → R4/04", async () => {
    const p = await proxy({ connectTimeoutMs: 5000 });
    const name = Buffer.from("nonexistent.invalid");
    expect(name.length).toBe(0x13);
    const { reply } = await expectFailure(p, domainRequest(name, 80), R4(4));
    expect(lookups).toEqual(["nonexistent.invalid"]);
    expect(reply.code).toBe("DNS_FAILED");
    expect(["ENOTFOUND", "EAI_AGAIN", "EAI_NODATA", "EAI_NONAME", "EAI_FAIL"]).toContain(reply.errno);
  });

  it("#30 connect timeout (a loopback listener that never accepts) → R4/06 after connectTimeoutMs", async () => {
    const hole = await blackholeListener();
    cleanups.push(() => hole.close());
    const clock = new ManualClock();
    const p = await proxy({ connectTimeoutMs: 300, clock });
    const c = await greeted(p.port);
    c.write(connect5(hole.port));
    await clock.armed(300);
    // The reply is decided and reported as the timer fires (inside advance): none 1 ms before the deadline.
    clock.advance(299);
    expect(p.observer.of("reply")).toEqual([]);
    clock.advance(1);
    expect(p.observer.of("reply")).toHaveLength(1);
    expect((await c.readToEnd(3000)).toString("hex")).toBe(R4(6));
    const reply = p.observer.first("reply");
    expect(reply.code).toBe("CONNECT_TIMEOUT");
    expect(reply.errno).toBe("ETIMEDOUT");
  });

  it("#31 happy eyeballs: a name with a hanging ::1 and a good 127.0.0.1 succeeds via IPv4 well before the connect timeout", async () => {
    const { t, hole } = await dualStackTarget();
    fakeHosts.set("dual.test", [
      { address: "::1", family: 6 },
      { address: "127.0.0.1", family: 4 },
    ]);
    const p = await proxy({ connectTimeoutMs: 3000 });
    const c = await greeted(p.port);
    const sent = Date.now();
    c.write(domainRequest(Buffer.from("dual.test"), t.port));
    const reply = await c.read(10);
    const elapsed = Date.now() - sent;
    expect(reply.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(reply.readUInt16BE(8)).toBe(t.peers[0]!.port);
    // Without happy eyeballs the hanging ::1 would hold the dial until the 3 s connect timeout.
    expect(elapsed).toBeLessThan(2500);
    expect(hole.port).toBe(t.port);
    expect(p.observer.first("reply").remote).toEqual({ host: "127.0.0.1", port: t.port });
    c.write("6579");
    expect((await c.read(2)).toString()).toBe("ey");
  });

  it("#31 happy eyeballs: both attempts (the abandoned ::1 and the winning 127.0.0.1) are recorded on the reply fact", async () => {
    const { t } = await dualStackTarget();
    fakeHosts.set("dual.test", [
      { address: "::1", family: 6 },
      { address: "127.0.0.1", family: 4 },
    ]);
    const p = await proxy({ connectTimeoutMs: 3000 });
    const c = await greeted(p.port);
    c.write(domainRequest(Buffer.from("dual.test"), t.port));
    expect((await c.read(10))[1]).toBe(0);
    const fact = p.observer.first("reply");
    expect(fact.remote).toEqual({ host: "127.0.0.1", port: t.port });
    const attempts = fact.attempts ?? [];
    expect(
      attempts.some((a) => a.includes("::1")),
      `attempts: ${JSON.stringify(fact.attempts)}`,
    ).toBe(true);
    expect(
      attempts.some((a) => a.includes("127.0.0.1")),
      `attempts: ${JSON.stringify(fact.attempts)}`,
    ).toBe(true);
  });

  it("#32 success reply carries the real local address/port of the outbound socket (as the target sees it)", async () => {
    const t = await target();
    const p = await proxy();
    for (let i = 0; i < 3; i++) {
      const c = await greeted(p.port);
      c.write(connect5(t.port));
      const reply = await c.read(10);
      expect(reply.subarray(0, 4).toString("hex")).toBe("05000001");
      const peer = t.peers[i]!;
      expect(peer.address).toBe("127.0.0.1");
      const bound = `${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}`;
      expect(bound).toBe(peer.address);
      expect(bound).not.toBe("0.0.0.0");
      expect(reply.readUInt16BE(8)).toBe(peer.port);
      expect(nth(p.observer.of("reply"), i, "reply fact").bound).toEqual({ host: "127.0.0.1", port: peer.port });
    }
    // Three connections, three different outbound ports.
    expect(new Set(t.peers.map((peer) => peer.port)).size).toBe(3);
  });

  it("#32 success reply for a name (ATYP 3 localhost) carries an IP (ATYP 1), never ATYP 3", async () => {
    const t = await target();
    const p = await proxy();
    const c = await greeted(p.port);
    c.write(domainRequest(Buffer.from("localhost"), t.port));
    const reply = await c.read(10);
    expect(reply.subarray(0, 8).toString("hex")).toBe("050000017f000001");
    expect(reply.readUInt16BE(8)).toBe(t.peers[0]!.port);
    expect(lookups).toEqual(["localhost"]);
  });

  it("#33 after a failure reply the connection is terminated within 10 s even while the client keeps sending", async () => {
    // RFC 1928 §6: "the SOCKS server MUST terminate the TCP connection shortly after sending the
    // reply ... no more than 10 seconds after detecting the condition". A FIN alone is not a
    // termination: a client that keeps writing must not keep the session (and its slot) alive.
    // The engine's deadline is 2 s after the reply (LINGER_AFTER_FAILURE_MS).
    const clock = new ManualClock();
    const t = await target();
    const p = await proxy({ clock });
    const port = await closedPort();
    const c = await greeted(p.port);
    c.write(connect5(port));
    expect((await c.read(10)).toString("hex")).toBe(R4(5));
    await clock.armed(2000);
    c.write(Buffer.from("x"));
    clock.advance(1999);
    c.write(Buffer.from("x"));
    // A round trip through another session gives a close (were there one) time to be reported.
    const other = await greeted(p.port);
    other.write(connect5(t.port));
    expect((await other.read(10))[1]).toBe(0);
    other.write(Buffer.from("ping"));
    expect((await other.read(4)).toString()).toBe("ping");
    expect(p.observer.of("closed"), "session closed before the deadline").toEqual([]);
    clock.advance(1);
    const closed = await p.observer.closed(p.observer.first("opened").id);
    expect(closed.reason).toBe("request-failed");
    // The client learns it too: its next write hits a closed socket.
    for (let i = 0; i < 20 && !c.closed; i++) {
      c.write(Buffer.from("x"));
      await c.waitClosed(50).catch(() => {});
    }
    expect(c.closed).toBe(true);
  });

  it("#33 every failure path answers exactly 10 bytes and then closes", async () => {
    const refused4 = await closedPort();
    const refused6 = await closedPort("::1");
    const cases: Array<[string, Buffer, number]> = [
      ["unknown CMD 09", hex("05 09 00 01 7f 00 00 01 1f 90"), 7],
      ["unknown CMD 00", hex("05 00 00 01 7f 00 00 01 1f 90"), 7],
      ["unknown ATYP 02", hex("05 01 00 02 7f 00 00 01 1f 90"), 8],
      ["unknown ATYP 05", hex("05 01 00 05 7f 00 00 01 1f 90"), 8],
      ["request VER 04", hex("04 01 00 01 7f 00 00 01 1f 90"), 1],
      ["empty name", hex("05 01 00 03 00 1f 90"), 4],
      ["255-byte name", domainRequest(Buffer.alloc(255, 0x61), 80), 4],
      ["bracketed [::1]", domainRequest(Buffer.from("[::1]"), 80), 4],
      ["NUL in name", domainRequest(Buffer.from("evil\0.co", "latin1"), 80), 4],
      ["0.0.0.0", hex("05 01 00 01 00 00 00 00 1f 90"), 4],
      ["::", ipv6Request("00".repeat(16), 0x1f90), 4],
      ["port 0", hex("05 01 00 01 7f 00 00 01 00 00"), 2],
      ["refused 127.0.0.1", connect5(refused4), 5],
      ["refused ::1", ipv6Request(`${"00".repeat(15)}01`, refused6), 5],
      ["DNS failure", domainRequest(Buffer.from("nonexistent.invalid"), 80), 4],
    ];
    const p = await proxy();
    for (const [label, request, rep] of cases) {
      const c = await greeted(p.port);
      c.write(request);
      const answer = await c.readToEnd(3000).catch((err: Error) => {
        throw new Error(`${label}: ${err.message}; received ${c.pending.toString("hex") || "nothing"}`);
      });
      expect(answer.toString("hex"), label).toBe(R4(rep));
      c.destroy();
    }
    // Every session closed, none left behind.
    await until(() => p.engine.sessionCount === 0, 5000, "every session closed");
    expect(p.engine.sessionCount).toBe(0);
    expect(p.observer.of("closed")).toHaveLength(cases.length);
  });
});
