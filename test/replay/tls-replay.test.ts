/**
 * Client replay over TLS: an HTTPS exchange recorded through an intercepting engine (a Recorder
 * writing a real capture file) is replayed inside a new TLS connection with the recorded SNI and
 * ALPN, straight to the target, through an intercepting proxy, and from the CLI. Two test CAs:
 * the target's (trusted by the interceptor and, with `ca`/--upstream-ca, by the replay) and the
 * proxy's socksmith CA.
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, connect as tlsConnect, type SecureContext } from "node:tls";
import { SocksClient } from "socks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../src/cli/commands/run.js";
import type { RunningProxy } from "../../src/cli/proxy.js";
import { liveReplay } from "../../src/cli/tui-replay.js";
import { SocksEngine } from "../../src/engine/index.js";
import { PASSTHROUGH_NOTICE, replaySession } from "../../src/replay/replay-session.js";
import { Recorder } from "../../src/store/recorder.js";
import { CaptureReader } from "../../src/store/reader.js";
import { loadOrCreateCa, type CertificateAuthority } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { TlsInterception, type InterceptorOptions } from "../../src/tls/interceptor.js";
import { HOST, fakeLookup, useTestProxies, withTimeout } from "../support/net.js";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const REQUEST = "GET / HTTP/1.1\r\nhost: example.test\r\n\r\n";

let dir: string;
let proxyCa: CertificateAuthority;
let targetCa: CertificateAuthority;
let targetLeaves: LeafCertificates;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "socksmith-tls-replay-"));
  proxyCa = await loadOrCreateCa(join(dir, "proxy"));
  targetCa = await loadOrCreateCa(join(dir, "target"));
  targetLeaves = new LeafCertificates(targetCa);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { cleanups, proxy } = useTestProxies();

/** What the HTTPS target saw of each handshake. */
interface Seen {
  servername: string | false | null;
  offered: readonly string[];
}

/**
 * An HTTPS-like target on loopback (certificate for `name` and 127.0.0.1 from the target CA,
 * ALPN http/1.1 only): answers a request with `body` (changeable) and closes.
 */
