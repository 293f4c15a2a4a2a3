/**
 * A real browser through `run --tls`: headless Chromium (Debian's `chromium`, which CI installs
 * along with `libnss3-tools` for certutil) loads an HTTPS page through the built CLI. The page's
 * server has a certificate from a test CA that Chromium does not trust, so the page arrives only
 * when the proxy intercepts and Chromium trusts the socksmith CA, which it reads from the NSS
 * database under $HOME (a temporary home here). The capture is read back with the built CLI.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateCa } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { CLI, runProxy, runToEnd } from "../support/cli.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-tls-chromium-"));
const caDir = join(dir, "socksmith-ca");
const proxyCaPath = join(caDir, "socksmith-ca.pem");
const targetCaPath = join(dir, "target-ca.pem");
const children: ChildProcess[] = [];
/** Chromium browsers still running: each leads a process group of its own (renderers, zygote, GPU), killed whole. */
const browsers = new Set<ChildProcess>();
/** How long one page load may take, Chromium's start included (it is slow to start on a busy machine). */
const LOAD_MS = 30_000;
const PAGE = "hello from the https target";
let target: Http2SecureServer | undefined;
let targetPort = 0;

beforeAll(async () => {
  // The socksmith CA is made up front so that it can go into the NSS database before the proxy runs.
  await loadOrCreateCa(caDir);
  const targetCa = await loadOrCreateCa(join(dir, "target-ca"));
  writeFileSync(targetCaPath, targetCa.certPem);
  const context = await new LeafCertificates(targetCa).secureContextFor({ sni: "localhost", target: "127.0.0.1" });
  // The context goes by SNI (Chromium names localhost), which sidesteps needing the leaf's key as PEM.
  target = createSecureServer({ allowHTTP1: true, SNICallback: (_name, done) => done(null, context) }, (req, res) => {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.end(`<!doctype html><title>t</title><p id="greeting">${PAGE} at ${req.url} over HTTP/${req.httpVersion}</p>`);
  });
  target.listen(0, "127.0.0.1");
  await once(target, "listening");
  targetPort = (target.address() as AddressInfo).port;
});

afterEach(() => {
  for (const browser of browsers) killGroup(browser);
  browsers.clear();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

afterAll(async () => {
  target?.close();
  rmSync(dir, { recursive: true, force: true });
});

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // The group is gone already.
  }
}

/** Whether `file` runs at all (not whether it succeeds: `certutil -H` exits 1 after its help). */
function runs(file: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(file, args, { timeout: 10_000 }, (err) => resolve(err === null || typeof err.code === "number")));
}

/** Chromium and certutil are required, not optional: their absence fails the test with what to install. */
async function requireTools(): Promise<void> {
  const missing: string[] = [];
  if (!(await runs("chromium", ["--version"]))) missing.push("chromium (Debian package chromium)");
  if (!(await runs("certutil", ["-H"]))) missing.push("certutil (Debian package libnss3-tools)");
  if (missing.length > 0) {
    throw new Error(`not found on PATH: ${missing.join(" and ")}; this test needs them: install with apt-get (.ci/run does in CI)`);
  }
}

/** A fresh home with an NSS database (`$HOME/.pki/nssdb`, where Chromium on Linux looks), trusting the socksmith CA or nothing. */
async function homeWithNssDb(trustSocksmithCa: boolean): Promise<string> {
  const home = mkdtempSync(join(dir, "home-"));
  const db = `sql:${join(home, ".pki", "nssdb")}`;
  mkdirSync(join(home, ".pki", "nssdb"), { recursive: true });
  const created = await runToEnd("certutil", ["-d", db, "-N", "--empty-password"]);
  expect(created, "certutil -N").toMatchObject({ code: 0 });
  if (trustSocksmithCa) {
    const added = await runToEnd("certutil", ["-d", db, "-A", "-t", "C,,", "-n", "socksmith", "-i", proxyCaPath]);
    expect(added, "certutil -A").toMatchObject({ code: 0 });
  }
  const listed = await runToEnd("certutil", ["-d", db, "-L"]);
  expect(listed.code).toBe(0);
  expect(listed.stdout.includes("socksmith")).toBe(trustSocksmithCa);
  return home;
}

/**
 * `chromium --headless=new --dump-dom URL` through the SOCKS5 proxy with HOME = `home`; the DOM it
 * printed and its exit code. Bounded: after LOAD_MS its process group is killed and this rejects.
 */
