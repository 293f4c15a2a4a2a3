/**
 * TLS interception as a user runs it: the built CLI (`run --headless --tls`) in a child process,
 * real clients (curl over HTTP/1.1 and HTTP/2, Node `https`, Python `ssl`) through it to HTTPS
 * servers on loopback whose certificates come from a test CA (trusted by the proxy with
 * `--upstream-ca`), and the capture read back with the built `sessions --json` and `show`.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type SecureContext } from "node:tls";
import { SocksClient } from "socks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateCa } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { CLI, runProxy, runToEnd, type CliProxy } from "../support/cli.js";
import { withTimeout } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-tls-cli-"));
const caDir = join(dir, "socksmith-ca");
const proxyCaPath = join(caDir, "socksmith-ca.pem");
const proxyKeyPath = join(caDir, "socksmith-ca-key.pem");
const targetCaPath = join(dir, "target-ca.pem");
const children: ChildProcess[] = [];
const servers: Array<{ close(): void }> = [];
/** An HTTPS server (h2 and http/1.1) with a certificate for localhost and 127.0.0.1. */
let goodPort = 0;
/** The same server, with a certificate that names only wrong.test. */
let wrongPort = 0;
/** An HTTPS server that speaks only http/1.1 (ALPN), with the good certificate. */
let h1OnlyPort = 0;

/** Answers `hello METHOD URL over HTTP-VERSION`; `/rewrite` answers a body an addon rewrites. */
function answer(req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse): void {
  res.setHeader("content-type", "text/plain");
  res.end(req.url === "/rewrite" ? "the original body" : `hello ${req.method} ${req.url} over ${req.httpVersion}`);
}

