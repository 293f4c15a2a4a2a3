/**
 * TLS interception in the engine, end to end over loopback: a SOCKS5 client (the `socks`
 * package) opens a tunnel, starts TLS inside it trusting the socksmith CA, and talks to a real
 * TLS server whose certificate comes from another test CA (trusted by the interceptor through
 * `upstreamCa`). Facts are checked for the plaintext and the TLS facts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { TLSSocket, connect as tlsConnect, type ConnectionOptions, type SecureContext } from "node:tls";
import { createServer, type AddressInfo } from "node:net";
import { SocksClient } from "socks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateCa, type CertificateAuthority } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { TlsInterception, type InterceptorOptions } from "../../src/tls/interceptor.js";
import type { ChunkFact, DataChunk, DataVerdict, HookRunner, TlsFact } from "../../src/engine/index.js";
import { allowAllHooks } from "../../src/engine/index.js";
import { HOST, RecordingObserver, fakeLookup, useTestProxies, withTimeout } from "../support/net.js";

class TlsRecorder extends RecordingObserver {
  readonly tlsFacts: TlsFact[] = [];
  /** Each chunk as "direction:bytes" (as sent when a hook changed or injected them, else as received). */
  readonly chunks: string[] = [];
  override chunk = (fact: ChunkFact): void => {
    this.chunks.push(`${fact.direction}:${Buffer.from(fact.sent ?? fact.received).toString("latin1")}`);
  };
  tls(fact: TlsFact): void {
    this.tlsFacts.push(fact);
  }
}

let dir: string;
let proxyCa: CertificateAuthority;
let targetCa: CertificateAuthority;
let targetLeaves: LeafCertificates;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "socksmith-tls-"));
  proxyCa = await loadOrCreateCa(join(dir, "proxy"));
  targetCa = await loadOrCreateCa(join(dir, "target"));
  targetLeaves = new LeafCertificates(targetCa);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { cleanups, proxy } = useTestProxies();

/**
 * A TLS server on loopback with a certificate for `names` from the target CA. It greets with the
 * ALPN it chose, then answers each read upper-cased.
 */
async function tlsTarget(options: { name?: string; alpn?: string[]; expired?: boolean } = {}) {
  // An expired certificate: signed as if a year ago (leaves last 199 days).
  const leaves = options.expired === true ? new LeafCertificates(targetCa, { now: () => Date.now() - 365 * 86_400_000 }) : targetLeaves;
  const context: SecureContext = await leaves.secureContextFor({ sni: options.name ?? "example.test", target: HOST });
  // tls.Server ignores a ready-made secureContext, so each accepted socket is wrapped directly.
  const server = createServer((raw) => {
    const socket = new TLSSocket(raw, { isServer: true, secureContext: context, ...(options.alpn === undefined ? {} : { ALPNProtocols: options.alpn }) });
    socket.on("error", () => {});
    socket.once("secure", () => socket.write(`alpn=${socket.alpnProtocol || "none"};`));
    socket.on("data", (data: Buffer) => socket.write(data.toString("latin1").toUpperCase()));
    socket.on("end", () => socket.end());
  });
  server.listen(0, HOST);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return port;
}

async function interceptingProxy(extra: Partial<InterceptorOptions> = {}, hooks?: HookRunner) {
  const interceptor = new TlsInterception({ certificates: new LeafCertificates(proxyCa), upstreamCa: [targetCa.certPem], handshakeTimeoutMs: 5_000, ...extra });
  const observer = new TlsRecorder();
  const p = await proxy({
    tls: interceptor,
    observer,
    lookup: fakeLookup({ "example.test": [HOST], "other.test": [HOST] }),
    ...(hooks === undefined ? {} : { hooks }),
  });
  return { ...p, observer, interceptor };
}

/** A SOCKS5 tunnel to host:port, then TLS inside it. */
async function tlsThrough(proxyPort: number, host: string, port: number, options: ConnectionOptions, facts?: TlsFact[]): Promise<TLSSocket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: HOST, port: proxyPort, type: 5 },
    command: "connect",
    destination: { host, port },
    timeout: 5_000,
  });
  const secure = tlsConnect({ socket, ...options });
  cleanups.push(() => void secure.destroy());
  await withTimeout(once(secure, "secureConnect"), 5_000, "no TLS handshake through the proxy").catch((e) => {
    console.log("DEBUG", JSON.stringify(facts));
    throw e;
  });
  return secure;
}

