/**
 * RFC 1929 username/password sub-negotiation over real loopback sockets. Credentials are octets compared byte for byte; a failure answers 01 01 and
 * closes without reading the request.
 */
import { describe, expect, it } from "vitest";
import { Credentials } from "../../../src/engine/index.js";
import { RawClient, connect5, found, hex, nth, sleep, startEchoServer, startServer, useTestProxies } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

const { cleanups, proxy } = useTestProxies();

function users(...pairs: Array<[string, string]>): Credentials {
  const credentials = new Credentials();
  for (const [user, pass] of pairs) credentials.add(user, pass);
  return credentials;
}

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

/** Connects and negotiates method 02 (username/password). */
async function userpassClient(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  cleanups.push(async () => c.destroy());
  c.write("05 01 02");
  expect((await c.read(2)).toString("hex")).toBe("0502");
  return c;
}

/** RFC 1929 request from raw octets. */
function userpass(user: Buffer, password: Buffer): Buffer {
  return Buffer.concat([Buffer.of(1, user.length), user, Buffer.of(password.length), password]);
}

describe("RFC 1929 (research §7, scenarios 11–15)", () => {
  it("#11 wrong sub-negotiation version (05 instead of 01) → 01 01 and close", async () => {
    const p = await proxy({ credentials: users(["user", "pass"]) });
    const c = await userpassClient(p.port);
    c.write("05 04 75736572 04 70617373");
    const answer = await c.readToEnd(2000);
    expect(answer.length).toBe(2);
    expect(answer[0]).toBe(0x01);
    expect(answer[1]).not.toBe(0x00);
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("auth-failed");
    expect(p.observer.of("anomaly").map((a) => a.code)).toContain("bad-auth-version");
    expect(p.observer.of("request")).toEqual([]);
  });

  it("#12 empty password parses; accepted when the configured password is empty, and the session works", async () => {
    const target = await echo();
    const p = await proxy({ credentials: users(["user", ""]) });
    const c = await userpassClient(p.port);
    c.write("01 04 75736572 00");
    expect((await c.read(2)).toString("hex")).toBe("0100");
    c.write(connect5(target.port));
    expect((await c.read(10))[1]).toBe(0);
    c.write("6869");
    expect((await c.read(2)).toString()).toBe("hi");
    expect(p.observer.first("auth")).toMatchObject({ method: 2, user: "user", accepted: true });
  });

  it("#12 empty password parses; refused (01 01, close) when the user has a non-empty password", async () => {
    const p = await proxy({ credentials: users(["user", "pass"]) });
    const c = await userpassClient(p.port);
    c.write("01 04 75736572 00");
    expect((await c.readToEnd(2000)).toString("hex")).toBe("0101");
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("auth-failed");
    expect(p.observer.first("auth")).toMatchObject({ user: "user", accepted: false });
  });

  it("#12 empty user name and password (ULEN = PLEN = 0) parse without a hang when auth is optional", async () => {
    const target = await echo();
    const p = await proxy();
    const c = await userpassClient(p.port);
    c.write("01 00 00");
    expect((await c.read(2)).toString("hex")).toBe("0100");
    c.write(connect5(target.port));
    expect((await c.read(10))[1]).toBe(0);
  });

  it("#13 bad credentials → 01 01 then close; the pipelined SOCKS request is never read", async () => {
    let connections = 0;
    const target = await startServer(() => connections++);
    cleanups.push(() => target.close());
    const p = await proxy({ credentials: users(["user", "pass"]) });
    const c = await userpassClient(p.port);
    c.write(Buffer.concat([hex("01 04 75736572 03 626164"), connect5(target.port)]));
    // Exactly the status, then FIN: no SOCKS reply follows.
    expect((await c.readToEnd(2000)).toString("hex")).toBe("0101");
    c.end();
    expect((await p.observer.lastClosed()).reason).toBe("auth-failed");
    // A negative check needs a duration: 50 ms in which no connection to the target may appear.
    await sleep(50);
    expect(connections).toBe(0);
    expect(p.observer.of("request")).toEqual([]);
    expect(p.observer.of("reply")).toEqual([]);
    expect(p.observer.of("auth")).toEqual([expect.objectContaining({ version: 5, offered: [2], method: 2, user: "user", accepted: false })]);
  });

  it("#14 non-UTF-8 credentials (ff fe / 80 81) are compared byte-exact: never equal to the UTF-8 text of the same characters", async () => {
    // "\u00ff\u00fe" / "\u0080\u0081" are stored as UTF-8 (c3bf c3be / c280 c281); the raw
    // octets ff fe / 80 81 must not match them through a latin1 or replacement-char mix-up.
    const p = await proxy({ credentials: users(["\u00ff\u00fe", "\u0080\u0081"]) });
    const raw = await userpassClient(p.port);
    raw.write("01 02 ff fe 02 80 81");
    expect((await raw.readToEnd(2000)).toString("hex")).toBe("0101");
    raw.end();
    await p.observer.lastClosed();
    // The user name is recorded octet for octet (latin1 text of the bytes).
    expect(p.observer.first("auth")).toMatchObject({ user: "\u00ff\u00fe", accepted: false });
    expect(Buffer.from(found(p.observer.first("auth").user, "user name"), "latin1").toString("hex")).toBe("fffe");

    const utf8 = await userpassClient(p.port);
    utf8.write("01 04 c3bfc3be 04 c280c281");
    expect((await utf8.read(2)).toString("hex")).toBe("0100");
    expect(Buffer.from(found(nth(p.observer.of("auth"), 1, "auth fact").user, "user name"), "latin1").toString("hex")).toBe("c3bfc3be");
  });

  it("#14 non-UTF-8 credentials are accepted as octets when auth is optional, and the name is recorded exactly", async () => {
    const target = await echo();
    const p = await proxy();
    const c = await userpassClient(p.port);
    c.write(Buffer.concat([userpass(hex("fffe"), hex("8081")), connect5(target.port)]));
    expect((await c.read(2)).toString("hex")).toBe("0100");
    expect((await c.read(10))[1]).toBe(0);
    const auth = p.observer.first("auth");
    expect(Buffer.from(found(auth.user, "user name"), "latin1").toString("hex")).toBe("fffe");
    const request = p.observer.first("request");
    expect(Buffer.from(found(request.user, "user name"), "latin1").toString("hex")).toBe("fffe");
  });

  it("#15 truncated auth (01 04 75 73) then silence → closed at the handshake timeout, no status sent", async () => {
    const clock = new ManualClock();
    const p = await proxy({ credentials: users(["user", "pass"]), handshakeTimeoutMs: 300, clock });
    const c = await userpassClient(p.port);
    c.write("01 04 75 73");
    await clock.armed(300);
    // The timeout reports its anomaly as it fires (inside advance): none 1 ms before the deadline.
    clock.advance(299);
    expect(p.observer.of("anomaly")).toEqual([]);
    clock.advance(1);
    expect((await c.readToEnd(3000)).length).toBe(0);
    const closed = await p.observer.lastClosed();
    expect(closed.reason).toBe("handshake-timeout");
    expect(p.observer.of("anomaly").map((a) => a.code)).toEqual(["handshake-timeout"]);
    expect(p.observer.of("auth")).toEqual([]);
  });
});
