/**
 * InterceptRunner over real loopback sockets with an in-process engine: a held request edited to
 * another port, a held chunk edited byte-exact or killed with a reset, a held datagram dropped,
 * other sessions flowing meanwhile, releaseAll, replays never held, and the idle timeouts.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { allowAllHooks, combineObservers, decodeUdpDatagram, encodeUdpDatagram, type EngineOptions } from "../../src/engine/index.js";
import { ReplayMarks } from "../../src/hooks/replay-marks.js";
import { InterceptQueue } from "../../src/intercept/intercept-queue.js";
import { InterceptRunner } from "../../src/intercept/intercept-runner.js";
import type { InterceptEdit, InterceptPredicate, PausedItem } from "../../src/intercept/types.js";
import { ManualClock } from "../support/manual-clock.js";
import {
  HOST,
  RawClient,
  RecordingObserver,
  connect5,
  hex,
  openTunnel,
  sessionFactProblems,
  startEchoServer,
  startProxy,
  startServer,
  until,
  withTimeout,
} from "../support/net.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  port: number;
  queue: InterceptQueue;
  observer: RecordingObserver;
  edits: Array<{ session: number; what: InterceptEdit }>;
}

/** An engine whose hooks are an InterceptRunner around allow-all, filtered by `filter`. */
async function interceptProxy(filter: InterceptPredicate, options: Partial<EngineOptions> = {}, replays?: ReplayMarks): Promise<Setup> {
  const queue = new InterceptQueue();
  queue.setFilter(filter);
  const edits: Setup["edits"] = [];
  const runner = new InterceptRunner(allowAllHooks, queue, {
    events: { edited: (session, what) => edits.push({ session, what }) },
    ...(replays ? { replays } : {}),
  });
  const observer = new RecordingObserver();
  // Chunk facts are valid during the call only: the test keeps copies.
  observer.chunk = (fact) => {
    observer.facts.push({ kind: "chunk", fact: { ...fact, received: Buffer.from(fact.received), ...(fact.sent ? { sent: Buffer.from(fact.sent) } : {}) } });
  };
  observer.datagram = (fact) => observer.facts.push({ kind: "datagram", fact });
  const p = await startProxy({ hooks: runner, observer: combineObservers([observer, runner.observer]), ...options });
  cleanups.push(async () => {
    queue.releaseAll();
    await p.stop();
    expect(sessionFactProblems(observer)).toEqual([]);
  });
  return { port: p.port, queue, observer, edits };
}

/** The next item the queue holds (one already held counts), within 3 s. */
function nextPaused(queue: InterceptQueue, kind?: PausedItem["kind"]): Promise<PausedItem> {
  const held = queue.items.find((i) => kind === undefined || i.kind === kind);
  if (held !== undefined) return Promise.resolve(held);
  return withTimeout(
    new Promise<PausedItem>((resolve) => {
      const stop = queue.subscribe((e) => {
        if (e.type !== "paused" || (kind !== undefined && e.item.kind !== kind)) return;
        stop();
        resolve(e.item);
      });
    }),
    3000,
    `nothing ${kind ?? ""} paused`,
  );
}

async function server(handler: Parameters<typeof startServer>[0]) {
  const s = await startServer(handler);
  cleanups.push(() => s.close());
  return s;
}

async function echo() {
  const s = await startEchoServer();
  cleanups.push(() => s.close());
  return s;
}

async function tunnel(proxyPort: number, targetPort: number): Promise<RawClient> {
  const c = await openTunnel(proxyPort, targetPort);
  cleanups.push(() => c.destroy());
  return c;
}

describe("InterceptRunner: requests", () => {
  it("a held request edited to another port reaches that server, and the edit is told", async () => {
    const a = await server((s) => s.end("from A"));
    const b = await server((s) => s.end("from B"));
    const x = await interceptProxy((s) => s.stage === "request");
    const c = await RawClient.connect(x.port);
    cleanups.push(() => c.destroy());
    c.write(Buffer.concat([hex("050100"), connect5(a.port)]));
    expect((await c.read(2)).toString("hex")).toBe("0500");
    const item = await nextPaused(x.queue, "request");
    expect(item.request.destination).toEqual({ type: "ipv4", host: HOST, port: a.port });
    // Nothing is dialled while it is held: no reply yet.
    expect(c.pending.length).toBe(0);
    expect(x.queue.resolve(item.key, { resume: true, port: b.port })).toBe(true);
    const reply = await c.read(10);
    expect(reply[1]).toBe(0);
    expect((await c.readToEnd()).toString()).toBe("from B");
    expect(x.observer.first("reply").target).toEqual({ host: HOST, port: b.port });
    expect(x.edits).toEqual([{ session: item.session, what: expect.objectContaining({ stage: "request", action: "redirect" }) }]);
  });

  it("a held request denied with a code gets that reply", async () => {
    const a = await server((s) => s.end("from A"));
    const x = await interceptProxy((s) => s.stage === "request");
    const c = await RawClient.connect(x.port);
    cleanups.push(() => c.destroy());
    c.write(Buffer.concat([hex("050100"), connect5(a.port)]));
    await c.read(2);
    const item = await nextPaused(x.queue, "request");
    expect(x.queue.resolve(item.key, { deny: 5 })).toBe(true);
    expect((await c.read(10))[1]).toBe(5);
  });
});