async function httpsServer(context: SecureContext, h2 = true): Promise<number> {
  // The context is handed over by SNI (every client here names localhost), which sidesteps
  // needing the leaf's private key as PEM.
  const SNICallback = (_name: string, done: (err: Error | null, ctx?: SecureContext) => void) => done(null, context);
  const server: Http2SecureServer | ReturnType<typeof createHttpsServer> = h2
    ? createSecureServer({ allowHTTP1: true, SNICallback }, answer)
    : createHttpsServer({ SNICallback, ALPNProtocols: ["http/1.1"] }, answer);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  const targetCa = await loadOrCreateCa(join(dir, "target-ca"));
  writeFileSync(targetCaPath, targetCa.certPem);
  const leaves = new LeafCertificates(targetCa);
  goodPort = await httpsServer(await leaves.secureContextFor({ sni: "localhost", target: "127.0.0.1" }));
  wrongPort = await httpsServer(await leaves.secureContextFor({ sni: "wrong.test", target: "wrong.test" }));
  h1OnlyPort = await httpsServer(await leaves.secureContextFor({ sni: "localhost", target: "127.0.0.1" }), false);
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

afterAll(async () => {
  for (const server of servers) server.close();
  rmSync(dir, { recursive: true, force: true });
});

interface TlsProxy extends CliProxy {
  capture: string;
}

/** `run --headless --tls` with the test CA trusted upstream and a capture file of its own. */
async function tlsProxy(extra: string[] = []): Promise<TlsProxy> {
  const cwd = mkdtempSync(join(dir, "run-"));
  const capture = join(cwd, "cap.db");
  const proxy = await runProxy(["--tls", "--ca-dir", caDir, "--upstream-ca", targetCaPath, "-w", capture, ...extra], cwd, children);
  return { ...proxy, capture };
}

/** curl through the proxy (socks5h, so the proxy resolves localhost); `-w` writes the HTTP version after the body. */
function curl(proxy: TlsProxy, url: string, args: string[]) {
  return runToEnd("curl", ["-sS", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${proxy.port}`, "-w", "|%{http_version}", ...args, url], 10_000);
}

interface TlsJson {
  intercepted: boolean;
  decidedBy: string;
  hello: { sni: string | null; alpn: string[] };
  client: { version: string; alpn: string | null } | null;
  upstream: { version: string; alpn: string | null } | null;
  verification: string | null;
  failure: { side: string; code: string; message: string } | null;
}

interface SessionJson {
  id: number;
  status: string;
  closeReason: string | null;
  tls: TlsJson | null;
}

/** `sessions --json -a [-f FILTER] FILE` of the built CLI. */
async function sessions(capture: string, filter?: string): Promise<SessionJson[]> {
  const result = await runToEnd(process.execPath, [CLI, "sessions", "--json", "-a", ...(filter === undefined ? [] : ["-f", filter]), capture]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as SessionJson[];
}

/** `show --json ID FILE`: its events. */
async function events(capture: string, id: number): Promise<Array<{ kind: string; code: string | null; message: string }>> {
  const result = await runToEnd(process.execPath, [CLI, "show", "--json", String(id), capture]);
  expect(result.code).toBe(0);
  return (JSON.parse(result.stdout) as { events: Array<{ kind: string; code: string | null; message: string }> }).events;
}

async function show(capture: string, id: number): Promise<string> {
  const result = await runToEnd(process.execPath, [CLI, "show", String(id), capture]);
  expect(result.code).toBe(0);
  return result.stdout;
}

describe("run --tls end to end", () => {
  it("curl over HTTP/1.1 and HTTP/2: the client trusts the socksmith CA, the capture holds the decrypted requests", async () => {
    const proxy = await tlsProxy();
    const h1 = await curl(proxy, `https://localhost:${goodPort}/one`, ["--cacert", proxyCaPath, "--http1.1"]);
    expect(h1.stderr).toBe("");
    expect(h1).toMatchObject({ code: 0, stdout: "hello GET /one over 1.1|1.1" });
    const h2 = await curl(proxy, `https://localhost:${goodPort}/two`, ["--cacert", proxyCaPath, "--http2"]);
    expect(h2).toMatchObject({ code: 0, stdout: "hello GET /two over 2.0|2" });
    expect(await proxy.stop()).toBe(0);

    const [first, second] = await sessions(proxy.capture, "tls:intercepted");
    expect(first?.tls).toMatchObject({
      intercepted: true,
      decidedBy: "default",
      hello: { sni: "localhost" },
      verification: "ok",
      client: { alpn: "http/1.1" },
    });
    expect(second?.tls).toMatchObject({ intercepted: true, client: { alpn: "h2" }, upstream: { alpn: "h2" } });
    expect((await sessions(proxy.capture, "alpn:h2")).map((s) => s.id)).toEqual([second?.id]);
    const text = await show(proxy.capture, first!.id);
    expect(text).toMatch(/TLS 1\.3 · http\/1\.1 · localhost \(intercepted\)/);
    expect(text).toContain("GET /one HTTP/1.1");
    expect(text).toContain("hello GET /one over 1.1");
    const text2 = await show(proxy.capture, second!.id);
    expect(text2).toMatch(/TLS 1\.3 · h2 · localhost \(intercepted\)/);
    expect(text2).toContain("PRI * HTTP/2.0");
    expect(text2).toContain("hello GET /two over 2.0");

    // pcapng holds the plaintext (Wireshark decodes it with "decode as HTTP" on the target's port).
    const pcap = join(proxy.capture, "..", "out.pcapng");
    const exported = await runToEnd(process.execPath, [CLI, "export", "--format", "pcapng", "-o", pcap, "-f", "tls:intercepted", proxy.capture]);
    expect(exported.code).toBe(0);
    const bytes = readFileSync(pcap);
    expect(bytes.includes("GET /one HTTP/1.1\r\nHost: localhost:")).toBe(true);
    expect(bytes.includes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")).toBe(true);
  });
});

/** GET over a SOCKS5 tunnel (the `socks` package) with Node's https, trusting only `ca`. */
async function nodeGet(proxyPort: number, port: number, path: string, ca: string): Promise<{ status: number; body: string; alpn: string | false | null }> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: "127.0.0.1", port: proxyPort, type: 5 },
    command: "connect",
    destination: { host: "localhost", port },
    timeout: 5_000,
  });
  const secure = tlsConnect({ socket, servername: "localhost", ca, ALPNProtocols: ["http/1.1"] });
  secure.on("error", () => {}); // the request reports it
  const response = new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
    // No agent: with one (even `agent: false`) Node ignores createConnection and dials directly.
    const req = httpsRequest({ host: "localhost", port, path, createConnection: () => secure }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, alpn: secure.alpnProtocol }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
  return withTimeout(response, 5_000, "no HTTPS response through the proxy");
}

/**
 * A GET from Python's ssl module over a SOCKS5 tunnel it opens itself (no PySocks needed):
 * prints the TLS version, then the response.
 */
