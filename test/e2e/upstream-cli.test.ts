/**
 * `run --upstream` and `--route` end to end: the built CLI as two processes (a front proxy whose
 * upstream is a back proxy) and curl through the front. The body arrives; the front's capture
 * names the route (`sessions --json`, `show`, `--filter via:`) and the back's has the session;
 * an HTTP CONNECT upstream (a small proxy written here); upstream credentials right and wrong
 * (REP 01, an event naming the hop, no password anywhere); an upstream that is down (REP 05) or
 * silent (REP 06); `--route` choosing per request; `--deny` deciding before anything is dialled;
 * usage errors; and TLS interception through an upstream.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from "node:net";
import { createSecureServer } from "node:http2";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateCa } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { CLI, runProxy, runToEnd, useCliFixture } from "../support/cli.js";

const { dir, children, http } = useCliFixture("upstream");

/** A second HTTP target, so that one test can send requests to two ports. */
let other: Server;
const otherPort = { port: 0 };
beforeAll(async () => {
  other = createHttpServer((req, res) => res.end(`other ${req.url}`));
  other.listen(0, "127.0.0.1");
  await once(other, "listening");
  otherPort.port = (other.address() as AddressInfo).port;
});
afterAll(async () => {
  other.closeAllConnections();
  await new Promise((resolve) => other.close(resolve));
});

/** A fresh working folder for one proxy (its capture is `socksmith.db` there). */
const folder = (name: string) => mkdtempSync(join(dir, `${name}-`));

/** curl with `--socks5-hostname` (the proxy gets the name): its exit code and body. 97: the SOCKS5 reply was a refusal. */
function curl(proxyPort: number, url: string, ...extra: string[]) {
  return runToEnd("curl", ["-sS", "--max-time", "8", "--socks5-hostname", `127.0.0.1:${proxyPort}`, ...extra, url]);
}

/** The built CLI's read commands. */
const cli = (...args: string[]) => runToEnd(process.execPath, [CLI, ...args]);

interface SessionJson {
  id: number;
  requested: { host: string; port: number };
  route: string[] | null;
  status: string;
  reply: { rep: number | null; code: string | null };
  auth: { user: string | null };
  protocol: string | null;
  tls: { intercepted: boolean } | null;
}

async function sessions(capture: string, ...extra: string[]): Promise<SessionJson[]> {
  const listed = await cli("sessions", capture, "--json", ...extra);
  expect(listed.stderr).toBe("");
  return JSON.parse(listed.stdout) as SessionJson[];
}

