/**
 * Every recipe in addons/, loaded by the real loader into a dispatcher on a real engine, driven
 * over loopback sockets. Destinations that are denied or redirected are never dialled, so names
 * such as api.example.com stay on this machine.
 */
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { combineObservers } from "../../src/engine/index.js";
import { encodeUdpDatagram, decodeUdpDatagram } from "../../src/engine/codec/udp.js";
import { Dispatcher } from "../../src/hooks/dispatcher.js";
import { loadAddon } from "../../src/hooks/loader.js";
import { RawClient, RecordingObserver, connect5, hex, openTunnel, sleep, startEchoServer, until, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();
const recipe = (name: string) => join(import.meta.dirname, "../../addons", `${name}.ts`);

async function proxyWith(name: string, settings: Record<string, string> = {}) {
  const loaded = await loadAddon(recipe(name), settings);
  const dispatcher = new Dispatcher([loaded], {
    events: {
      hookFailed: (f) => {
        throw new Error(`${f.hook}: ${f.message}`);
      },
      tagged: () => {},
      logged: () => {},
    },
  });
  await dispatcher.start();
  const recorder = new RecordingObserver();
  const p = await proxy({ hooks: dispatcher, observer: combineObservers([recorder, dispatcher.observer]) });
  return { port: p.port, recorder };
}

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

function domainConnect(host: string, port: number): Buffer {
  return Buffer.concat([hex("050100 05010003"), Buffer.from([host.length]), Buffer.from(host), Buffer.from([port >> 8, port & 0xff])]);
}

async function replyTo(port: number, request: Buffer): Promise<number> {
  const c = await RawClient.connect(port);
  c.write(request);
  await c.read(2);
  const reply = await c.read(10);
  c.destroy();
  return reply[1]!;
}

describe("addons/ recipes", () => {
  it("block-hosts denies globbed names and CIDRs with REP 02, and lets the rest through", async () => {
    const target = await echo();
    const { port } = await proxyWith("block-hosts", { hosts: "*.doubleclick.net,ads.*", cidrs: "10.0.0.0/8,fd00::/8" });
    expect(await replyTo(port, domainConnect("stats.doubleclick.net", 443))).toBe(2);
    expect(await replyTo(port, domainConnect("ads.example.com", 80))).toBe(2);
    expect(await replyTo(port, Buffer.concat([hex("050100"), connect5(80, "10.1.2.3")]))).toBe(2);
    expect(await replyTo(port, Buffer.concat([hex("050100 05010004 fd000000000000000000000000000001 0050")]))).toBe(2);
    expect(await replyTo(port, Buffer.concat([hex("050100"), connect5(target.port)]))).toBe(0);
  });

  it("redirect sends one destination somewhere else; the client sees its own request succeed", async () => {
    const target = await echo();
    const { port, recorder } = await proxyWith("redirect", { from: "api.example.com:443", to: `127.0.0.1:${target.port}` });
    const c = await RawClient.connect(port);
    c.write(domainConnect("api.example.com", 443));
    await c.read(2);
    expect((await c.read(10))[1]).toBe(0);
    c.write(Buffer.from("ping"));
    expect((await c.read(4)).toString()).toBe("ping");
    expect(recorder.last("reply").target).toEqual({ host: "127.0.0.1", port: target.port });
  });

  it("rewrite-header replaces an HTTP request header on the way up", async () => {
    const target = await echo();
    const { port } = await proxyWith("rewrite-header", { name: "User-Agent", value: "rewritten" });
    const c = await openTunnel(port, target.port);
    const request = "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\n\r\n";
    c.write(Buffer.from(request));
    const expected = request.replace("curl/8", "rewritten");
    expect((await c.read(expected.length)).toString()).toBe(expected);
  });

  it("rewrite-header rewrites a head split across two writes 30 ms apart, every request of a keep-alive connection, and leaves bodies alone", async () => {
    const target = await echo();
    const { port, recorder } = await proxyWith("rewrite-header", { name: "User-Agent", value: "rewritten" });
    const c = await openTunnel(port, target.port);
    const body = "User-Agent: curl/8\r\n\r\n";
    const first = `POST /a HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const second = "GET /b HTTP/1.1\r\nHost: x\r\nuser-agent: curl/8\r\n\r\n";
    // Cut inside the header name, then the rest with the body and the next request.
    c.write(Buffer.from(first.slice(0, 38)));
    await sleep(30);
    c.write(Buffer.from(first.slice(38) + second));
    const expected =
      first.replace("User-Agent: curl/8\r\nContent", "User-Agent: rewritten\r\nContent") + second.replace("user-agent: curl/8", "user-agent: rewritten");
    expect((await c.read(expected.length)).toString()).toBe(expected);
    // A chunked body that looks like a header is left alone too.
    const chunked = `POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUser-Agent: a\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const third = "GET /d HTTP/1.1\r\nUser-Agent: b\r\n\r\n";
    for (const part of [chunked.slice(0, 70), chunked.slice(70), third]) {
      c.write(Buffer.from(part));
      await sleep(10);
    }
    const expected2 = chunked.replace("User-Agent: a", "User-Agent: rewritten") + third.replace("User-Agent: b", "User-Agent: rewritten");
    expect((await c.read(expected2.length)).toString()).toBe(expected2);
    c.destroy();
    expect(recorder.of("anomaly")).toEqual([]);
  });

  it("allow-users lets listed users in, whatever the password, and refuses the rest", async () => {
    const target = await echo();
    const { port } = await proxyWith("allow-users", { users: "alice,bob" });
    const login = async (user: string) => {
      const c = await RawClient.connect(port);
      c.write("050102");
      await c.read(2);
      c.write(Buffer.concat([Buffer.from([1, user.length]), Buffer.from(user), Buffer.from([3]), Buffer.from("pwd")]));
      const status = (await c.read(2)).toString("hex");
      if (status === "0100") {
        c.write(connect5(target.port));
        await c.read(10);
      }
      c.destroy();
      return status;
    };
    expect(await login("alice")).toBe("0100");
    expect(await login("mallory")).toBe("0101");
    const anonymous = await RawClient.connect(port);
    anonymous.write("050100");
    expect((await anonymous.readToEnd()).toString("hex")).toBe("05ff");
  });

  it("latency delays every chunk (and the sender with it)", async () => {
    const target = await echo();
    const { port } = await proxyWith("latency", { ms: "150" });
    const c = await openTunnel(port, target.port);
    const started = Date.now();
    c.write(Buffer.from("x"));
    await c.read(1);
    // Up and down each wait 150 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("udp-chaos drops or corrupts datagrams by the configured share", async () => {
    const udpEcho = createSocket("udp4");
    cleanups.push(() => void udpEcho.close());
    await new Promise<void>((r) => udpEcho.bind(0, "127.0.0.1", () => r()));
    const atEcho: Buffer[] = [];
    udpEcho.on("message", (m, r) => {
      atEcho.push(m);
      udpEcho.send(m, r.port, r.address);
    });
    const client = createSocket("udp4");
    cleanups.push(() => void client.close());
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));

    for (const [settings, check] of [
      [
        { drop: "1", corrupt: "0" },
        (got: Buffer[]) => {
          expect(got).toEqual([]);
          expect(atEcho).toEqual([]);
        },
      ],
      // Corrupted on the way up: the echo server got "abcd" with exactly one byte flipped.
      [
        { drop: "0", corrupt: "1" },
        (got: Buffer[]) => {
          expect(got).toHaveLength(1);
          expect(decodeUdpDatagram(got[0]!).kind).toBe("ok");
          expect(atEcho).toHaveLength(1);
          expect([...atEcho[0]!].filter((b, i) => b !== Buffer.from("abcd")[i])).toHaveLength(1);
        },
      ],
    ] as const) {
      const { port } = await proxyWith("udp-chaos", settings);
      const tcp = await RawClient.connect(port);
      tcp.write("050100 05030001 00000000 0000");
      await tcp.read(2);
      const relayPort = (await tcp.read(10)).readUInt16BE(8);
      const got: Buffer[] = [];
      const on = (m: Buffer) => got.push(m);
      client.on("message", on);
      client.send(encodeUdpDatagram("127.0.0.1", udpEcho.address().port, Buffer.from("abcd")), relayPort, "127.0.0.1");
      // Dropping everything is a negative check (nothing arrives: it needs a duration); otherwise wait for the one echo.
      if (settings.drop === "1") await sleep(150);
      else await until(() => got.length >= 1, 2_000, "the echoed datagram");
      client.off("message", on);
      check(got);
      tcp.destroy();
    }
  });
});