describe("InterceptRunner: chunks", () => {
  it("a held response chunk edited reaches the client byte-exact; the capture keeps received vs sent", async () => {
    const t = await server((s) => s.write(Buffer.from("hello from the server")));
    const x = await interceptProxy((s) => s.stage === "down");
    const c = await tunnel(x.port, t.port);
    const item = await nextPaused(x.queue, "chunk");
    expect(item.kind === "chunk" && item.data.toString()).toBe("hello from the server");
    const edit = Buffer.concat([Buffer.from("edited\r\n"), Buffer.from([0x00, 0xff, 0x80, 0x0a])]);
    expect(x.queue.resolve(item.key, { resume: true, data: edit })).toBe(true);
    expect((await c.read(edit.length)).equals(edit)).toBe(true);
    const fact = x.observer.first("chunk");
    expect(fact.received.toString()).toBe("hello from the server");
    expect(Buffer.from(fact.sent!).equals(edit)).toBe(true);
    expect(fact.verdict).toBe("replace");
    expect(x.edits.map((e) => e.what.action)).toEqual(["edit"]);
  });

  it("kill (reset) on a held chunk: the client sees a reset and the bytes never arrive", async () => {
    const t = await server((s) => s.write(Buffer.from("secret")));
    const x = await interceptProxy((s) => s.stage === "down");
    const c = await tunnel(x.port, t.port);
    const item = await nextPaused(x.queue, "chunk");
    expect(x.queue.resolve(item.key, { reset: true })).toBe(true);
    await c.waitClosed();
    expect(c.error?.code).toBe("ECONNRESET");
    expect(c.pending.length).toBe(0);
    expect((await x.observer.lastClosed()).reason).toBe("closed-by-hook");
  });

  it("a held item whose session ends (the client resets) is let go and leaves the queue", async () => {
    const t = await server((s) => s.write(Buffer.from("never read")));
    const x = await interceptProxy((s) => s.stage === "down");
    const c = await tunnel(x.port, t.port);
    const item = await nextPaused(x.queue, "chunk");
    const gone = new Promise<string>((resolve) => x.queue.subscribe((e) => e.type === "resolved" && e.item.key === item.key && resolve(e.by)));
    c.socket.resetAndDestroy();
    expect(await withTimeout(gone, 3000, "held item not let go")).toBe("ended");
    expect(x.queue.size).toBe(0);
  });

  it("20 other sessions keep flowing while one is held", async () => {
    const e = await echo();
    const x = await interceptProxy((s) => s.stage === "up" && s.data.toString().startsWith("PAUSE"));
    const held = await tunnel(x.port, e.port);
    held.write(Buffer.from("PAUSE me"));
    const item = await nextPaused(x.queue, "chunk");
    const others = await Promise.all(Array.from({ length: 20 }, () => tunnel(x.port, e.port)));
    await Promise.all(
      others.map(async (c, i) => {
        c.write(Buffer.from(`flowing ${i}`));
        expect((await c.read(`flowing ${i}`.length)).toString()).toBe(`flowing ${i}`);
      }),
    );
    expect(held.pending.length).toBe(0);
    expect(x.queue.size).toBe(1);
    x.queue.resolve(item.key, { resume: true });
    expect((await held.read(8)).toString()).toBe("PAUSE me");
  });

  it("releaseAll lets every held item go as it was and switches intercept off", async () => {
    const a = await server((s) => s.end("from A"));
    const e = await echo();
    const x = await interceptProxy((s) => (s.stage === "request" && s.request.destination.port === a.port) || s.stage === "up");
    const requester = await RawClient.connect(x.port);
    cleanups.push(() => requester.destroy());
    requester.write(Buffer.concat([hex("050100"), connect5(a.port)]));
    const chunker = await tunnel(x.port, e.port);
    chunker.write(Buffer.from("as it was"));
    await until(() => x.queue.size === 2, 3000, "two items held");
    expect(x.queue.releaseAll()).toBe(2);
    expect((await requester.read(12)).subarray(2)[1]).toBe(0);
    expect((await requester.readToEnd()).toString()).toBe("from A");
    expect((await chunker.read(9)).toString()).toBe("as it was");
    // Switched off: the next chunk flows without being held.
    chunker.write(Buffer.from("next"));
    expect((await chunker.read(4)).toString()).toBe("next");
    expect(x.queue.size).toBe(0);
    expect(x.edits).toEqual([]);
  });

  it("a replayed session is never held", async () => {
    const e = await echo();
    const marks = new ReplayMarks();
    const x = await interceptProxy(() => true, {}, marks);
    const c = await RawClient.connect(x.port);
    cleanups.push(() => c.destroy());
    marks.clientReplay(c.socket.localPort!, 7);
    c.write(Buffer.concat([hex("050100"), connect5(e.port)]));
    expect((await c.read(12))[3]).toBe(0);
    c.write(Buffer.from("replayed"));
    expect((await c.read(8)).toString()).toBe("replayed");
    expect(x.queue.size).toBe(0);
  });
});

