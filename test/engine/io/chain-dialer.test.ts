/**
 * The chain dialer over real loopback: upstream SOCKS proxies are in-process engines, the HTTP
 * upstream a small CONNECT server written here, and fake hops answer exact bytes where a real
 * engine would not (an unknown REP, a reply with bytes behind it, silence).
 */
import { describe, expect, it } from "vitest";
import { Socket } from "node:net";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { decodeUdpDatagram, encodeUdpDatagram } from "../../../src/engine/codec/udp.js";
import { Credentials, allowAllHooks, systemClock, type Endpoint } from "../../../src/engine/index.js";
import { parseUpstream, type Route } from "../../../src/engine/upstream.js";
import {
  associateThrough,
  bindThrough,
  dialChain,
  type AssociationSuccess,
  type ChainFailure,
  type ChainSuccess,
} from "../../../src/engine/io/chain-dialer.js";
import type { DialOptions } from "../../../src/engine/io/dialer.js";
import { HOST, RawClient, closedPort, fakeLookup, startEchoServer, startServer, until, useTestProxies, withTimeout } from "../../support/net.js";
import { ManualClock } from "../../support/manual-clock.js";

const { cleanups, proxy } = useTestProxies();

const lookup = fakeLookup({ "echo.test": [HOST], "v6only.test": ["::1"] });
const options: DialOptions = { timeoutMs: 3000, lookup, clock: systemClock };

type Outcome = { failure: ChainFailure | undefined; success: ChainSuccess | undefined };

function chain(route: Route, target: Endpoint, opts: DialOptions = options): Promise<Outcome> {
  return withTimeout(
    new Promise<Outcome>((resolve) => {
      let calls = 0;
      dialChain(route, target, opts, (failure, success) => {
        calls++;
        if (calls > 1) throw new Error("called back twice");
        if (success) cleanups.push(() => void success.socket.destroy());
        resolve({ failure, success });
      });
    }),
    5000,
    "dialChain never called back",
  );
}

async function connected(route: Route, target: Endpoint, opts?: DialOptions): Promise<ChainSuccess> {
  const { failure, success } = await chain(route, target, opts);
  if (failure !== undefined) throw new Error(`chain failed: ${failure.code} ${failure.attempts.join("; ")}`);
  return success!;
}

async function failed(route: Route, target: Endpoint, opts?: DialOptions): Promise<ChainFailure> {
  const { failure, success } = await chain(route, target, opts);
  if (failure === undefined) throw new Error(`chain connected (bound ${success!.bound.host}:${success!.bound.port})`);
  expect(success).toBeUndefined();
  return failure;
}

/** Reads what a handed-over socket receives (the sink was `discard` and the socket paused). */
function collect(success: ChainSuccess): { text(): string; wait(n: number): Promise<string> } {
  let got = Buffer.from(success.early);
  let wake: (() => void) | undefined;
  success.reader.sink = (view) => {
    got = Buffer.concat([got, view]);
    wake?.();
  };
  success.socket.on("error", () => {});
  success.socket.resume();
  return {
    text: () => got.toString("latin1"),
    wait: (n) =>
      withTimeout(
        new Promise<string>((resolve) => {
          const check = () => (got.length >= n ? resolve(got.toString("latin1")) : (wake = check));
          check();
        }),
        3000,
        `wanted ${n} bytes, have ${got.length}`,
      ),
  };
}

async function echoThrough(route: Route, target: Endpoint): Promise<ChainSuccess> {
  const success = await connected(route, target);
  const received = collect(success);
  success.socket.write("ping through the chain");
  expect(await received.wait(22)).toBe("ping through the chain");
  return success;
}

async function echo(): Promise<Endpoint> {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return { host: HOST, port: server.port };
}

/** A SOCKS engine as an upstream; `users` makes it require username/password. */
async function socksHop(scheme: string, extra: { users?: Record<string, string>; auth?: string; deny?: boolean } = {}) {
  let credentials: Credentials | undefined;
  if (extra.users !== undefined) {
    credentials = new Credentials();
    for (const [user, password] of Object.entries(extra.users)) credentials.add(user, password);
  }
  const p = await proxy({
    lookup,
    ...(credentials === undefined ? {} : { credentials }),
    ...(extra.deny === true ? { hooks: { ...allowAllHooks, request: () => ({ deny: "DENIED" as const }) } } : {}),
  });
  return { proxy: p, hop: parseUpstream(`${scheme}://${extra.auth === undefined ? "" : `${extra.auth}@`}${HOST}:${p.port}`) };
}