async function loadPage(home: string, proxyPort: number, url: string): Promise<{ code: number | null; dom: string; stderr: string }> {
  const profile = mkdtempSync(join(dir, "profile-"));
  const browser = spawn(
    "chromium",
    [
      "--headless=new",
      "--no-sandbox", // as root (CI containers) Chromium refuses to start with its sandbox
      "--disable-gpu",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
      `--proxy-server=socks5://127.0.0.1:${proxyPort}`,
      // Chromium bypasses any proxy for localhost unless told otherwise.
      "--proxy-bypass-list=<-loopback>",
      // Less of Chromium's own traffic (updates, metrics, sync); the loopback-only addon refuses the rest.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--no-first-run",
      "--no-default-browser-check",
      "--dump-dom",
      url,
    ],
    // Its own process group, so that the whole browser (renderers, zygote, GPU process) can be killed at once.
    {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_CACHE_HOME: join(home, ".cache") },
    },
  );
  browsers.add(browser);
  let dom = "";
  let stderr = "";
  browser.stdout!.on("data", (d: Buffer) => (dom += d.toString()));
  browser.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  let timer: NodeJS.Timeout | undefined;
  try {
    const [code] = (await Promise.race([
      once(browser, "close"),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`chromium did not finish loading ${url} within ${LOAD_MS} ms; its stderr:\n${stderr}`)), LOAD_MS);
      }),
    ])) as [number | null];
    return { code, dom, stderr };
  } finally {
    clearTimeout(timer);
    // The browser's helpers may outlive it: end its group either way.
    killGroup(browser);
    browsers.delete(browser);
  }
}

interface SessionJson {
  id: number;
  openedAtMs: number;
  target: { host: string; port: number } | null;
  requested: { host: string; port: number } | null;
  reply: { rep: number } | null;
  tls: {
    intercepted: boolean;
    decidedBy: string;
    hello: { sni: string | null; alpn: string[] };
    client: { version: string; alpn: string | null } | null;
    upstream: { version: string; alpn: string | null } | null;
    certificate: { issuer: string } | null;
    verification: string | null;
    failure: { side: string; code: string; message: string } | null;
  } | null;
}