describe("InterceptRunner: datagrams", () => {
  function udpSocket(): Promise<UdpSocket> {
    const socket = createSocket("udp4");
    cleanups.push(() => {
      socket.close();
    });
    return new Promise((resolve) => socket.bind(0, HOST, () => resolve(socket)));
  }

  async function associate(proxyPort: number) {
    const tcp = await RawClient.connect(proxyPort);
    cleanups.push(() => tcp.destroy());
    tcp.write("050100 050300 01 00000000 0000");
    expect((await tcp.read(2)).toString("hex")).toBe("0500");
    const reply = await tcp.read(10);
    expect(reply[1]).toBe(0);
    return { tcp, relayPort: reply.readUInt16BE(8) };
  }

  async function udpEcho() {
    const socket = await udpSocket();
    const seen: string[] = [];
    socket.on("message", (msg, rinfo) => {
      seen.push(msg.toString());
      socket.send(msg, rinfo.port, rinfo.address);
    });
    return { port: socket.address().port, seen };
  }

  function nextMessage(socket: UdpSocket): Promise<Buffer> {
    return withTimeout(new Promise<Buffer>((resolve) => socket.once("message", resolve)), 3000, "no datagram");
  }

  it("a held datagram dropped is never sent; with intercept off the next one is", async () => {
    const peer = await udpEcho();
    const x = await interceptProxy((s) => s.stage === "datagram" && s.direction === "up");
    const { relayPort } = await associate(x.port);
    const client = await udpSocket();
    client.send(encodeUdpDatagram(HOST, peer.port, Buffer.from("first")), relayPort, HOST);
    const item = await nextPaused(x.queue, "datagram");
    expect(item.kind === "datagram" && item.peer.port).toBe(peer.port);
    expect(x.queue.resolve(item.key, { drop: true })).toBe(true);
    await until(() => x.observer.of("datagram").some((d) => d.verdict === "dropped" && d.reason === "hook"), 3000, "dropped datagram fact");
    x.queue.setActive(false);
    const answer = nextMessage(client);
    client.send(encodeUdpDatagram(HOST, peer.port, Buffer.from("second")), relayPort, HOST);
    const decoded = decodeUdpDatagram(await answer);
    expect(decoded.kind === "ok" && decoded.value.data.toString()).toBe("second");
    expect(peer.seen).toEqual(["second"]);
    expect(x.edits.map((e) => e.what.action)).toEqual(["drop"]);
  });

  it("a UDP idle timeout shorter than the hold does not end the association", async () => {
    const clock = new ManualClock();
    const peer = await udpEcho();
    const x = await interceptProxy((s) => s.stage === "datagram" && s.direction === "up", { udpIdleTimeoutMs: 300, clock });
    const { tcp, relayPort } = await associate(x.port);
    const client = await udpSocket();
    client.send(encodeUdpDatagram(HOST, peer.port, Buffer.from("held")), relayPort, HOST);
    const item = await nextPaused(x.queue, "datagram");
    for (let i = 0; i < 10; i++) clock.advance(300);
    expect(x.observer.of("closed")).toEqual([]);
    const answer = nextMessage(client);
    x.queue.resolve(item.key, { resume: true });
    const decoded = decodeUdpDatagram(await answer);
    expect(decoded.kind === "ok" && decoded.value.data.toString()).toBe("held");
    // The timeout still applies once nothing is held.
    clock.advance(600);
    expect((await x.observer.lastClosed()).reason).toBe("idle-timeout");
    expect((await tcp.readToEnd()).length).toBe(0);
  });
});

describe("InterceptRunner: the idle timeout", () => {
  it("an idle timeout shorter than the hold does not close the held tunnel; it applies again afterwards", async () => {
    const clock = new ManualClock();
    const e = await echo();
    const x = await interceptProxy((s) => s.stage === "up", { idleTimeoutMs: 300, clock });
    const c = await tunnel(x.port, e.port);
    c.write(Buffer.from("x"));
    const item = await nextPaused(x.queue, "chunk");
    await clock.armed(75);
    // Ten timeouts' worth of sweeps while the chunk is held.
    for (let i = 0; i < 40; i++) clock.advance(75);
    expect(x.observer.of("closed")).toEqual([]);
    x.queue.resolve(item.key, { resume: true });
    expect((await c.read(1)).toString()).toBe("x");
    clock.advance(375);
    expect((await c.readToEnd()).length).toBe(0);
    expect((await x.observer.lastClosed()).reason).toBe("idle-timeout");
  });
});
