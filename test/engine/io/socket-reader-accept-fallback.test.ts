/**
 * The engine on a Node where the accept hook does not work (simulated for this file's process,
 * socket-reader.ts simulateBrokenAcceptHook): listeners fall back to adopting Node's accepted
 * sockets, silently (adoption still reads fast), and sessions behave the same: a tunnel relays
 * 4 MiB each way, a session's facts name its client, and stop() waits for an open tunnel.
 */
import { describe, expect, it } from "vitest";
import { simulateBrokenAcceptHook } from "../../../src/engine/io/socket-reader.js";
import type { LogLevel } from "../../../src/engine/index.js";
import { openTunnel, startEchoServer, useTestProxies, withTimeout } from "../../support/net.js";

simulateBrokenAcceptHook();

const { cleanups, proxy } = useTestProxies();

describe("accepted sockets are adopted when the accept hook does not work", () => {
  it("relays through an adopted client socket, logs nothing, and stop() waits for the tunnel", async () => {
    const echo = await startEchoServer();
    cleanups.push(() => echo.close());
    const lines: Array<{ level: LogLevel; message: string }> = [];
    const p = await proxy({ logger: { log: (level, message) => void lines.push({ level, message }) } });
    expect(lines).toEqual([]);
    const c = await openTunnel(p.port, echo.port);
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    c.write(payload);
    expect((await c.read(payload.length, 15_000)).equals(payload)).toBe(true);
    const opened = p.observer.of("opened");
    expect(opened).toHaveLength(1);
    expect(opened[0]!.client.port).toBe(c.socket.localPort);
    let stopped = false;
    const stopping = p.engine.stop(10_000).then(() => (stopped = true));
    c.write(Buffer.from("still"));
    expect((await c.read(5)).toString()).toBe("still");
    expect(stopped).toBe(false);
    c.end();
    await withTimeout(stopping, 5_000, "stop did not resolve after the tunnel closed");
  });
});