async function httpsTarget(name = "example.test") {
  const context: SecureContext = await targetLeaves.secureContextFor({ sni: name, target: HOST });
  const state = { body: "hello over tls", seen: [] as Seen[] };
  const server = createServer((raw) => {
    const seen: Seen = { servername: false, offered: [] };
    const chooseAlpn = ({ protocols }: { protocols: string[] }): string | undefined => {
      seen.offered = protocols;
      return protocols.includes("http/1.1") ? "http/1.1" : undefined;
    };
    const socket = new TLSSocket(raw, { isServer: true, secureContext: context, ALPNCallback: chooseAlpn });
    socket.on("error", () => {});
    socket.once("secure", () => {
      seen.servername = socket.servername;
      state.seen.push(seen);
    });
    let request = "";
    socket.on("data", (data: Buffer) => {
      request += data.toString("latin1");
      if (!request.endsWith("\r\n\r\n")) return;
      socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${state.body.length}\r\nconnection: close\r\n\r\n${state.body}`);
    });
  });
  server.listen(0, HOST);
  await once(server, "listening");
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, state };
}

function interceptor(extra: Partial<InterceptorOptions> = {}): TlsInterception {
  return new TlsInterception({ certificates: new LeafCertificates(proxyCa), upstreamCa: [targetCa.certPem], handshakeTimeoutMs: 5_000, ...extra });
}

/** A SOCKS5 tunnel to host:port through `proxyPort`, TLS inside it (SNI unless `host` is an address), one request; returns the whole answer. */
async function fetchThrough(proxyPort: number, host: string, port: number, ca: string): Promise<string> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: HOST, port: proxyPort, type: 5 },
    command: "connect",
    destination: { host, port },
    timeout: 5_000,
  });
  const secure = tlsConnect({ socket, host, servername: host === HOST ? "" : host, ca, ALPNProtocols: ["h2", "http/1.1"] });
  cleanups.push(() => void secure.destroy());
  await withTimeout(once(secure, "secureConnect"), 5_000, "no TLS handshake through the proxy");
  secure.write(REQUEST);
  let answer = "";
  secure.on("data", (d: Buffer) => (answer += d.toString("latin1")));
  await withTimeout(once(secure, "end"), 5_000, "the answer did not end");
  secure.end();
  return answer;
}

/** Records one HTTPS exchange to the target through an engine with TLS interception; returns the capture file. */
async function record(targetPort: number, extra: Partial<InterceptorOptions> = {}, host = "example.test"): Promise<string> {
  const file = join(dir, `r${++n}.db`);
  const recorder = new Recorder(file);
  const engine = new SocksEngine({
    listen: [{ host: HOST, port: 0 }],
    observer: recorder,
    tls: interceptor(extra),
    lookup: fakeLookup({ "example.test": [HOST] }),
  });
  const [bound] = await engine.start();
  const intercepted = extra.passthrough === undefined;
  const answer = await fetchThrough(bound!.port, host, targetPort, intercepted ? proxyCa.certPem : targetCa.certPem);
  expect(answer).toMatch(/hello over tls$/);
  await engine.stop(1_000);
  await recorder.close();
  return file;
}

/** The recorded target is example.test, which only the test's lookup knows: replays go to its address. */
function at(target: { port: number }) {
  return { host: HOST, port: target.port };
}

function session1(file: string) {
  const reader = new CaptureReader(file);
  cleanups.push(() => reader.close());
  const session = reader.session(1);
  if (session === undefined) throw new Error("no session 1 in the capture");
  return { reader, session };
}

describe("client replay over TLS", () => {
  it("replays the recorded plaintext inside new TLS with the recorded SNI and negotiated ALPN: same answer", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port));
    expect(reader.tls(1)).toMatchObject({ intercepted: 1, sni: "example.test", upstream_alpn: "http/1.1" });
    const result = await replaySession(reader, session, { quietMs: 200, target: at(target), trust: { ca: [targetCa.certPem] } });
    expect(result).toMatchObject({ completed: true, match: true, tls: { sni: "example.test", alpn: "http/1.1", offered: ["http/1.1"], verified: true } });
    expect(result.tls?.version).toMatch(/^TLSv1\.[23]$/);
    expect(result.notice).toBeUndefined();
    // The recording's handshake offered h2 and http/1.1; the replay offers what the target chose.
    expect(target.state.seen).toEqual([
      { servername: "example.test", offered: ["h2", "http/1.1"] },
      { servername: "example.test", offered: ["http/1.1"] },
    ]);
    const up = Buffer.concat(result.chunks.filter((c) => c.direction === "up").map((c) => c.data)).toString();
    expect(up).toBe(REQUEST);
  });

  it("shows where a changed answer differs, in plaintext", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port));
    target.state.body = "hello over TLS";
    const result = await replaySession(reader, session, { quietMs: 200, target: at(target), trust: { ca: [targetCa.certPem] } });
    expect(result).toMatchObject({ completed: true, match: false });
    const headerLength = "HTTP/1.1 200 OK\r\ncontent-length: 14\r\nconnection: close\r\n\r\nhello over ".length;
    expect(result.difference?.offset).toBe(headerLength);
    // Shown as hex: "tls" then "TLS".
    expect(result.difference?.expected).toContain("74 6c 73");
    expect(result.difference?.actual).toContain("54 4c 53");
  });

  it("refuses a certificate it does not trust, in words; insecure accepts it", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port));
    const refused = await replaySession(reader, session, { quietMs: 200, target: at(target) });
    expect(refused).toMatchObject({ completed: false, match: false, tls: { sni: "example.test", offered: ["http/1.1"] } });
    // The target sends its CA along with its leaf.
    expect(refused.error).toBe(
      "TLS: the certificate of example.test was refused: the chain ends in a self-signed certificate that is not trusted (SELF_SIGNED_CERT_IN_CHAIN) " +
        "(trust its CA with --upstream-ca FILE, or skip the check with --insecure)",
    );
    const insecure = await replaySession(reader, session, { quietMs: 200, target: at(target), trust: { insecure: true } });
    expect(insecure).toMatchObject({ completed: true, match: true, tls: { alpn: "http/1.1", verified: false } });
  });

  it("refuses a certificate for another name (a --target with another certificate)", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port));
    const other = await httpsTarget("other.test");
    const result = await replaySession(reader, session, { quietMs: 200, target: at(other), trust: { ca: [targetCa.certPem] } });
    expect(result.completed).toBe(false);
    expect(result.error).toMatch(/^TLS: the certificate of example\.test was refused: it is not valid for example\.test \(it names DNS:other\.test/);
  });

  it("a session without SNI (an IP target) is replayed without SNI, checked against the IP address", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port, {}, HOST));
    expect(reader.tls(1)).toMatchObject({ intercepted: 1, sni: null });
    const result = await replaySession(reader, session, { quietMs: 200, trust: { ca: [targetCa.certPem] } });
    expect(result).toMatchObject({ completed: true, match: true, target: at(target) });
    expect(result.tls?.sni).toBeUndefined();
    expect(target.state.seen.map((seen) => seen.servername)).toEqual([false, false]);
  });

  it("through a proxy that intercepts again, trusting that proxy's socksmith CA", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port));
    const p = await proxy({ tls: interceptor(), lookup: fakeLookup({ "example.test": [HOST] }) });
    const via = { host: HOST, port: p.port };
    const result = await replaySession(reader, session, { quietMs: 200, via, trust: { ca: [proxyCa.certPem] } });
    expect(result).toMatchObject({ completed: true, match: true, via, tls: { sni: "example.test", alpn: "http/1.1" } });
    // Without the socksmith CA the proxy's leaf is refused.
    const refused = await replaySession(reader, session, { quietMs: 200, via, trust: { ca: [targetCa.certPem] } });
    expect(refused.error).toMatch(/^TLS: the certificate of example\.test was refused: the chain ends in a self-signed certificate that is not trusted/);
  });

  it("a passthrough session replays its ciphertext and says that cannot succeed", async () => {
    const target = await httpsTarget();
    const { reader, session } = session1(await record(target.port, { passthrough: () => true }));
    expect(reader.tls(1)).toMatchObject({ intercepted: 0 });
    const result = await replaySession(reader, session, { quietMs: 200, target: at(target) });
    expect(result.notice).toBe(PASSTHROUGH_NOTICE);
    expect(result.tls).toBeUndefined();
    expect(result.match).toBe(false);
  });
});

describe("socksmith replay of a TLS session (CLI)", () => {
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { cwd: dir }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
      );
    });
  }

  it("--upstream-ca trusts the target's CA, --insecure skips the check, and without either the replay fails in words", async () => {
    const target = await httpsTarget();
    const file = await record(target.port);
    const args = ["replay", "1", file, "--target", `${HOST}:${target.port}`, "--quiet", "200ms", "--no-record"];
    const trusted = await cli([...args, "--upstream-ca", targetCa.certPath]);
    expect(trusted.stdout).toMatch(
      /^replay of #1 → 127\.0\.0\.1:\d+ over TLS \(SNI example\.test, ALPN http\/1\.1\): sent 38 B in 1 turn; .*: same as recorded$/m,
    );
    expect(trusted.code).toBe(0);
    const insecure = await cli([...args, "--insecure"]);
    expect(insecure.stdout).toMatch(/over TLS \(SNI example\.test, ALPN http\/1\.1, certificate not checked\): .*same as recorded/);
    expect(insecure.code).toBe(0);
    const refused = await cli(args);
    expect(refused.stdout).toMatch(/over TLS \(SNI example\.test, ALPN http\/1\.1\): failed: TLS: the certificate of example\.test was refused/);
    expect(refused.code).toBe(1);
    const missing = await cli([...args, "--upstream-ca", join(dir, "nothing.pem")]);
    expect(missing.stderr).toMatch(/--upstream-ca: cannot read .*nothing\.pem: ENOENT/);
    expect(missing.code).toBe(1);
  });

  it("says a passthrough session cannot be replayed that way", async () => {
    const target = await httpsTarget();
    const file = await record(target.port, { passthrough: () => true });
    const text = await cli(["replay", "1", file, "--target", `${HOST}:${target.port}`, "--quiet", "200ms", "--no-record"]);
    expect(text.stdout).toContain(`  ${PASSTHROUGH_NOTICE}`);
  });
});

/** socksmith run --tls, in this process (so that liveReplay gets its RunningProxy), capturing to `file`. */
async function runWithTls(file: string): Promise<RunningProxy> {
  let running: RunningProxy | undefined;
  const terminal = { out: () => {}, err: () => {} };
  const args = ["--headless", "-q", "-l", `${HOST}:0`, "-w", file, "--tls", "--ca-dir", join(dir, "proxy"), "--upstream-ca", targetCa.certPath];
  await runCommand(terminal, async (proxy) => {
    running = proxy;
  }).parseAsync(args, { from: "user" });
  const proxy = running!;
  cleanups.push(() => proxy.stop(0));
  return proxy;
}

describe("the TUI's r on an intercepted session", () => {
  it("attached to a proxy running --tls: the replay goes through it, trusting its socksmith CA, and matches", async () => {
    const target = await httpsTarget();
    const file = join(dir, `live${++n}.db`);
    const running = await runWithTls(file);
    expect(running.tlsCaPath).toBe(proxyCa.certPath);
    // An app that connects to the address and names the host in its SNI.
    const { socket } = await SocksClient.createConnection({
      proxy: { host: HOST, port: running.bound[0]!.port, type: 5 },
      command: "connect",
      destination: { host: HOST, port: target.port },
      timeout: 5_000,
    });
    const secure = tlsConnect({ socket, servername: "example.test", ca: proxyCa.certPem, ALPNProtocols: ["http/1.1"] });
    cleanups.push(() => void secure.destroy());
    await withTimeout(once(secure, "secureConnect"), 5_000, "no TLS handshake through the proxy");
    secure.end(REQUEST);
    let answer = "";
    secure.on("data", (d: Buffer) => (answer += d.toString("latin1")));
    await withTimeout(once(secure, "close"), 5_000, "the answer did not end");
    expect(answer).toMatch(/hello over tls$/);
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    // The recorder writes in batches: wait until the session and its tls row are in the file.
    const deadline = Date.now() + 5_000;
    while ((reader.session(1)?.closed_at == null || reader.tls(1) === undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(reader.tls(1)).toMatchObject({ intercepted: 1, sni: "example.test" });

    const outcome = await liveReplay(reader, running)(1);
    expect(outcome.message).toBe(`replayed #1 as #2 to ${HOST}:${target.port} over TLS (SNI example.test, ALPN http/1.1): same answer as recorded`);
    expect(outcome.focus).toBe(2);
  }, 30_000);
});