/** The built CLI's `sessions --json -a [-f FILTER] FILE`. */
async function sessions(capture: string, filter?: string): Promise<SessionJson[]> {
  const result = await runToEnd(process.execPath, [CLI, "sessions", "--json", "-a", ...(filter === undefined ? [] : ["-f", filter]), capture]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as SessionJson[];
}

/** The built CLI's `show ID FILE`. */
async function show(capture: string, id: number): Promise<string> {
  const result = await runToEnd(process.execPath, [CLI, "show", String(id), capture]);
  expect(result.code).toBe(0);
  return result.stdout;
}

/**
 * Chromium talks to Google (component updates, sign-in) even with background networking off.
 * This addon keeps the test on loopback: the proxy refuses every destination but localhost.
 */
const LOOPBACK_ONLY = [
  'import type { Addon } from "socksmith/addon";',
  "export default {",
  '  name: "loopback-only",',
  '  onRequest: (request) => (request.host === "localhost" ? undefined : { deny: 2 }),',
  "} satisfies Addon;",
  "",
].join("\n");

/** `run --headless --tls` trusting the test CA upstream, with the loopback-only addon and a capture file of its own. */
async function tlsProxy() {
  const cwd = mkdtempSync(join(dir, "run-"));
  const capture = join(cwd, "cap.db");
  const addon = join(cwd, "loopback-only.ts");
  writeFileSync(addon, LOOPBACK_ONLY);
  const proxy = await runProxy(["--tls", "--ca-dir", caDir, "--upstream-ca", targetCaPath, "-w", capture, "-s", addon], cwd, children);
  return { ...proxy, capture };
}

/** Every session went to the target or was refused by the addon: nothing left loopback. */
function expectLoopbackOnly(all: SessionJson[]): void {
  for (const session of all) {
    if (session.target?.host === "localhost" && session.target.port === targetPort) continue;
    // A connection Chromium opened ahead of need and closed at exit without a request went nowhere.
    if (session.requested === null && session.target === null && session.reply === null) continue;
    expect({ id: session.id, target: session.target, rep: session.reply?.rep }).toEqual({ id: session.id, target: session.target, rep: 2 });
  }
}

describe("headless Chromium through run --tls", () => {
  it("trusting the socksmith CA in its NSS database, Chromium gets the page; the capture holds the decrypted request", async () => {
    await requireTools();
    const home = await homeWithNssDb(true);
    const proxy = await tlsProxy();
    const page = await loadPage(home, proxy.port, `https://localhost:${targetPort}/page`);
    // A second load through the same proxy is intercepted too: Chromium's unused spare connection
    // must not count as a rejection of the CA (it did once, and the second load then failed).
    const again = await loadPage(home, proxy.port, `https://localhost:${targetPort}/page`);
    expect(await proxy.stop()).toBe(0);
    const greeting = new RegExp(`<p id="greeting">${PAGE} at /page over HTTP/(2\\.0|1\\.1)</p>`).exec(page.dom);
    expect(greeting, `the page did not arrive; Chromium printed ${JSON.stringify(page.dom)} and said:\n${page.stderr}`).not.toBeNull();
    expect(page.code).toBe(0);
    expect(again.dom, `the second load failed: ${again.stderr}`).toContain(`${PAGE} at /page`);

    const all = await sessions(proxy.capture);
    expectLoopbackOnly(all);
    const toTarget = await sessions(proxy.capture, `port:${targetPort}`);
    // Chromium may open a spare connection; each was intercepted and none failed.
    expect(toTarget.length).toBeGreaterThan(0);
    for (const session of toTarget) {
      expect(session.tls).toMatchObject({
        intercepted: true,
        decidedBy: "default",
        hello: { sni: "localhost" },
        verification: "ok",
        certificate: { issuer: expect.stringContaining("socksmith CA") },
        failure: null,
      });
    }
    // The session that carried the page: the plaintext is in the capture, in the protocol Chromium negotiated.
    const h2 = greeting![1] === "2.0";
    const texts = await Promise.all(toTarget.map((s) => show(proxy.capture, s.id)));
    const carried = texts.filter((text) => text.includes(`${PAGE} at /page over HTTP/${greeting![1]}`));
    expect(carried).toHaveLength(2);
    const text = carried[0]!;
    expect(text).toMatch(new RegExp(`tls: +TLS 1\\.[23] · ${h2 ? "h2" : "http/1\\.1"} · localhost \\(intercepted\\)`));
    // An h2 request's headers are HPACK-compressed; its connection preface is plain text.
    expect(text).toContain(h2 ? "PRI * HTTP/2.0" : "GET /page HTTP/1.1");
    const session = toTarget[texts.indexOf(text)]!;
    expect(session.tls).toMatchObject({ client: { alpn: h2 ? "h2" : "http/1.1" }, upstream: { alpn: h2 ? "h2" : "http/1.1" } });
  }, 60_000);

  it("without the CA the load fails and the session records the client rejecting it; passed through, Chromium distrusts the target too", async () => {
    await requireTools();
    const home = await homeWithNssDb(false);
    const proxy = await tlsProxy();
    const url = `https://localhost:${targetPort}/page`;
    const first = await loadPage(home, proxy.port, url);
    expect(first.dom).not.toContain(PAGE);
    expect(first.stderr).toContain("ERR_CERT_AUTHORITY_INVALID");
    // The control: the proxy now passes localhost through, so Chromium sees the target's own
    // certificate, from a CA it does not trust either: only interception makes the first test's page load.
    const secondStarted = Date.now();
    const second = await loadPage(home, proxy.port, url);
    expect(await proxy.stop()).toBe(0);
    expect(second.dom).not.toContain(PAGE);
    expect(second.stderr).toContain("ERR_CERT_AUTHORITY_INVALID");
    expect(proxy.stderr.join("\n")).toContain("the client does not trust the socksmith CA for localhost; its later connections pass through");

    expectLoopbackOnly(await sessions(proxy.capture));
    const toTarget = await sessions(proxy.capture, `port:${targetPort}`);
    const ofFirst = toTarget.filter((s) => s.openedAtMs < secondStarted);
    const refusals = ofFirst.filter((s) => s.tls?.failure?.code === "client-rejected-certificate");
    expect(refusals.length, JSON.stringify(ofFirst.map((s) => s.tls))).toBeGreaterThan(0);
    for (const session of refusals) {
      expect(session.tls).toMatchObject({ intercepted: false, decidedBy: "default", failure: { side: "client" } });
      expect(session.tls?.failure?.message).toContain("does not trust the socksmith CA for localhost");
    }
    // A connection Chromium opened after the first refusal already passed through.
    for (const session of ofFirst) if (!refusals.includes(session)) expect(session.tls).toMatchObject({ decidedBy: "auto-passthrough" });
    const ofSecond = toTarget.filter((s) => s.openedAtMs >= secondStarted);
    expect(ofSecond.length).toBeGreaterThan(0);
    for (const session of ofSecond) expect(session.tls).toMatchObject({ intercepted: false, decidedBy: "auto-passthrough", failure: null });
  }, 60_000);
});
