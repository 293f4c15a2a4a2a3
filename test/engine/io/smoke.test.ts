import { afterEach, describe, expect, it } from "vitest";
import { openTunnel, startEchoServer, startProxy, type TestProxy } from "../../support/net.js";

describe("smoke", () => {
  let proxy: TestProxy | undefined;
  afterEach(async () => proxy?.stop());

  it("relays an echo through a SOCKS5 tunnel", async () => {
    proxy = await startProxy();
    const echo = await startEchoServer();
    const c = await openTunnel(proxy.port, echo.port);
    c.write(Buffer.from("hello"));
    expect((await c.read(5)).toString()).toBe("hello");
    c.end();
    await c.readToEnd();
    const closed = await proxy.observer.lastClosed();
    expect(closed.reason).toBe("completed");
    expect(closed.bytesUpReceived).toBe(5);
    await echo.close();
  });
});