const PYTHON_GET = `
import socket, ssl, struct, sys
proxy_port, port, cafile, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
def exact(n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise SystemExit("proxy closed after %r" % data)
        data += more
    return data
s.sendall(b"\\x05\\x01\\x00")
assert exact(2) == b"\\x05\\x00"
s.sendall(b"\\x05\\x01\\x00\\x03" + bytes([9]) + b"localhost" + struct.pack(">H", port))
head = exact(4)
assert head[1] == 0, "SOCKS reply %d" % head[1]
exact({1: 4, 4: 16}[head[3]] + 2)
tls = ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname="localhost")
tls.sendall(("GET %s HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n" % path).encode())
answer = b""
while True:
    more = tls.recv(65536)
    if not more:
        break
    answer += more
print(tls.version())
print(answer.decode("latin-1"))
`;

describe("what the client negotiates", () => {
  it("ALPN is mirrored: curl offering h2 to a target with only http/1.1 gets HTTP/1.1", async () => {
    const proxy = await tlsProxy();
    const result = await curl(proxy, `https://localhost:${h1OnlyPort}/mirror`, ["--cacert", proxyCaPath, "--http2"]);
    expect(result).toMatchObject({ code: 0, stdout: "hello GET /mirror over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture);
    expect(session?.tls).toMatchObject({ hello: { alpn: ["h2", "http/1.1"] }, client: { alpn: "http/1.1" }, upstream: { alpn: "http/1.1" } });
  });

  it("a TLS 1.2-only curl gets TLS 1.2 on both sides", async () => {
    const proxy = await tlsProxy();
    const result = await curl(proxy, `https://localhost:${goodPort}/old`, ["--cacert", proxyCaPath, "--http1.1", "--tls-max", "1.2"]);
    expect(result).toMatchObject({ code: 0, stdout: "hello GET /old over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture);
    expect(session?.tls).toMatchObject({ intercepted: true, client: { version: "TLSv1.2" }, upstream: { version: "TLSv1.2" } });
    expect(await show(proxy.capture, session!.id)).toMatch(/TLS 1\.2 · http\/1\.1 · localhost \(intercepted\)/);
  });
});

describe("other clients", () => {
  it("Node https with ca = the socksmith CA", async () => {
    const proxy = await tlsProxy();
    const got = await nodeGet(proxy.port, goodPort, "/node", readFileSync(proxyCaPath, "utf8"));
    expect(got).toEqual({ status: 200, body: "hello GET /node over 1.1", alpn: "http/1.1" });
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture, "tls:intercepted sni:localhost");
    expect(await show(proxy.capture, session!.id)).toContain("GET /node HTTP/1.1");
  });

  it("Python ssl with cafile = the socksmith CA", async () => {
    // python3 is on every machine of this project's kind (CI included); its absence is a failure, said plainly.
    const python = await runToEnd("python3", ["--version"]);
    if (python.code !== 0) throw new Error("python3 is needed for this test (it is on the CI machine): not found on PATH");
    const proxy = await tlsProxy();
    const result = await runToEnd("python3", ["-c", PYTHON_GET, String(proxy.port), String(goodPort), proxyCaPath, "/python"], 10_000);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(/^TLSv1\.3\nHTTP\/1\.1 200 OK\r\n/);
    expect(result.stdout).toContain("hello GET /python over 1.1");
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture, "tls:intercepted");
    expect(await show(proxy.capture, session!.id)).toContain("GET /python HTTP/1.1");
  });
});

describe("choosing what is intercepted", () => {
  it("an addon rewrites a decrypted response body", async () => {
    const addon = join(mkdtempSync(join(dir, "addon-")), "rewrite-body.ts");
    writeFileSync(
      addon,
      [
        'import type { Addon } from "socksmith/addon";',
        "export default {",
        '  name: "rewrite-body",',
        "  onData(chunk) {",
        '    const text = Buffer.from(chunk.data).toString("latin1");',
        '    if (chunk.direction !== "down" || !text.includes("original")) return undefined;',
        '    return { replace: text.replace("original", "replaced") };',
        "  },",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const proxy = await tlsProxy(["-s", addon]);
    const result = await curl(proxy, `https://localhost:${goodPort}/rewrite`, ["--cacert", proxyCaPath, "--http1.1"]);
    expect(result).toMatchObject({ code: 0, stdout: "the replaced body|1.1" });
    expect(await proxy.stop()).toBe(0);
  });

  it("--tls-passthrough 'sni:localhost' relays the server's own certificate; the capture says passthrough", async () => {
    const proxy = await tlsProxy(["--tls-passthrough", "sni:localhost"]);
    const result = await curl(proxy, `https://localhost:${goodPort}/through`, ["--cacert", targetCaPath, "--http1.1"]);
    expect(result).toMatchObject({ code: 0, stdout: "hello GET /through over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    const all = await sessions(proxy.capture);
    expect(all).toHaveLength(1);
    expect(await sessions(proxy.capture, "tls:passthrough")).toHaveLength(1);
    expect(all[0]?.tls).toMatchObject({ intercepted: false, decidedBy: "filter", hello: { sni: "localhost" } });
    expect(await show(proxy.capture, all[0]!.id)).not.toContain("GET /through");
  });
});

describe("clients that reject the CA, and targets that fail verification", () => {
  it("curl without the CA fails (60), the session says why; the next connection passes through and works", async () => {
    const proxy = await tlsProxy();
    // curl trusts its usual CAs, which do not include the socksmith CA.
    const rejected = await curl(proxy, `https://localhost:${goodPort}/pinned`, ["--http1.1"]);
    expect(rejected.code).toBe(60);
    const through = await curl(proxy, `https://localhost:${goodPort}/pinned`, ["--cacert", targetCaPath, "--http1.1"]);
    expect(through).toMatchObject({ code: 0, stdout: "hello GET /pinned over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    expect(proxy.stderr.join("\n")).toContain("the client does not trust the socksmith CA for localhost; its later connections pass through");
    const [first, second] = await sessions(proxy.capture);
    expect(first?.tls?.failure).toMatchObject({ side: "client", code: "client-rejected-certificate" });
    expect(first?.tls?.failure?.message).toContain("does not trust the socksmith CA for localhost");
    expect(await events(proxy.capture, first!.id)).toContainEqual(
      expect.objectContaining({
        code: "client-rejected-certificate",
        message: expect.stringMatching(/^TLS: the client does not trust the socksmith CA for localhost/),
      }),
    );
    expect(await events(proxy.capture, second!.id)).toContainEqual(expect.objectContaining({ code: "passthrough" }));
    expect(second?.tls).toMatchObject({ intercepted: false, decidedBy: "auto-passthrough" });
    expect((await sessions(proxy.capture, "tls:failed")).map((s) => s.id)).toEqual([first?.id]);
  });

  it("with --no-tls-auto-passthrough the next connection is intercepted again", async () => {
    const proxy = await tlsProxy(["--no-tls-auto-passthrough"]);
    expect((await curl(proxy, `https://localhost:${goodPort}/again`, ["--cacert", targetCaPath, "--http1.1"])).code).toBe(60);
    const again = await curl(proxy, `https://localhost:${goodPort}/again`, ["--cacert", proxyCaPath, "--http1.1"]);
    expect(again).toMatchObject({ code: 0, stdout: "hello GET /again over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    const [first, second] = await sessions(proxy.capture);
    expect(first?.tls?.failure).toMatchObject({ side: "client", code: "client-rejected-certificate" });
    expect(second?.tls).toMatchObject({ intercepted: true, decidedBy: "default", failure: null });
  });

  it("a target whose certificate names another host: curl gets an error, the session's tls row says why", async () => {
    const proxy = await tlsProxy();
    const result = await curl(proxy, `https://localhost:${wrongPort}/wrong`, ["--cacert", proxyCaPath, "--http1.1"]);
    // 35: curl's "SSL connect error", here the alert that ended its handshake.
    expect(result.code).toBe(35);
    expect(result.stderr).toMatch(/alert/i);
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture);
    expect(session).toMatchObject({ closeReason: "tls-failed" });
    expect(session?.tls?.failure).toMatchObject({ side: "upstream", code: "upstream-certificate" });
    expect(session?.tls?.failure?.message).toBe("the certificate of localhost was refused: it is not valid for localhost (it names DNS:wrong.test)");
    expect(session?.tls?.verification).toContain("not valid for localhost");
  });

  it("--upstream-insecure lets that target through; verification says skipped", async () => {
    const proxy = await tlsProxy(["--upstream-insecure"]);
    const result = await curl(proxy, `https://localhost:${wrongPort}/insecure`, ["--cacert", proxyCaPath, "--http1.1"]);
    expect(result).toMatchObject({ code: 0, stdout: "hello GET /insecure over 1.1|1.1" });
    expect(await proxy.stop()).toBe(0);
    const [session] = await sessions(proxy.capture);
    expect(session?.tls).toMatchObject({ intercepted: true, failure: null });
    expect(session?.tls?.verification).toMatch(/^skipped \(--upstream-insecure\)/);
  });
});

describe("secrets", () => {
  it("--tls-keylog writes both sides' handshake secrets to a 0600 file", async () => {
    const keylog = join(mkdtempSync(join(dir, "keylog-")), "keys.log");
    const proxy = await tlsProxy(["--tls-keylog", keylog]);
    expect((await curl(proxy, `https://localhost:${goodPort}/keys`, ["--cacert", proxyCaPath, "--http1.1"])).code).toBe(0);
    expect(await proxy.stop()).toBe(0);
    expect(statSync(keylog).mode & 0o777).toBe(0o600);
    const randoms = readFileSync(keylog, "utf8")
      .split("\n")
      .filter((line) => line.startsWith("CLIENT_HANDSHAKE_TRAFFIC_SECRET "))
      .map((line) => line.split(" ")[1]);
    // One intercepted session, two handshakes: curl ↔ socksmith and socksmith ↔ the target.
    expect(randoms).toHaveLength(2);
    expect(new Set(randoms).size).toBe(2);
    for (const random of randoms) expect(random).toMatch(/^[0-9a-f]{64}$/);
  });

  it("$SSLKEYLOGFILE is the key log when --tls-keylog is not given", async () => {
    const keylog = join(mkdtempSync(join(dir, "keylog-")), "env.log");
    // The child takes the environment when it is spawned; curl, spawned later, must not see it.
    const before = process.env.SSLKEYLOGFILE;
    process.env.SSLKEYLOGFILE = keylog;
    let proxy: TlsProxy;
    try {
      proxy = await tlsProxy();
    } finally {
      if (before === undefined) delete process.env.SSLKEYLOGFILE;
      else process.env.SSLKEYLOGFILE = before;
    }
    expect((await curl(proxy, `https://localhost:${goodPort}/env`, ["--cacert", proxyCaPath, "--http1.1"])).code).toBe(0);
    expect(await proxy.stop()).toBe(0);
    expect(readFileSync(keylog, "utf8").match(/^CLIENT_HANDSHAKE_TRAFFIC_SECRET /gm)).toHaveLength(2);
  });

  it("the CA key file is 0600 and its key never reaches the capture", async () => {
    const proxy = await tlsProxy();
    expect((await curl(proxy, `https://localhost:${goodPort}/key`, ["--cacert", proxyCaPath, "--http1.1"])).code).toBe(0);
    expect(await proxy.stop()).toBe(0);
    expect(statSync(proxyKeyPath).mode & 0o777).toBe(0o600);
    const body = readFileSync(proxyKeyPath, "utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("-----"))
      .join("");
    const der = Buffer.from(body, "base64");
    expect(der.length).toBeGreaterThan(100);
    const files = [proxy.capture, `${proxy.capture}-wal`].filter((f) => existsSync(f));
    for (const file of files) {
      const bytes = readFileSync(file);
      expect(bytes.includes(body.slice(0, 64))).toBe(false);
      expect(bytes.includes(der)).toBe(false);
    }
    // The capture does hold this session: a check that it is the right file.
    expect(Buffer.concat(files.map((f) => readFileSync(f))).includes("GET /key HTTP/1.1")).toBe(true);
  });
});

describe("usage errors", () => {
  it("--tls-hosts without --tls exits 2 with a one-line reason", async () => {
    const result = await runToEnd(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--tls-hosts", "sni:example.com"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("socksmith: --tls-hosts only applies with --tls\n");
  });

  it("a bad --tls-hosts filter shows where, with a caret", async () => {
    const args = [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--tls", "--ca-dir", caDir, "--tls-hosts", "sni:a (( port:"];
    const result = await runToEnd(process.execPath, args);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("socksmith: --tls-hosts: expected a value after 'port:'\n  sni:a (( port:\n                ^\n");
  });
});