/**
 * A minimal HTTP CONNECT proxy: answers `status` when not 200, 407 unless the Basic credentials
 * match `auth`, else connects to the requested authority, answers 200 and pipes. `requests` keeps
 * each request head.
 */
async function httpHop(settings: { auth?: string; status?: number; sendAuth?: string } = {}) {
  const requests: string[] = [];
  const server = await startServer((socket) => {
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.removeListener("data", onData);
      socket.pause();
      const rest = Buffer.from(head.slice(end + 4), "latin1");
      head = head.slice(0, end);
      requests.push(head);
      const authority = /^CONNECT (\S+) HTTP\/1\.1$/m.exec(head)?.[1] ?? "";
      const given = /^Proxy-Authorization: Basic (\S+)$/im.exec(head)?.[1];
      if (settings.auth !== undefined && given !== Buffer.from(settings.auth).toString("base64")) {
        return socket.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=x\r\n\r\n");
      }
      if (settings.status !== undefined) return socket.end(`HTTP/1.1 ${settings.status} No\r\nContent-Length: 0\r\n\r\n`);
      const colon = authority.lastIndexOf(":");
      const host = authority.slice(0, colon).replace(/^\[|\]$/g, "");
      const upstream = new Socket();
      upstream.on("error", () => socket.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
      upstream.connect(Number(authority.slice(colon + 1)), host === "echo.test" ? HOST : host, () => {
        socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
        if (rest.length > 0) upstream.write(rest);
        socket.pipe(upstream).pipe(socket);
        socket.resume();
      });
    };
    socket.on("data", onData);
  });
  cleanups.push(() => server.close());
  const user = settings.sendAuth === undefined ? "" : `${settings.sendAuth}@`;
  return { requests, hop: parseUpstream(`http://${user}${HOST}:${server.port}`) };
}

/** A hop that reads its client and answers with `script(received)` once it returns bytes; never otherwise. */
async function fakeHop(scheme: string, script: (received: Buffer) => Buffer | undefined) {
  const seen: Buffer[] = [];
  const server = await startServer((socket) => {
    let got = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      seen.push(d);
      const out = script(got);
      if (out !== undefined) {
        got = Buffer.alloc(0);
        socket.write(out);
      }
    });
  });
  cleanups.push(() => server.close());
  return { seen, hop: parseUpstream(`${scheme}://${HOST}:${server.port}`) };
}

describe("CONNECT through one hop of each scheme", () => {
  it("goes direct with an empty route", async () => {
    const success = await echoThrough([], await echo());
    expect(success.early.length).toBe(0);
  });

  it.each(["socks5h", "socks5", "socks4a", "socks4"])("%s to an echo server, named echo.test", async (scheme) => {
    const target = await echo();
    const { proxy: p, hop } = await socksHop(scheme);
    const success = await echoThrough([hop], { host: "echo.test", port: target.port });
    expect(success.remote).toEqual({ host: HOST, port: p.port });
    const destination = p.observer.first("request").destination;
    // socks5h and socks4a send the name; socks5 and socks4 resolve it here.
    expect(destination).toEqual(
      scheme.endsWith("h") || scheme.endsWith("a") ? { type: "domain", host: "echo.test", port: target.port } : { type: "ipv4", host: HOST, port: target.port },
    );
    // BND.ADDR of the hop's reply: its outbound socket's address.
    expect(success.bound.host).toBe(HOST);
    expect(success.bound.port).toBe(p.observer.first("reply").bound.port);
  });

  it("http to an echo server, with the Host header", async () => {
    const target = await echo();
    const { hop, requests } = await httpHop();
    const success = await echoThrough([hop], target);
    expect(requests[0]).toBe(`CONNECT ${HOST}:${target.port} HTTP/1.1\r\nHost: ${HOST}:${target.port}`);
    expect(success.bound).toEqual({ host: "0.0.0.0", port: 0 });
  });

  it("socks4 cannot carry IPv6: the name's IPv4-less answer is a DNS failure naming the hop", async () => {
    const { hop } = await socksHop("socks4");
    const failure = await failed([hop], { host: "v6only.test", port: 80 });
    expect(failure).toMatchObject({ code: "DNS_FAILED", hop: 1 });
    expect(failure.attempts).toEqual([`hop 1 socks4://${HOST}:${hop.port}: lookup v6only.test: no usable IPv4 address`]);
  });
});

