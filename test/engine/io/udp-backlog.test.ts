/**
 * Memory per UDP association is bounded (docs/architecture.md, "Trust rules"): datagrams waiting for an async
 * onDatagram verdict are at most MAX_WAITING; beyond, they are dropped and reported as "backlog",
 * and the association goes on once the hook answers.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { describe, expect, it } from "vitest";
import { allowAllHooks, type DatagramDropReason, type DatagramVerdict, type HookRunner } from "../../../src/engine/index.js";
import { encodeUdpDatagram } from "../../../src/engine/codec/udp.js";
import { RawClient, sleep, until, useTestProxies } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

/** udp-association.ts's MAX_WAITING (100-byte datagrams stay far below MAX_WAITING_BYTES). */
const MAX_WAITING = 256;

function udpSocket(): Promise<UdpSocket> {
  const socket = createSocket("udp4");
  cleanups.push(() => void socket.close());
  return new Promise((resolve) => socket.bind(0, "127.0.0.1", () => resolve(socket)));
}

describe("UDP association backlog", () => {
  it("an onDatagram hook that does not answer holds at most MAX_WAITING datagrams; the rest are dropped as backlog", async () => {
    const echo = await udpSocket();
    echo.on("message", (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
    const client = await udpSocket();
    const answers: Array<() => void> = [];
    const hooks: HookRunner = {
      ...allowAllHooks,
      wantsDatagrams: () => true,
      datagram: (d) => (d.direction === "up" ? new Promise<DatagramVerdict>((resolve) => answers.push(() => resolve(undefined))) : undefined),
    };
    const p = await proxy({ hooks });
    const dropped: Array<DatagramDropReason | undefined> = [];
    p.observer.datagram = (f) => {
      if (f.verdict === "dropped") dropped.push(f.reason);
    };
    const tcp = await RawClient.connect(p.port);
    cleanups.push(() => tcp.destroy());
    tcp.write(`050100 050300 01 7f000001 ${client.address().port.toString(16).padStart(4, "0")}`);
    await tcp.read(2);
    const reply = await tcp.read(10);
    const relayPort = reply.readUInt16BE(8);
    const total = 600;
    for (let i = 0; i < total; i++) {
      client.send(encodeUdpDatagram("127.0.0.1", echo.address().port, Buffer.alloc(100, i)), relayPort, "127.0.0.1");
      // Pacing on purpose: short pauses so loopback's socket buffer does not drop datagrams.
      if (i % 50 === 49) await sleep(5);
    }
    await until(() => answers.length + dropped.length >= total, 5000, `${total} datagrams waiting or dropped`);
    // Before: every datagram waited for the hook, none was dropped.
    expect(answers.length).toBe(MAX_WAITING);
    expect(dropped).toEqual(Array(total - MAX_WAITING).fill("backlog"));
    let echoed = 0;
    client.on("message", () => echoed++);
    for (const answer of answers.splice(0)) answer();
    await until(() => echoed >= MAX_WAITING, 5000, `${MAX_WAITING} echoes`);
    expect(echoed).toBe(MAX_WAITING);
    // The association goes on: a new datagram waits for the hook again.
    client.send(encodeUdpDatagram("127.0.0.1", echo.address().port, Buffer.from("again")), relayPort, "127.0.0.1");
    await until(() => answers.length > 0, 5000, "the next datagram at the hook");
    expect(answers).toHaveLength(1);
    answers[0]!();
  });
});
