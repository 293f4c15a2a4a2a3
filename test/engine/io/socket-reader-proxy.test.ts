/**
 * Read sizes through a real proxy (engine + dispatcher over loopback): a write that the kernel
 * holds whole reaches onData, and the capture's chunk facts, as one chunk in each direction.
 */
import { describe, expect, it } from "vitest";
import { combineObservers } from "../../../src/engine/index.js";
import { Dispatcher } from "../../../src/hooks/dispatcher.js";
import { RecordingObserver, openTunnel, startServer, useTestProxies } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

describe("reads through the proxy", () => {
  it("a 78-byte client write and a 250-byte server answer each reach onData and the observer as one chunk", async () => {
    const request = Buffer.from("GET /a-request-of-78-byte HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8\r\n\r\n");
    expect(request.length).toBe(78);
    const answer = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: 210\r\n\r\n${"b".repeat(210)}`);
    expect(answer.length).toBe(250);
    const server = await startServer((s) => s.once("data", () => s.write(answer)));
    cleanups.push(() => server.close());

    const chunks: string[] = [];
    const dispatcher = new Dispatcher(
      [{ name: "sizes", file: "sizes.ts", options: {}, addon: { onData: (c) => void chunks.push(`${c.direction} ${c.data.length}`) } }],
      { events: { hookFailed: (f) => chunks.push(`failed ${f.message}`), tagged: () => {}, logged: () => {} } },
    );
    await dispatcher.start();
    const recorder = new RecordingObserver();
    const observed: string[] = [];
    recorder.chunk = (fact) => void observed.push(`${fact.direction} ${fact.received.length}`);
    const p = await proxy({ hooks: dispatcher, observer: combineObservers([recorder, dispatcher.observer]) });

    const c = await openTunnel(p.port, server.port);
    c.write(request);
    expect((await c.read(250)).equals(answer)).toBe(true);
    c.destroy();
    expect(chunks).toEqual(["up 78", "down 250"]);
    expect(observed).toEqual(["up 78", "down 250"]);
  });
});
