/**
 * Client replay of a UDP association: send the datagrams the client sent again, and compare the
 * answers with the recorded ones.
 *
 * - Sent: every "up" datagram the proxy relayed, as the client wrote it (dropped ones were never
 *   sent, so they are not re-sent), to its recorded peer, or to `target` for all of them.
 * - Expected: every "down" datagram that reached the client, in order. The answers to one
 *   datagram are those recorded before the client's next one.
 * - Directly: from one local UDP socket per address family (every peer sees the same source
 *   port, as through the proxy). `via`: a real UDP ASSOCIATE through that SOCKS5 proxy, every
 *   datagram wrapped with the SOCKS UDP header.
 * - Pace `turns`: after each datagram, wait for as many answers as were recorded for it, or
 *   `quietMs` without a new one; `original`: the recorded offsets; `none`: all at once. Then wait
 *   for the rest of the answers the same way.
 * - Compared answer by answer: the first one whose bytes differ (or that is missing, or extra).
 *   UDP may lose or reorder datagrams; on loopback it does not, elsewhere a difference can be
 *   the network's.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Socket } from "node:net";
import { decodeUdpDatagram, encodeUdpDatagram, type Endpoint } from "../engine/index.js";
import type { DatagramRow, SessionRow } from "../store/schema.js";
import { open, sleep, type ClientReplayOptions, type ClientReplayResult, type ReplayedDatagram } from "./client-replay.js";
import { firstDifference, firstDifferingAnswer } from "./turns.js";

interface Exchange {
  readonly to: Endpoint;
  readonly data: Buffer;
  readonly at: number;
  /** Answers recorded before the client's next datagram. */
  answers: number;
}

export async function replayDatagrams(session: SessionRow, rows: Iterable<DatagramRow>, options: ClientReplayOptions = {}): Promise<ClientReplayResult> {
  const exchanges: Exchange[] = [];
  const expected: Buffer[] = [];
  for (const d of rows) {
    if (d.verdict === "dropped") continue;
    if (d.direction === "up") {
      if (d.peer_host === null || d.peer_port === null) continue;
      exchanges.push({ to: options.target ?? { host: d.peer_host, port: d.peer_port }, data: d.data, at: d.at, answers: 0 });
    } else {
      expected.push(d.sent ?? d.data);
      const last = exchanges[exchanges.length - 1];
      if (last !== undefined) last.answers++;
    }
  }
  const quietMs = options.quietMs ?? 500;
  const startedAt = Date.now();
  const deadline = startedAt + (options.timeoutMs ?? 30_000);
  const log: ReplayedDatagram[] = [];
  const answers: Buffer[] = [];
  let lastAnswerAt = startedAt;
  const first = exchanges[0]?.to ?? options.target ?? { host: "?", port: 0 };
  const base = {
    original: session.id,
    target: first,
    ...(options.via === undefined ? {} : { via: { host: options.via.host, port: options.via.port } }),
    startedAt,
    turns: exchanges.length,
    recordedSent: exchanges.reduce((n, e) => n + e.data.length, 0),
    expected: expected.reduce((n, b) => n + b.length, 0),
    chunks: [],
  };
  const detail = (sent: number, differingAnswer?: number) => ({
    datagrams: log,
    sent,
    expected: expected.length,
    received: answers.length,
    ...(differingAnswer === undefined ? {} : { differingAnswer }),
  });
  let channel: Channel | undefined;
  let sentCount = 0;
  let sentBytes = 0;
  try {
    channel = await openChannel(options, deadline, (peer, data) => {
      lastAnswerAt = Date.now();
      answers.push(data);
      log.push({ direction: "down", at: lastAnswerAt, peer, data });
    });
    const waitFor = async (count: number) => {
      while (answers.length < count && Date.now() < deadline && Date.now() - lastAnswerAt < quietMs) await sleep(5);
    };
    const pace = options.pace ?? "turns";
    const t0 = exchanges[0]?.at ?? 0;
    let answersSoFar = 0;
    for (const e of exchanges) {
      if (pace === "original") await sleep(Math.max(0, startedAt + (e.at - t0) - Date.now()));
      const to = await channel.send(e.to, e.data);
      log.push({ direction: "up", at: Date.now(), peer: to, data: e.data });
      sentCount++;
      sentBytes += e.data.length;
      answersSoFar += e.answers;
      if (pace === "turns" && e.answers > 0) {
        lastAnswerAt = Math.max(lastAnswerAt, Date.now());
        await waitFor(answersSoFar);
      }
    }
    lastAnswerAt = Math.max(lastAnswerAt, Date.now());
    await waitFor(expected.length);
    const differing = firstDifferingAnswer(expected, answers);
    const difference = differing === undefined ? undefined : firstDifference(expected[differing] ?? Buffer.alloc(0), answers[differing] ?? Buffer.alloc(0));
    return {
      ...base,
      local: channel.local,
      completed: true,
      endedAt: Date.now(),
      sent: sentBytes,
      received: answers.reduce((n, b) => n + b.length, 0),
      match: differing === undefined,
      ...(difference === undefined ? {} : { difference }),
      udp: detail(sentCount, differing),
    };
  } catch (err) {
    return {
      ...base,
      completed: false,
      error: (err as Error).message,
      endedAt: Date.now(),
      sent: sentBytes,
      received: answers.reduce((n, b) => n + b.length, 0),
      match: false,
      udp: detail(sentCount),
    };
  } finally {
    channel?.close();
  }
}