describe("CONNECT through two hops", () => {
  it.each([
    ["socks5h", "socks5"],
    ["socks5", "http"],
    ["http", "socks4a"],
    ["socks4", "socks5h"],
    ["socks4a", "http"],
  ])("%s then %s", async (a, b) => {
    const target = await echo();
    const first = a === "http" ? await httpHop() : await socksHop(a);
    const second = b === "http" ? await httpHop() : await socksHop(b);
    await echoThrough([first.hop, second.hop], { host: "echo.test", port: target.port });
    if ("proxy" in second) expect(second.proxy.observer.of("request").length).toBe(1);
    if ("proxy" in first) expect(first.proxy.observer.first("request").destination.port).toBe(second.hop.port);
  });
});

describe("credentials", () => {
  it("socks5 username/password accepted, then relayed", async () => {
    const { proxy: p, hop } = await socksHop("socks5", { users: { alice: "s3:cret" }, auth: "alice:s3%3Acret" });
    await echoThrough([hop], await echo());
    expect(p.observer.first("auth")).toMatchObject({ offered: [0, 2], method: 2, user: "alice", accepted: true });
  });

  it("wrong socks5 password at hop 2: AUTH_FAILED with the marker naming hop 2", async () => {
    const first = await socksHop("socks5h");
    const second = await socksHop("socks5", { users: { alice: "right" }, auth: "alice:wrong" });
    const failure = await failed([first.hop, second.hop], await echo());
    expect(failure).toMatchObject({ code: "AUTH_FAILED", hop: 2, authFailedHop: 2 });
    expect(failure.attempts).toEqual([`hop 2 socks5://${HOST}:${second.hop.port}: refused the credentials`]);
    expect(failure.attempts.join()).not.toContain("wrong");
  });

  it("no credentials for a hop that wants them: the same marker", async () => {
    const { hop } = await socksHop("socks5", { users: { alice: "right" } });
    expect(await failed([hop], await echo())).toMatchObject({ code: "AUTH_FAILED", authFailedHop: 1 });
  });

  it("http Basic credentials accepted; wrong ones are 407 with the marker", async () => {
    const target = await echo();
    const good = await httpHop({ auth: "bob:pw", sendAuth: "bob:pw" });
    await echoThrough([good.hop], target);
    const bad = await httpHop({ auth: "bob:pw", sendAuth: "bob:nope" });
    const failure = await failed([bad.hop], target);
    expect(failure).toMatchObject({ code: "AUTH_FAILED", status: 407, hop: 1, authFailedHop: 1 });
    expect(failure.attempts[0]).toContain("refused the credentials (answered 407 Proxy Authentication Required)");
  });

  it("socks4 CD 93 (user id refused) is an auth failure", async () => {
    const { hop } = await fakeHop("socks4", (got) => (got.length >= 9 ? Buffer.from("005d000000000000", "hex") : undefined));
    expect(await failed([{ ...hop, user: "u" }], await echo())).toMatchObject({ code: "AUTH_FAILED", authFailedHop: 1 });
  });
});

describe("failures passed on", () => {
  it("hop 1 down: its dial failure (connection refused)", async () => {
    const port = await closedPort();
    const failure = await failed([parseUpstream(`socks5://${HOST}:${port}`)], await echo());
    expect(failure).toMatchObject({ code: "CONNECTION_REFUSED", errno: "ECONNREFUSED", hop: 1 });
    expect(failure.attempts).toEqual([`hop 1 socks5://${HOST}:${port}: ${HOST}:${port} ECONNREFUSED`]);
  });

  it("hop 2 down: hop 1's REP 05 passed on", async () => {
    const { hop } = await socksHop("socks5");
    const port = await closedPort();
    const failure = await failed([hop, parseUpstream(`socks5://${HOST}:${port}`)], await echo());
    expect(failure).toMatchObject({ code: "CONNECTION_REFUSED", rep: 5, hop: 1 });
    expect(failure.attempts).toEqual([`hop 1 socks5://${HOST}:${hop.port}: refused the CONNECT with REP 0x05`]);
  });

  it("an upstream's REP 02 (its rule or hook denied) is passed on", async () => {
    const { hop } = await socksHop("socks5h", { deny: true });
    expect(await failed([hop], await echo())).toMatchObject({ code: "DENIED", rep: 2, hop: 1 });
  });

  it("a REP with no code of ours is kept as rep", async () => {
    const { hop } = await fakeHop("socks5", (got) =>
      got.length === 3 ? Buffer.from("0500", "hex") : got.length >= 10 ? Buffer.from("050a0001000000000000", "hex") : undefined,
    );
    expect(await failed([hop], await echo())).toMatchObject({ code: "GENERAL_FAILURE", rep: 10 });
  });

  it.each([
    [403, "DENIED"],
    [502, "HOST_UNREACHABLE"],
    [504, "CONNECT_TIMEOUT"],
    [500, "GENERAL_FAILURE"],
  ])("HTTP %i is %s", async (status, code) => {
    const { hop } = await httpHop({ status });
    const failure = await failed([hop], await echo());
    expect(failure).toMatchObject({ code, status, hop: 1 });
    expect(failure.authFailedHop).toBeUndefined();
    expect(failure.attempts).toEqual([`hop 1 http://${HOST}:${hop.port}: answered ${status} No`]);
  });

  it("a hop that answers nonsense or hangs up", async () => {
    const nonsense = await fakeHop("socks5", () => Buffer.from("HTTP/1.1 400 Bad\r\n\r\n"));
    expect((await failed([nonsense.hop], await echo())).attempts[0]).toMatch(/answered nonsense: method selection version 0x48/);
    const hangup = await startServer((socket) => socket.end());
    cleanups.push(() => hangup.close());
    const failure = await failed([parseUpstream(`socks5://${HOST}:${hangup.port}`)], await echo());
    expect(failure).toMatchObject({ code: "GENERAL_FAILURE", hop: 1 });
    expect(failure.attempts[0]).toMatch(/closed the connection before answering/);
  });

  it("refuses a name that would bend an HTTP request line", async () => {
    const { hop } = await httpHop();
    expect(await failed([hop], { host: "a b\r\nX: y", port: 80 })).toMatchObject({ code: "BAD_DESTINATION", hop: 1 });
  });
});