describe("addons/dns-override", () => {
  it("answers A and AAAA queries for mapped names itself, and lets other queries reach the DNS server", async () => {
    const dns = createSocket("udp4");
    cleanups.push(() => void dns.close());
    await new Promise<void>((r) => dns.bind(0, "127.0.0.1", () => r()));
    const atServer: string[] = [];
    dns.on("message", (m, r) => {
      atServer.push(m.subarray(13, 18).toString("latin1"));
      dns.send(m, r.port, r.address);
    });
    const dnsPort = dns.address().port;
    const { port } = await proxyWith("dns-override", { names: "api.internal=10.1.2.3,*.staging.test=fd00::1", port: String(dnsPort) });
    const tcp = await RawClient.connect(port);
    cleanups.push(() => tcp.destroy());
    tcp.write(hex("050100 05030001 00000000 0000"));
    await tcp.read(2);
    const relayPort = (await tcp.read(10)).readUInt16BE(8);
    const client = createSocket("udp4");
    cleanups.push(() => void client.close());
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));
    const ask = async (name: string, type: number): Promise<Buffer> => {
      const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
      const query = Buffer.concat([hex("1234 0100 0001 0000 0000 0000"), ...labels, Buffer.from([0, 0, type, 0, 1])]);
      const reply = new Promise<Buffer>((resolve) => client.once("message", resolve));
      client.send(encodeUdpDatagram("127.0.0.1", dnsPort, query), relayPort, "127.0.0.1");
      const decoded = decodeUdpDatagram(await reply);
      if (decoded.kind !== "ok") throw new Error("not a SOCKS UDP datagram");
      expect(decoded.value.address).toMatchObject({ host: "127.0.0.1", port: dnsPort });
      return decoded.value.data;
    };
    const a = await ask("api.internal", 1);
    expect(a.subarray(0, 8).toString("hex")).toBe("1234858000010001");
    expect([...a.subarray(-4)]).toEqual([10, 1, 2, 3]);
    const aaaa = await ask("web.staging.test", 28);
    expect(aaaa.readUInt16BE(6)).toBe(1);
    expect(aaaa.subarray(-16).toString("hex")).toBe("fd000000000000000000000000000001");
    // A name mapped to IPv6 asked for A: NOERROR with no answer.
    expect((await ask("web.staging.test", 1)).readUInt16BE(6)).toBe(0);
    // Not mapped: the DNS server gets it (and echoes it back).
    expect((await ask("other.example", 1)).readUInt16BE(2)).toBe(0x0100);
    expect(atServer).toEqual(["other"]);
  });
});