/** Reads until `count` bytes arrived. */
async function read(socket: TLSSocket, count: number): Promise<string> {
  let text = "";
  while (text.length < count) {
    const [data] = (await withTimeout(once(socket, "data"), 5_000, `only ${JSON.stringify(text)} arrived`)) as [Buffer];
    text += data.toString("latin1");
  }
  return text;
}

async function closed(p: { observer: RecordingObserver }, count: number) {
  const deadline = Date.now() + 5_000;
  while (p.observer.facts.filter((f) => f.kind === "closed").length < count && Date.now() < deadline) await new Promise((r) => setImmediate(r));
}

describe("TLS interception", () => {
  it("decrypts a tunnel: the client trusts the socksmith CA, the plaintext reaches the observer, ALPN h2 stays h2", async () => {
    const target = await tlsTarget({ alpn: ["h2", "http/1.1"] });
    const p = await interceptingProxy();
    const secure = await tlsThrough(
      p.port,
      "example.test",
      target,
      { servername: "example.test", ca: proxyCa.certPem, ALPNProtocols: ["h2", "http/1.1"] },
      p.observer.tlsFacts,
    );
    expect(secure.alpnProtocol).toBe("h2");
    expect(secure.getPeerX509Certificate()?.checkIssued(proxyCa.certificate)).toBe(true);
    expect(await read(secure, "alpn=h2;".length)).toBe("alpn=h2;");
    secure.write("ping");
    expect(await read(secure, 4)).toBe("PING");
    secure.end();
    await closed(p, 1);
    const [fact] = p.observer.tlsFacts;
    expect(fact).toMatchObject({ intercepted: true, decidedBy: "default", hello: { sni: "example.test", alpn: ["h2", "http/1.1"] }, verification: "ok" });
    expect(fact?.client).toMatchObject({ version: "TLSv1.3", alpn: "h2" });
    expect(fact?.upstream).toMatchObject({ version: "TLSv1.3", alpn: "h2" });
    expect(fact?.certificate?.sans).toContain("DNS:example.test");
    expect(p.observer.chunks).toEqual(["down:alpn=h2;", "up:ping", "down:PING"]);
  });

  it("mirrors the ALPN the target chose: a target with only http/1.1 gives the client http/1.1", async () => {
    const target = await tlsTarget({ alpn: ["http/1.1"] });
    const p = await interceptingProxy();
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem, ALPNProtocols: ["h2", "http/1.1"] });
    expect(secure.alpnProtocol).toBe("http/1.1");
    expect(await read(secure, "alpn=http/1.1;".length)).toBe("alpn=http/1.1;");
  });

  it("a TLS 1.2-only client gets TLS 1.2 on both sides", async () => {
    const target = await tlsTarget();
    const p = await interceptingProxy();
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem, maxVersion: "TLSv1.2" });
    expect(secure.getProtocol()).toBe("TLSv1.2");
    await read(secure, "alpn=none;".length);
    secure.end();
    await closed(p, 1);
    expect(p.observer.tlsFacts[0]).toMatchObject({ client: { version: "TLSv1.2" }, upstream: { version: "TLSv1.2" } });
  });

  it("a client without SNI to an IP target gets a certificate with that IP", async () => {
    const target = await tlsTarget();
    const p = await interceptingProxy();
    const secure = await tlsThrough(p.port, HOST, target, { host: HOST, servername: "", ca: proxyCa.certPem });
    expect(secure.getPeerX509Certificate()?.subjectAltName).toContain(`IP Address:${HOST}`);
    expect(await read(secure, "alpn=none;".length)).toBe("alpn=none;");
  });

  it("a client that rejects the CA after the handshake (as Node does) is recorded; its next connection passes through and works", async () => {
    const target = await tlsTarget();
    const p = await interceptingProxy();
    // Trusting only the target's CA, as a pinned app would: Node checks after the handshake and closes.
    await expect(tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: targetCa.certPem })).rejects.toThrow();
    await closed(p, 1);
    expect(p.observer.tlsFacts[0]?.failure).toMatchObject({ side: "client", code: "client-rejected-certificate" });
    expect(p.observer.tlsFacts[0]?.failure?.message).toContain("does not trust the socksmith CA for example.test");
    expect(p.interceptor.distrusted.has("example.test")).toBe(true);
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: targetCa.certPem });
    expect(secure.getPeerX509Certificate()?.checkIssued(targetCa.certificate)).toBe(true);
    expect(await read(secure, "alpn=none;".length)).toBe("alpn=none;");
    expect(p.observer.tlsFacts[1]).toMatchObject({ intercepted: false, decidedBy: "auto-passthrough" });
  });

  it("a target whose certificate names another host is refused: the client gets an alert, the session says why", async () => {
    const target = await tlsTarget({ name: "other.test" });
    const p = await interceptingProxy();
    await expect(tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem })).rejects.toThrow(/alert|handshake/i);
    await closed(p, 1);
    const [fact] = p.observer.tlsFacts;
    expect(fact?.failure).toMatchObject({ side: "upstream", code: "upstream-certificate" });
    expect(fact?.failure?.message).toContain("not valid for example.test");
    expect(p.observer.facts.find((f) => f.kind === "closed")?.fact).toMatchObject({ reason: "tls-failed" });
  });

  it("a target with an expired certificate is refused in words", async () => {
    const target = await tlsTarget({ expired: true });
    const p = await interceptingProxy();
    await expect(tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem })).rejects.toThrow(/alert|handshake/i);
    await closed(p, 1);
    expect(p.observer.tlsFacts[0]?.failure).toMatchObject({ side: "upstream", code: "upstream-certificate" });
    expect(p.observer.tlsFacts[0]?.failure?.message).toBe("the certificate of example.test was refused: the certificate has expired (CERT_HAS_EXPIRED)");
  });

  it("--upstream-insecure lets that target through and records the problem", async () => {
    const target = await tlsTarget({ name: "other.test" });
    const p = await interceptingProxy({ upstreamInsecure: true });
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem });
    expect(await read(secure, "alpn=none;".length)).toBe("alpn=none;");
    expect(p.observer.tlsFacts[0]?.verification).toMatch(/^skipped \(--upstream-insecure\): it is not valid for example.test/);
  });

  it("a passthrough filter relays the ciphertext: the client sees the target's own certificate", async () => {
    const target = await tlsTarget();
    const p = await interceptingProxy({ passthrough: (hello) => hello.sni === "example.test" });
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: targetCa.certPem });
    expect(await read(secure, "alpn=none;".length)).toBe("alpn=none;");
    expect(p.observer.tlsFacts[0]).toMatchObject({ intercepted: false, decidedBy: "filter", hello: { sni: "example.test" } });
  });

  it("a tunnel that is not TLS relays as before, also when the server speaks first", async () => {
    const { startServer } = await import("../support/net.js");
    const banner = await startServer((socket) => {
      socket.write("220 hello\r\n");
      socket.on("data", (data) => socket.write(data));
    });
    cleanups.push(() => banner.close());
    const p = await interceptingProxy();
    const { socket } = await SocksClient.createConnection({
      proxy: { host: HOST, port: p.port, type: 5 },
      command: "connect",
      destination: { host: HOST, port: banner.port },
      timeout: 5_000,
    });
    cleanups.push(() => void socket.destroy());
    const [greeting] = (await withTimeout(once(socket, "data"), 5_000, "no banner")) as [Buffer];
    expect(greeting.toString()).toBe("220 hello\r\n");
    socket.write("EHLO x\r\n");
    const [echo] = (await withTimeout(once(socket, "data"), 5_000, "no echo")) as [Buffer];
    expect(echo.toString()).toBe("EHLO x\r\n");
    expect(p.observer.tlsFacts).toEqual([]);
  });

  it("data hooks see and change the plaintext", async () => {
    const target = await tlsTarget();
    const hooks: HookRunner = {
      ...allowAllHooks,
      wantsData: () => true,
      data: (chunk: DataChunk): DataVerdict =>
        chunk.direction === "down" && chunk.data.includes("SECRET") ? { replace: Buffer.from(chunk.data.toString().replace("SECRET", "public")) } : undefined,
    };
    const p = await interceptingProxy({}, hooks);
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: proxyCa.certPem });
    await read(secure, "alpn=none;".length);
    secure.write("a secret");
    expect(await read(secure, "A public".length)).toBe("A public");
  });

  it("the hook decides last: { passthrough: true } overrules the interceptor", async () => {
    const target = await tlsTarget();
    const hooks: HookRunner = { ...allowAllHooks, tlsClientHello: () => ({ passthrough: true }) };
    const p = await interceptingProxy({}, hooks);
    const secure = await tlsThrough(p.port, "example.test", target, { servername: "example.test", ca: targetCa.certPem });
    expect(await read(secure, "alpn=none;".length)).toBe("alpn=none;");
    expect(p.observer.tlsFacts[0]).toMatchObject({ intercepted: false, decidedBy: "hook" });
  });

  it("a CONNECT a hook serves (server replay) is answered over TLS with a leaf from the CA: an offline HTTPS mock", async () => {
    const hooks: HookRunner = {
      ...allowAllHooks,
      request: () => ({ serve: true }),
      wantsData: () => true,
      data: (chunk, session) => {
        if (chunk.direction === "up") session.inject("down", Buffer.from(`served:${chunk.data.toString()}`));
        return undefined;
      },
    };
    const p = await interceptingProxy({}, hooks);
    // Nothing listens there: the hook is the server.
    const secure = await tlsThrough(p.port, "example.test", 9, { servername: "example.test", ca: proxyCa.certPem, ALPNProtocols: ["h2", "http/1.1"] });
    expect(secure.alpnProtocol).toBe("h2");
    secure.write("ping");
    expect(await read(secure, "served:ping".length)).toBe("served:ping");
    secure.end();
    await closed(p, 1);
    expect(p.observer.tlsFacts[0]).toMatchObject({ intercepted: true, client: { alpn: "h2" }, verification: "no target (served by a hook)" });
    expect(p.observer.chunks.toSorted()).toEqual(["down:served:ping", "up:ping"]);
  });

  it("relays both TLS legs with a 256 KiB high-water mark (a read's records leave in one write); a 4 MiB body arrives byte-exact", async () => {
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32BE(i, i);
    const context = await targetLeaves.secureContextFor({ sni: "example.test", target: HOST });
    const server = createServer((raw) => {
      const socket = new TLSSocket(raw, { isServer: true, secureContext: context });
      socket.on("error", () => {});
      socket.once("secure", () => socket.end(body));
    });
    server.listen(0, HOST);
    await once(server, "listening");
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const marks: number[] = [];
    class Watched extends TlsInterception {
      override async establish(args: Parameters<TlsInterception["establish"]>[0]) {
        const outcome = await super.establish(args);
        if (outcome.ok) marks.push(outcome.client.writableHighWaterMark, outcome.upstream.writableHighWaterMark);
        return outcome;
      }
    }
    const p = await proxy({
      tls: new Watched({ certificates: new LeafCertificates(proxyCa), upstreamCa: [targetCa.certPem], handshakeTimeoutMs: 5_000 }),
      observer: new TlsRecorder(),
      lookup: fakeLookup({ "example.test": [HOST] }),
    });
    const secure = await tlsThrough(p.port, "example.test", (server.address() as AddressInfo).port, { servername: "example.test", ca: proxyCa.certPem });
    const received: Buffer[] = [];
    secure.on("data", (data: Buffer) => received.push(data));
    await withTimeout(once(secure, "end"), 10_000, "the body did not end");
    expect(Buffer.concat(received).equals(body)).toBe(true);
    expect(marks).toEqual([256 * 1024, 256 * 1024]);
  });

  it("a served CONNECT whose hook greets first is not TLS: the greeting goes out at once", async () => {
    const hooks: HookRunner = {
      ...allowAllHooks,
      request: (_request, session) => {
        session.inject("down", Buffer.from("220 mock\r\n"));
        return { serve: true };
      },
      wantsData: () => true,
      data: () => undefined,
    };
    const p = await interceptingProxy({}, hooks);
    const { socket } = await SocksClient.createConnection({
      proxy: { host: HOST, port: p.port, type: 5 },
      command: "connect",
      destination: { host: HOST, port: 25 },
      timeout: 5_000,
    });
    cleanups.push(() => void socket.destroy());
    const [greeting] = (await withTimeout(once(socket, "data"), 5_000, "no greeting")) as [Buffer];
    expect(greeting.toString()).toBe("220 mock\r\n");
    expect(p.observer.tlsFacts).toEqual([]);
  });
});