/** Where datagrams go out and answers come in: straight, or through a SOCKS5 UDP relay. */
interface Channel {
  readonly local: Endpoint;
  /** Sends one datagram; resolves with the address it went to. */
  send(to: Endpoint, data: Buffer): Promise<Endpoint>;
  close(): void;
}

async function openChannel(options: ClientReplayOptions, deadline: number, answer: (peer: Endpoint, data: Buffer) => void): Promise<Channel> {
  return options.via === undefined ? direct(options, answer) : throughProxy(options, deadline, answer);
}

async function bound(family: "udp4" | "udp6", onMessage: (msg: Buffer, from: Endpoint) => void): Promise<UdpSocket> {
  const socket = createSocket({ type: family, ipv6Only: family === "udp6" });
  socket.on("message", (msg, rinfo) => onMessage(msg, { host: rinfo.address, port: rinfo.port }));
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, family === "udp6" ? "::" : "0.0.0.0", () => resolve());
  });
  return socket;
}

/** Straight to the peers, one socket per address family, created when first needed. */
async function direct(options: ClientReplayOptions, answer: (peer: Endpoint, data: Buffer) => void): Promise<Channel> {
  const sockets = new Map<"udp4" | "udp6", Promise<UdpSocket>>();
  const socketFor = (family: "udp4" | "udp6") => {
    let s = sockets.get(family);
    if (s === undefined) {
      s = bound(family, (msg, from) => answer(from, msg));
      sockets.set(family, s);
    }
    return s;
  };
  const first = await socketFor("udp4");
  const local = first.address();
  options.connected?.({ host: local.address, port: local.port });
  return {
    local: { host: local.address, port: local.port },
    async send(to, data) {
      const ip = isIP(to.host) === 0 ? (await lookup(to.host)).address : to.host;
      const socket = await socketFor(isIP(ip) === 6 ? "udp6" : "udp4");
      await new Promise<void>((resolve, reject) => socket.send(data, to.port, ip, (err) => (err ? reject(err) : resolve())));
      return { host: ip, port: to.port };
    },
    close() {
      for (const s of sockets.values()) void s.then((socket) => socket.close());
    },
  };
}

/** A UDP ASSOCIATE through the proxy: its TCP connection stays open while datagrams flow. */
async function throughProxy(options: ClientReplayOptions, deadline: number, answer: (peer: Endpoint, data: Buffer) => void): Promise<Channel> {
  const via = options.via!;
  let control: Socket | undefined;
  try {
    // DST 0.0.0.0:0: this client's UDP port is not known to the proxy until the first datagram.
    const opened = await open({ host: "0.0.0.0", port: 0 }, via, deadline, options.connected, "udp");
    control = opened.socket;
    control.on("error", () => {});
    control.resume();
    const relay = opened.bound!;
    // An unspecified BND.ADDR means "the address you reached me on".
    const relayHost = relay.host === "0.0.0.0" || relay.host === "::" ? via.host : relay.host;
    const family = isIP(relayHost) === 6 ? "udp6" : "udp4";
    const socket = await bound(family, (msg) => {
      const decoded = decodeUdpDatagram(msg);
      if (decoded.kind !== "ok") return;
      answer({ host: decoded.value.address.host, port: decoded.value.address.port }, decoded.value.data);
    });
    const local = socket.address();
    const ended = control;
    return {
      local: { host: control.localAddress ?? local.address, port: control.localPort ?? local.port },
      async send(to, data) {
        const framed = encodeUdpDatagram(to.host, to.port, data);
        await new Promise<void>((resolve, reject) => socket.send(framed, relay.port, relayHost, (err) => (err ? reject(err) : resolve())));
        return to;
      },
      close() {
        socket.close();
        ended.destroy();
      },
    };
  } catch (err) {
    control?.destroy();
    throw err;
  }
}