describe("addons/serve-responder", () => {
  it("answers a CONNECT itself, with no upstream, and curl gets the canned response", async () => {
    const { execFile } = await import("node:child_process");
    const { port, recorder } = await proxyWith("serve-responder", { host: "api.mock.test", body: "mocked!" });
    const result = await new Promise<{ code: number; body: string }>((resolve) =>
      execFile("curl", ["-s", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${port}`, "http://api.mock.test/anything"], (err, stdout) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout }),
      ),
    );
    expect(result).toEqual({ code: 0, body: "mocked!" });
    const reply = recorder.last("reply");
    expect(reply).toMatchObject({ rep: 0 });
    expect(reply.target).toBeUndefined();
    const closed = await recorder.lastClosed();
    expect(closed).toMatchObject({ reason: "closed-by-hook", bytesDownSent: expect.any(Number) });
    expect(closed.bytesDownSent).toBeGreaterThan(7);
  });

  it("answers a request head that arrives in pieces (the blank line split across two writes)", async () => {
    const { port } = await proxyWith("serve-responder", { host: "api.mock.test", body: "mocked!" });
    const c = await RawClient.connect(port);
    c.write(domainConnect("api.mock.test", 80));
    await c.read(2);
    expect((await c.read(10))[1]).toBe(0);
    c.write(Buffer.from("GET / HTTP/1.1\r\nHost: api.mock.test\r\n\r"));
    await sleep(30);
    c.write(Buffer.from("\n"));
    expect((await c.readToEnd()).toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nmocked!$/);
  });

  it("other hosts are still dialled normally", async () => {
    const target = await echo();
    const { port } = await proxyWith("serve-responder", { host: "api.mock.test" });
    const c = await openTunnel(port, target.port);
    c.write(Buffer.from("real"));
    expect((await c.read(4)).toString()).toBe("real");
  });
});
