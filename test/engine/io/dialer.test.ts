/**
 * The direct dialer (engine/io/dialer.ts): what a finished dial leaves on the socket it hands over.
 */
import { describe, expect, it } from "vitest";
import { systemClock } from "../../../src/engine/index.js";
import { dial, type DialSuccess } from "../../../src/engine/io/dialer.js";
import { HOST, fakeLookup, startEchoServer } from "../../support/net.js";

describe("dial", () => {
  it.each([
    ["an IP literal", HOST],
    ["a name", "echo.test"],
  ])("to %s hands over a socket with none of the dial's listeners, so the tunnel does not keep the dial alive", async (_what, host) => {
    const echo = await startEchoServer();
    try {
      const lookup = fakeLookup({ "echo.test": [HOST] });
      const success = await new Promise<DialSuccess>((resolve, reject) =>
        dial({ host, port: echo.port }, { timeoutMs: 5000, lookup, clock: systemClock }, (failure, ok) =>
          failure === undefined ? resolve(ok!) : reject(new Error(failure.attempts.join("; "))),
        ),
      );
      expect(success.remote).toEqual({ host: HOST, port: echo.port });
      // Each listener the dial added held its whole closure (options, target, addresses, callbacks) for the tunnel's life.
      expect(success.socket.listenerCount("connect")).toBe(0);
      expect(success.socket.listenerCount("error")).toBe(0);
      success.socket.destroy();
    } finally {
      await echo.close();
    }
  });
});
