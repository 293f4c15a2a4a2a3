/**
 * Sessions through upstream proxies: the engine's route (EngineOptions.route, an onRequest
 * `{ upstream }`), replies that tell the truth about the chain, and the route on the reply fact.
 * Upstream SOCKS proxies are second in-process engines; all over loopback.
 */
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { Credentials, allowAllHooks, parseUpstream, type HookRunner, type RequestInfo, type Route } from "../../../src/engine/index.js";
import { HOST, RawClient, closedPort, connect5, fakeLookup, hex, startEchoServer, useTestProxies, withTimeout } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

async function echo() {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server.port;
}

/** A SOCKS5 request for a domain name. */
function connectName(name: string, port: number): Buffer {
  const bytes = Buffer.from(name);
  return Buffer.concat([Buffer.from([5, 1, 0, 3, bytes.length]), bytes, Buffer.from([port >> 8, port & 0xff])]);
}

/** Sends a SOCKS5 greeting (no auth) and `bytes` (a request) to the front proxy; returns the client and the reply's REP. */
async function request(frontPort: number, bytes: Buffer): Promise<{ client: RawClient; rep: number; bound: Buffer }> {
  const client = await RawClient.connect(frontPort);
  cleanups.push(() => client.destroy());
  client.write(Buffer.concat([hex("050100"), bytes]));
  expect((await client.read(2)).toString("hex")).toBe("0500");
  const head = await client.read(4);
  const rest = await client.read(head[3] === 1 ? 6 : head[3] === 4 ? 18 : (await client.read(1))[0]! + 2);
  return { client, rep: head[1]!, bound: rest };
}

/** The details of a proxy's anomalies with `code`. */
function anomalies(p: { observer: { facts: readonly { kind: string; fact: unknown }[] } }, code: string): string[] {
  return p.observer.facts.flatMap((f) => {
    const fact = f.fact as { code?: string; detail?: string };
    return f.kind === "anomaly" && fact.code === code ? [fact.detail ?? ""] : [];
  });
}

function route(...urls: string[]): Route {
  return urls.map(parseUpstream);
}