describe("silence and cancel", () => {
  it("a silent hop is CONNECT_TIMEOUT naming it, when the chain's time runs out", async () => {
    const clock = new ManualClock();
    const silent = await fakeHop("socks5", () => undefined);
    const { hop } = await socksHop("socks5");
    const pending = chain([hop, silent.hop], await echo(), { ...options, clock, timeoutMs: 4000 });
    // Hop 1 connected to the silent hop and our greeting reached it: only its answer is missing.
    await until(() => silent.seen.length > 0, 3000, "the greeting never reached the silent hop");
    let settled = false;
    void pending.then(() => (settled = true));
    clock.advance(3999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    clock.advance(1);
    const { failure } = await pending;
    expect(failure).toMatchObject({ code: "CONNECT_TIMEOUT", errno: "ETIMEDOUT", hop: 2 });
    expect(failure!.attempts).toEqual([`hop 2 socks5://${HOST}:${silent.hop.port}: no answer within 4000 ms`]);
    expect(clock.pending).toBe(0);
  });

  it("cancel calls back once with ECANCELED", async () => {
    const silent = await fakeHop("http", () => undefined);
    const failures: Array<ChainFailure | undefined> = [];
    const cancel = dialChain([silent.hop], { host: HOST, port: 1 }, options, (failure) => failures.push(failure));
    await until(() => silent.seen.length > 0, 3000, "the CONNECT never reached the silent hop");
    cancel();
    cancel();
    expect(failures).toEqual([{ code: "GENERAL_FAILURE", errno: "ECANCELED", attempts: ["cancelled"] }]);
  });
});

describe("early bytes", () => {
  it("bytes behind a SOCKS5 reply are the tunnel's first bytes", async () => {
    const { hop } = await fakeHop("socks5", (got) =>
      got.length === 3
        ? Buffer.from("0500", "hex")
        : got.length >= 10
          ? Buffer.concat([Buffer.from("050000017f0000010050", "hex"), Buffer.from("SSH-2.0-x\r\n")])
          : undefined,
    );
    const success = await connected([hop], { host: HOST, port: 22 });
    expect(success.early.toString()).toBe("SSH-2.0-x\r\n");
    expect(success.bound).toEqual({ host: HOST, port: 80 });
  });

  it("bytes behind an HTTP 200 head are the tunnel's first bytes", async () => {
    const { hop } = await fakeHop("http", (got) => (got.includes("\r\n\r\n") ? Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbanner") : undefined));
    expect((await connected([hop], { host: HOST, port: 22 })).early.toString()).toBe("banner");
  });

  it("a target that speaks first through a real two-hop chain: every byte arrives, early or after", async () => {
    const banner = await startServer((socket) => socket.write("220 hello\r\n"));
    cleanups.push(() => banner.close());
    const a = await socksHop("socks5h");
    const b = await httpHop();
    const success = await connected([a.hop, b.hop], { host: HOST, port: banner.port });
    expect(await collect(success).wait(11)).toBe("220 hello\r\n");
  });
});

describe("BIND through a SOCKS hop", () => {
  it.each(["socks5", "socks4"])("%s: announces the hop's listener, then hands over the peer's connection", async (scheme) => {
    const { hop } = await socksHop(scheme);
    const announced = new Promise<Endpoint>((resolve, reject) => {
      const done = new Promise<ChainSuccess & { peer: Endpoint }>((resolveDone) => {
        bindThrough(
          [hop],
          { host: HOST, port: 1 },
          { ...options, bindTimeoutMs: 3000 },
          {
            listening: resolve,
            done: (failure, success) => (failure ? reject(new Error(failure.attempts.join())) : resolveDone(success!)),
          },
        );
      });
      void done.then(async (success) => {
        cleanups.push(() => void success.socket.destroy());
        const received = collect(success);
        success.socket.write("from the client");
        peerDone(success.peer, await received.wait(9));
      });
    });
    let peerDone!: (peer: Endpoint, text: string) => void;
    const result = new Promise<{ peer: Endpoint; text: string }>((resolve) => (peerDone = (peer, text) => resolve({ peer, text })));
    const bound = await withTimeout(announced, 3000, "no first reply");
    expect(bound.host).toBe(HOST);
    const peer = await RawClient.connect(bound.port, bound.host);
    cleanups.push(() => peer.destroy());
    peer.write(Buffer.from("from peer"));
    const { peer: seen, text } = await withTimeout(result, 3000, "no second reply");
    expect(text).toBe("from peer");
    expect(seen).toEqual({ host: HOST, port: peer.socket.localPort });
    expect((await peer.read(15)).toString()).toBe("from the client");
  });

  it("refuses a route whose last hop is HTTP", async () => {
    const { hop } = await httpHop();
    const failure = await new Promise<ChainFailure | undefined>((resolve) =>
      bindThrough([hop], { host: HOST, port: 1 }, { ...options, bindTimeoutMs: 1000 }, { listening: () => {}, done: resolve }),
    );
    expect(failure).toMatchObject({ code: "UNKNOWN_COMMAND", attempts: [`BIND cannot go through http://${HOST}:${hop.port}: HTTP CONNECT has no BIND`] });
  });
});

describe("UDP ASSOCIATE through a SOCKS5 hop", () => {
  function associate(route: Route) {
    return withTimeout(
      new Promise<{ failure: ChainFailure | undefined; success: AssociationSuccess | undefined }>((resolve) =>
        associateThrough(route, options, (failure, success) => {
          if (success) cleanups.push(() => void success.socket.destroy());
          resolve({ failure, success });
        }),
      ),
      5000,
      "associateThrough never called back",
    );
  }

  it("gives the hop's relay; wrapped datagrams go through it and come back wrapped", async () => {
    const echoUdp = createSocket("udp4");
    echoUdp.on("message", (msg, rinfo) => echoUdp.send(msg, rinfo.port, rinfo.address));
    echoUdp.bind(0, HOST);
    await once(echoUdp, "listening");
    cleanups.push(() => void echoUdp.close());
    const { hop } = await socksHop("socks5h");
    const { failure, success } = await associate([hop]);
    expect(failure).toBeUndefined();
    expect(success!.bound.host).toBe(HOST);
    const ours = createSocket("udp4");
    ours.bind(0, HOST);
    await once(ours, "listening");
    cleanups.push(() => void ours.close());
    const reply = once(ours, "message") as Promise<[Buffer]>;
    ours.send(encodeUdpDatagram(HOST, echoUdp.address().port, Buffer.from("datagram")), success!.bound.port, success!.bound.host);
    const [wrapped] = await withTimeout(reply, 3000, "no datagram back");
    const decoded = decodeUdpDatagram(wrapped);
    expect(decoded.kind === "ok" && decoded.value.data.toString()).toBe("datagram");
    expect(decoded.kind === "ok" && decoded.value.address).toEqual({ type: "ipv4", host: HOST, port: echoUdp.address().port });
  });

  it("refuses routes that cannot carry datagrams, with the reason", async () => {
    const a = await socksHop("socks5");
    const b = await socksHop("socks4");
    expect((await associate([a.hop, a.hop])).failure).toMatchObject({ code: "UNKNOWN_COMMAND", attempts: [expect.stringMatching(/not a chain of 2/)] });
    expect((await associate([b.hop])).failure).toMatchObject({ code: "UNKNOWN_COMMAND", attempts: [expect.stringMatching(/only SOCKS5 upstreams/)] });
  });

  it("passes on the hop's refusal", async () => {
    const { hop } = await socksHop("socks5", { deny: true });
    expect((await associate([hop])).failure).toMatchObject({ code: "DENIED", rep: 2, hop: 1 });
  });
});