/** Every file of a capture (the database and what SQLite keeps beside it), as one string for searching. */
function captureBytes(capture: string): string {
  return ["", "-wal", "-shm", "-journal"]
    .map((suffix) => `${capture}${suffix}`)
    .filter((file) => existsSync(file))
    .map((file) => readFileSync(file).toString("latin1"))
    .join("\n");
}

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("a chain of two socksmith processes", () => {
  it("curl through the front: the body arrives, both captures have the session, the front's names the route", async () => {
    const backDir = folder("back");
    const frontDir = folder("front");
    const back = await runProxy([], backDir, children);
    const hop = `socks5h://127.0.0.1:${back.port}`;
    const front = await runProxy(["--upstream", hop], frontDir, children);
    const got = await curl(front.port, `http://localhost:${http.port}/chain`);
    expect(got.stderr).toBe("");
    expect(got.stdout).toBe("served /chain");
    expect(await front.stop()).toBe(0);
    expect(await back.stop()).toBe(0);
    expect(front.stderr).toContain(`upstream: ${hop}`);

    const frontDb = join(frontDir, "socksmith.db");
    const [session] = await sessions(frontDb);
    expect(session).toMatchObject({ requested: { host: "localhost", port: http.port }, route: [hop], status: "ok", protocol: "http" });
    const shown = await cli("show", "1", frontDb);
    expect(shown.stdout).toMatch(new RegExp(`^route: +${hop.replaceAll(".", "\\.")}$`, "m"));
    expect((await sessions(frontDb, "--filter", `via:127.0.0.1:${back.port}`)).map((s) => s.id)).toEqual([1]);
    expect(await sessions(frontDb, "--filter", "via:direct")).toEqual([]);

    // socks5h: the back got the name and resolved it.
    const [relayed] = await sessions(join(backDir, "socksmith.db"));
    expect(relayed).toMatchObject({ requested: { host: "localhost", port: http.port }, route: null, status: "ok" });
  }, 30_000);

  it("upstream credentials: right ones pass, wrong ones fail the client with an event naming the hop and no password stored", async () => {
    const backDir = folder("back-auth");
    const back = await runProxy(["--auth", "alice:Sesame-42"], backDir, children);
    const right = await runProxy(["--upstream", `socks5h://alice:Sesame-42@127.0.0.1:${back.port}`], folder("front-right"), children);
    expect((await curl(right.port, `http://localhost:${http.port}/in`)).stdout).toBe("served /in");
    await right.stop();

    const wrongDir = folder("front-wrong");
    const wrong = await runProxy(["--upstream", `socks5h://alice:Wrong-99@127.0.0.1:${back.port}`], wrongDir, children);
    const refused = await curl(wrong.port, `http://localhost:${http.port}/out`);
    expect(refused.code).toBe(97);
    expect(await wrong.stop()).toBe(0);
    await back.stop();

    const hop = `socks5h://127.0.0.1:${back.port}`;
    expect(wrong.stdout.some((l) => / CONNECT localhost:\d+ 01 failure .*\[upstream-auth-failed\]/.test(l))).toBe(true);
    const wrongDb = join(wrongDir, "socksmith.db");
    const shown = await cli("show", "1", wrongDb);
    expect(shown.stdout).toContain(`anomaly upstream-auth-failed: hop 1 ${hop}: refused the credentials`);
    expect(shown.stdout).not.toContain("Wrong-99");
    expect(captureBytes(wrongDb)).not.toContain("Wrong-99");
    expect([...wrong.stdout, ...wrong.stderr].join("\n")).not.toContain("Wrong-99");

    // The back let alice in once and refused her wrong password once.
    const backSessions = await sessions(join(backDir, "socksmith.db"));
    expect(backSessions.map((s) => [s.auth.user, s.status])).toEqual([
      ["alice", "ok"],
      ["alice", "denied"],
    ]);
    expect(captureBytes(join(backDir, "socksmith.db"))).not.toContain("Sesame-42");
  }, 30_000);

  it("an upstream that is down: the client gets REP 05, the attempt names the hop", async () => {
    const port = await deadPort();
    const proxyDir = folder("down");
    const front = await runProxy(["--upstream", `socks5h://127.0.0.1:${port}`], proxyDir, children);
    expect((await curl(front.port, `http://localhost:${http.port}/`)).code).toBe(97);
    await front.stop();
    expect(front.stdout.some((l) => / CONNECT localhost:\d+ 05 refused /.test(l))).toBe(true);
    const shown = await cli("show", "1", join(proxyDir, "socksmith.db"));
    expect(shown.stdout).toMatch(new RegExp(`attempts: +hop 1 socks5h://127\\.0\\.0\\.1:${port}: `));
  }, 30_000);

  it("an upstream that accepts and never answers: REP 06 after --connect-timeout", async () => {
    const held: Socket[] = [];
    const silent = createTcpServer((socket) => held.push(socket));
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    try {
      const front = await runProxy(["--connect-timeout", "500ms", "--upstream", `socks5://127.0.0.1:${(silent.address() as AddressInfo).port}`], dir, children);
      expect((await curl(front.port, `http://127.0.0.1:${http.port}/`)).code).toBe(97);
      await front.stop();
      expect(front.stdout.some((l) => / CONNECT 127\.0\.0\.1:\d+ 06 timeout /.test(l))).toBe(true);
      expect(held.length).toBe(1);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  }, 30_000);

  it("--route 'port:N=direct' takes those requests past the upstream; the others go through it", async () => {
    const backDir = folder("back-route");
    const frontDir = folder("front-route");
    const back = await runProxy([], backDir, children);
    const hop = `socks5h://127.0.0.1:${back.port}`;
    const front = await runProxy(["--upstream", hop, "--route", `port:${http.port}=direct`], frontDir, children);
    expect((await curl(front.port, `http://127.0.0.1:${http.port}/near`)).stdout).toBe("served /near");
    expect((await curl(front.port, `http://127.0.0.1:${otherPort.port}/far`)).stdout).toBe("other /far");
    await front.stop();
    await back.stop();
    const routed = await sessions(join(frontDir, "socksmith.db"));
    expect(routed.map((s) => [s.requested.port, s.route])).toEqual([
      [http.port, null],
      [otherPort.port, [hop]],
    ]);
    expect((await sessions(join(backDir, "socksmith.db"))).map((s) => s.requested.port)).toEqual([otherPort.port]);
  }, 30_000);

  it("--deny with --upstream: a denied destination is refused before the upstream is dialled", async () => {
    const backDir = folder("back-deny");
    const frontDir = folder("front-deny");
    const back = await runProxy([], backDir, children);
    const front = await runProxy(["--upstream", `socks5h://127.0.0.1:${back.port}`, "--deny", `*:${http.port}`], frontDir, children);
    expect((await curl(front.port, `http://localhost:${http.port}/no`)).code).toBe(97);
    expect((await curl(front.port, `http://localhost:${otherPort.port}/yes`)).stdout).toBe("other /yes");
    await front.stop();
    await back.stop();
    expect(front.stdout.some((l) => / CONNECT localhost:\d+ 02 not allowed .*\[denied-by-rule\]/.test(l))).toBe(true);
    const shown = await cli("show", "1", join(frontDir, "socksmith.db"));
    expect(shown.stdout).toContain(`anomaly denied-by-rule: --deny *:${http.port}`);
    // The back only ever saw the allowed request.
    expect((await sessions(join(backDir, "socksmith.db"))).map((s) => s.requested.port)).toEqual([otherPort.port]);
  }, 30_000);
});

describe("an HTTP CONNECT upstream", () => {
  /** A minimal HTTP CONNECT proxy wanting Basic credentials bob:Open-7; records each CONNECT target. */
  async function connectProxy() {
    const seen: string[] = [];
    const server = createHttpServer((_req, res) => res.writeHead(405).end());
    server.on("connect", (req, client: Socket, head: Buffer) => {
      seen.push(req.url ?? "");
      if (req.headers["proxy-authorization"] !== `Basic ${Buffer.from("bob:Open-7").toString("base64")}`) {
        client.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(":")), Number(req.url!.slice(req.url!.lastIndexOf(":") + 1))];
      const target = connect(port, host === "localhost" ? "127.0.0.1" : host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (head.length > 0) target.write(head);
        target.pipe(client);
        client.pipe(target);
      });
      target.on("error", () => client.destroy());
      client.on("error", () => target.destroy());
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, seen, port: (server.address() as AddressInfo).port };
  }

  it("--upstream http://USER:PASS@HOST:PORT: CONNECT through it; a 407 is REP 01 naming the hop", async () => {
    const upstream = await connectProxy();
    try {
      const okDir = folder("http-ok");
      const ok = await runProxy(["--upstream", `http://bob:Open-7@127.0.0.1:${upstream.port}`], okDir, children);
      expect((await curl(ok.port, `http://localhost:${http.port}/via-http`)).stdout).toBe("served /via-http");
      await ok.stop();
      expect(upstream.seen).toEqual([`localhost:${http.port}`]);
      const [session] = await sessions(join(okDir, "socksmith.db"));
      expect(session?.route).toEqual([`http://127.0.0.1:${upstream.port}`]);

      const badDir = folder("http-bad");
      const bad = await runProxy(["--upstream", `http://127.0.0.1:${upstream.port}`], badDir, children);
      expect((await curl(bad.port, `http://localhost:${http.port}/`)).code).toBe(97);
      await bad.stop();
      expect(bad.stdout.some((l) => / 01 failure .*\[upstream-auth-failed\]/.test(l))).toBe(true);
      expect((await cli("show", "1", join(badDir, "socksmith.db"))).stdout).toContain(`anomaly upstream-auth-failed: hop 1 http://127.0.0.1:${upstream.port}`);
    } finally {
      upstream.server.closeAllConnections();
      upstream.server.close();
    }
  }, 30_000);
});