describe("routes through upstream proxies", () => {
  it("a CONNECT goes through a socks5h upstream, which resolves the name; the reply fact names the hop", async () => {
    const target = await echo();
    const back = await proxy({ lookup: fakeLookup({ "echo.test": [HOST] }) });
    const front = await proxy({ route: () => route(`socks5h://${HOST}:${back.port}`), lookup: fakeLookup({}) });
    const { client, rep } = await request(front.port, connectName("echo.test", target));
    expect(rep).toBe(0);
    client.write(Buffer.from("through the chain"));
    expect((await client.read(17)).toString()).toBe("through the chain");
    const backRequest = back.observer.facts.find((f) => f.kind === "request");
    expect(backRequest?.fact).toMatchObject({ destination: { type: "domain", host: "echo.test", port: target } });
    expect(front.observer.facts.find((f) => f.kind === "reply")?.fact).toMatchObject({ rep: 0, route: [`socks5h://${HOST}:${back.port}`] });
  });

  it("two hops: socks5 then socks4a, and the client's reply waits for the whole chain", async () => {
    const target = await echo();
    const second = await proxy({ lookup: fakeLookup({ "echo.test": [HOST] }) });
    const first = await proxy();
    const front = await proxy({ route: () => route(`socks5://${HOST}:${first.port}`, `socks4a://${HOST}:${second.port}`) });
    const { client, rep } = await request(front.port, connectName("echo.test", target));
    expect(rep).toBe(0);
    client.write(Buffer.from("2 hops"));
    expect((await client.read(6)).toString()).toBe("2 hops");
    expect(second.observer.facts.find((f) => f.kind === "request")?.fact).toMatchObject({ version: "4a", destination: { host: "echo.test" } });
  });

  it("onRequest { upstream } chooses per request; an empty list goes direct", async () => {
    const target = await echo();
    const back = await proxy();
    const hooks: HookRunner = {
      ...allowAllHooks,
      request: (info: RequestInfo) => ({ upstream: info.destination.host === "127.0.0.1" ? route(`socks5://${HOST}:${back.port}`) : [] }),
    };
    const front = await proxy({ hooks, lookup: fakeLookup({ "direct.test": [HOST] }) });
    const via = await request(front.port, connect5(target));
    expect(via.rep).toBe(0);
    const direct = await request(front.port, connectName("direct.test", target));
    expect(direct.rep).toBe(0);
    const replies = front.observer.facts.flatMap((f) => (f.kind === "reply" ? [f.fact.route] : []));
    expect(replies).toEqual([[`socks5://${HOST}:${back.port}`], undefined]);
    expect(back.observer.facts.filter((f) => f.kind === "request")).toHaveLength(1);
  });

  it("an upstream that is down: REP 05; one that never answers: REP 06 within the connect timeout", async () => {
    const down = await closedPort();
    const front = await proxy({ route: () => route(`socks5://${HOST}:${down}`) });
    expect((await request(front.port, connect5(1))).rep).toBe(5);

    const held: Socket[] = [];
    const silent = createServer((socket: Socket) => {
      held.push(socket);
      socket.on("error", () => {});
      // Reads (and drops) what comes, so the proxy's close is noticed; never answers.
      socket.resume();
    });
    silent.listen(0, HOST);
    await once(silent, "listening");
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const silentPort = (silent.address() as AddressInfo).port;
    const slow = await proxy({ route: () => route(`socks5://${HOST}:${silentPort}`), connectTimeoutMs: 300 });
    const { rep } = await request(slow.port, connect5(1));
    expect(rep).toBe(6);
    const reply = slow.observer.facts.find((f) => f.kind === "reply")?.fact;
    expect(reply?.attempts?.join(" ")).toContain(`hop 1 socks5://${HOST}:${silentPort}`);
    // The proxy gave up on the silent hop: its connection is closed, not leaked.
    expect(held).toHaveLength(1);
    await withTimeout(
      held[0]!.closed ? Promise.resolve() : once(held[0]!, "close").then(() => undefined),
      3_000,
      "the proxy kept its connection to the silent hop",
    );
  });

  it("credentials: right ones get through, wrong ones are REP 01 with an event naming the hop", async () => {
    const target = await echo();
    const credentials = new Credentials();
    credentials.add("alice", "s3cret");
    const back = await proxy({ credentials });
    const good = await proxy({ route: () => route(`socks5://alice:s3cret@${HOST}:${back.port}`) });
    expect((await request(good.port, connect5(target))).rep).toBe(0);
    const bad = await proxy({ route: () => route(`socks5://alice:wrong@${HOST}:${back.port}`) });
    expect((await request(bad.port, connect5(target))).rep).toBe(1);
    const [event] = anomalies(bad, "upstream-auth-failed");
    expect(event).toContain(`hop 1 socks5://${HOST}:${back.port}`);
    expect(event).not.toContain("wrong");
    // The route is recorded without the password.
    expect(bad.observer.facts.find((f) => f.kind === "reply")?.fact.route).toEqual([`socks5://${HOST}:${back.port}`]);
  });

  it("an upstream's refusal is passed on: its REP 02 reaches the client", async () => {
    const back = await proxy({ hooks: { ...allowAllHooks, request: () => ({ deny: "DENIED" }) } });
    const front = await proxy({ route: () => route(`socks5://${HOST}:${back.port}`) });
    expect((await request(front.port, connect5(1))).rep).toBe(2);
  });

  it("an HTTP CONNECT upstream carries CONNECT; its 403 is REP 02", async () => {
    const target = await echo();
    let refuse = false;
    const http = createServer((socket: Socket) => {
      socket.on("error", () => {});
      socket.once("data", (head: Buffer) => {
        const [, host, port] = /^CONNECT ([^:]+):(\d+) HTTP\/1\.1\r\n/.exec(head.toString()) ?? [];
        if (refuse || host === undefined) return void socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
        const upstream = connect(Number(port), host, () => {
          socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
          socket.pipe(upstream).pipe(socket);
        });
        upstream.on("error", () => socket.destroy());
      });
    });
    http.listen(0, HOST);
    await once(http, "listening");
    cleanups.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
    const httpPort = (http.address() as AddressInfo).port;
    const front = await proxy({ route: () => route(`http://${HOST}:${httpPort}`) });
    const { client, rep } = await request(front.port, connect5(target));
    expect(rep).toBe(0);
    client.write(Buffer.from("over http"));
    expect((await client.read(9)).toString()).toBe("over http");
    refuse = true;
    expect((await request(front.port, connect5(target))).rep).toBe(2);
  });

  it("a command the route cannot carry is REP 07 with the reason recorded (UDP through HTTP)", async () => {
    const front = await proxy({ route: () => route(`http://${HOST}:3128`) });
    const client = await RawClient.connect(front.port);
    cleanups.push(() => client.destroy());
    client.write(Buffer.concat([hex("050100"), hex("0503000100000000" + "0000")]));
    expect((await client.read(2)).toString("hex")).toBe("0500");
    expect((await client.read(2))[1]).toBe(7);
    expect(anomalies(front, "upstream-cannot-carry")).toEqual([expect.stringContaining(`http://${HOST}:3128`)]);
  });

  it("onReply sees the bound address the last hop reported", async () => {
    const target = await echo();
    const back = await proxy();
    let bound: unknown;
    const front = await proxy({
      route: () => route(`socks5://${HOST}:${back.port}`),
      hooks: {
        ...allowAllHooks,
        reply: (info) => {
          bound = info.bound;
          return undefined;
        },
      },
    });
    expect((await request(front.port, connect5(target))).rep).toBe(0);
    const backReply = back.observer.facts.find((f) => f.kind === "reply")?.fact;
    expect(bound).toEqual(backReply?.bound);
  });
});
