/**
 * Addons as a user runs them: `socksmith run -s FILE` in a child process, curl as the client,
 * the addon file edited while the proxy runs (reload within a second, a broken edit keeps the
 * old behaviour and reports file:line:column), `--set`, and `addon check`.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, runProxy, type CliProxy } from "../support/cli.js";
import { openTunnel, startEchoServer } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-addons-"));
let http: Server;
let httpPort: number;
const children: ChildProcess[] = [];

beforeAll(async () => {
  http = createServer((req, res) => res.end(`served ${req.url} ua=${req.headers["user-agent"]}`));
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  httpPort = (http.address() as AddressInfo).port;
});
afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

function curl(port: number, path = "/"): Promise<{ code: number; body: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-s", "--max-time", "5", "--socks5", `127.0.0.1:${port}`, `http://127.0.0.1:${httpPort}${path}`], (err, stdout) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout });
    });
  });
}

function runWith(args: string[]): Promise<CliProxy> {
  return runProxy(args, mkdtempSync(join(dir, "cwd-")), children);
}

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}

const addonSource = (body: string) => `import type { Addon } from "socksmith/addon";\nexport default {\n${body}\n} satisfies Addon;\n`;

describe("addons end to end", () => {
  it("an edited addon takes effect within a second; a broken edit keeps the old version and names its line", async () => {
    const file = join(dir, "gate.ts");
    writeFileSync(file, addonSource(`  name: "gate",\n  onRequest: (r) => (r.port === ${0} ? undefined : { deny: 2 }),`));
    const { port, stderr } = await runWith(["-s", file]);
    expect((await curl(port)).code).toBe(97);

    // An atomic save (write elsewhere, rename over), as editors do.
    const started = Date.now();
    writeFileSync(`${file}.tmp`, addonSource(`  name: "gate",\n  onRequest: (r, ctx) => { ctx.tag("v", "2"); return undefined; },`));
    renameSync(`${file}.tmp`, file);
    const after = await eventually(
      () => curl(port, "/v2"),
      (r) => r.code === 0,
    );
    expect(after.body).toContain("served /v2");
    expect(Date.now() - started).toBeLessThan(1500);
    expect(stderr.join("\n")).toMatch(/addon gate reloaded \(version 2\)/);

    writeFileSync(file, addonSource(`  name: "gate",\n  onRequest: (r) => { return { deny: 2 } ;;; )`));
    await eventually(
      async () => stderr.join("\n"),
      (t) => /gate\.ts:4:\d+: .*keeping version 2/.test(t),
    );
    expect(stderr.join("\n")).toMatch(/gate\.ts:4:\d+: .*keeping version 2/);
    expect((await curl(port, "/still")).code).toBe(0);
  });

  it("a session in flight survives a reload and uses the new version from its next hook call", async () => {
    const echo = await startEchoServer();
    const file = join(dir, "marker.ts");
    const version = (tag: string) =>
      addonSource(
        `  name: "marker",\n  onData: (c) => (c.direction === "down" ? { replace: Buffer.concat([Buffer.from("${tag}:"), Buffer.from(c.data)]) } : undefined),`,
      );
    writeFileSync(file, version("v1"));
    const { port, stderr } = await runWith(["-s", file]);
    const tunnel = await openTunnel(port, echo.port);
    tunnel.write(Buffer.from("a"));
    expect((await tunnel.read(4)).toString()).toBe("v1:a");
    writeFileSync(file, version("v2"));
    await eventually(
      async () => stderr.join("\n"),
      (t) => /addon marker reloaded \(version 2\)/.test(t),
    );
    tunnel.write(Buffer.from("b"));
    expect((await tunnel.read(4)).toString()).toBe("v2:b");
    tunnel.destroy();
    await echo.close();
  });

  it("--set options reach the addon; recipes rewrite bytes and block hosts", async () => {
    const { port, stdout } = await runWith([
      "-s",
      join(import.meta.dirname, "../../addons/rewrite-header.ts"),
      "--set",
      "rewrite-header.value=socksmith-test",
      "-s",
      join(import.meta.dirname, "../../addons/block-hosts.ts"),
      "--set",
      "block-hosts.cidrs=10.0.0.0/8",
    ]);
    const r = await curl(port, "/ua");
    expect(r.body).toBe("served /ua ua=socksmith-test");
    await eventually(
      async () => stdout.join("\n"),
      (t) => /rewrote=User-Agent/.test(t),
    );
    expect(stdout.join("\n")).toMatch(/CONNECT 127\.0\.0\.1:\d+ 00 ok .*rewrote=User-Agent/);
  });

  it("a hook that throws is logged with the addon's own line, and the session goes on", async () => {
    const file = join(dir, "thrower.ts");
    writeFileSync(file, addonSource(`  name: "thrower",\n  onRequest() {\n    throw new Error("kaboom");\n  },`));
    const { port, stderr } = await runWith(["-s", file]);
    expect((await curl(port, "/ok")).code).toBe(0);
    await eventually(
      async () => stderr.join("\n"),
      (t) => /kaboom/.test(t),
    );
    expect(stderr.join("\n")).toMatch(/addon thrower: onRequest threw at .*thrower\.ts:5:\d+: kaboom \(session #1\)/);
  });

  it("bad addons stop the start with a clear line: exit 1 for a broken file, 2 for a bad --set", async () => {
    const broken = join(dir, "broken.ts");
    writeFileSync(broken, "export default { onRequest( };\n");
    const run1 = spawn(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", "-s", broken], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: mkdtempSync(join(dir, "cwd-")),
    });
    children.push(run1);
    let err1 = "";
    run1.stderr!.on("data", (d: Buffer) => (err1 += d));
    expect((await once(run1, "exit"))[0]).toBe(1);
    expect(err1).toMatch(/broken\.ts:1:\d+: /);

    const run2 = spawn(
      process.execPath,
      [CLI, "run", "--headless", "-l", "127.0.0.1:0", "-s", join(import.meta.dirname, "../../addons/latency.ts"), "--set", "latncy.ms=5"],
      { stdio: ["ignore", "pipe", "pipe"], cwd: mkdtempSync(join(dir, "cwd-")) },
    );
    children.push(run2);
    let err2 = "";
    run2.stderr!.on("data", (d: Buffer) => (err2 += d));
    expect((await once(run2, "exit"))[0]).toBe(2);
    expect(err2).toMatch(/--set: no addon named "latncy"/);
  });
});