describe("usage errors", () => {
  it("a bad --upstream URL: exit 2, one line, the password not echoed", async () => {
    const bad = await runToEnd(process.execPath, [
      CLI,
      "run",
      "--headless",
      "--no-capture",
      "-l",
      "127.0.0.1:0",
      "--upstream",
      "ftp://carol:Hidden-3@127.0.0.1:21",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain('unknown scheme "ftp"');
    expect(bad.stderr).not.toContain("Hidden-3");
    const noPort = await runToEnd(process.execPath, [
      CLI,
      "run",
      "--headless",
      "--no-capture",
      "-l",
      "127.0.0.1:0",
      "--upstream",
      "http://carol:Hidden-3@proxy.test",
    ]);
    expect(noPort.code).toBe(2);
    expect(noPort.stderr).toContain("an http upstream needs a port");
    expect(noPort.stderr).not.toContain("Hidden-3");
  });

  it("a bad --route: exit 2 naming the option", async () => {
    const noUrl = await runToEnd(process.execPath, [CLI, "run", "--headless", "--no-capture", "-l", "127.0.0.1:0", "--route", "port:80"]);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("--route port:80: expected EXPR=URL");
    const badFilter = await runToEnd(process.execPath, [CLI, "run", "--headless", "--no-capture", "-l", "127.0.0.1:0", "--route", "bogus:1=direct"]);
    expect(badFilter.code).toBe(2);
    expect(badFilter.stderr).toContain("--route: unknown field 'bogus'");
  });
});

describe("TLS interception through an upstream", () => {
  it("run --tls --upstream: the front decrypts, the back relays ciphertext", async () => {
    const targetCa = await loadOrCreateCa(join(dir, "target-ca"));
    const targetCaFile = join(dir, "target-ca.pem");
    writeFileSync(targetCaFile, targetCa.certPem);
    const leaf = await new LeafCertificates(targetCa).leafFor({ target: "localhost" });
    const target = createSecureServer({ allowHTTP1: true, SNICallback: (_name, callback) => callback(null, leaf.context) }, (req, res) => {
      res.end(`secret ${req.url} over HTTP/${req.httpVersion}\n`);
    });
    target.listen(0, "127.0.0.1");
    await once(target, "listening");
    const port = (target.address() as AddressInfo).port;
    try {
      const backDir = folder("tls-back");
      const frontDir = folder("tls-front");
      const caDir = join(frontDir, "ca");
      const back = await runProxy([], backDir, children);
      const hop = `socks5h://127.0.0.1:${back.port}`;
      const front = await runProxy(["--tls", "--ca-dir", caDir, "--upstream-ca", targetCaFile, "--upstream", hop], frontDir, children);
      const got = await curl(front.port, `https://localhost:${port}/through`, "--cacert", join(caDir, "socksmith-ca.pem"), "--http1.1");
      expect(got.stderr).toBe("");
      expect(got.stdout).toBe("secret /through over HTTP/1.1\n");
      await front.stop();
      await back.stop();

      const frontDb = join(frontDir, "socksmith.db");
      const [session] = await sessions(frontDb);
      expect(session).toMatchObject({ route: [hop], status: "ok", tls: { intercepted: true } });
      const shown = await cli("show", "1", frontDb);
      expect(shown.stdout).toContain("GET /through HTTP/1.1");
      expect(shown.stdout).toContain("secret /through over HTTP/1.1");
      // The back relayed the TLS bytes it was given: it saw a TLS session and none of the plaintext.
      const backDb = join(backDir, "socksmith.db");
      const [relayed] = await sessions(backDb);
      expect(relayed).toMatchObject({ requested: { host: "localhost", port }, protocol: "tls" });
      expect((await cli("show", "1", backDb)).stdout).not.toContain("/through");
    } finally {
      target.close();
    }
  }, 30_000);
});
