/**
 * The watchdog (issue 11 part 8) for real: the CLI in a child process, an addon hook that never
 * returns, a real SIGTERM / SIGINT. Before the watchdog such a process ignored both for good.
 * Also: a block is reported without any signal, a hook that blocks for a while and then returns
 * still gets the graceful shutdown, and the worker alone ends a process blocked past its limit.
 * Loopback only; every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SocksClient } from "socks";
import { runProxy, type CliProxy } from "../support/cli.js";
import { sleep, withTimeout } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-watchdog-"));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Starts the proxy with one addon whose onRequest body is `body`. */
async function proxyWith(name: string, body: string, args: string[] = []): Promise<{ proxy: CliProxy; file: string }> {
  const cwd = mkdtempSync(join(dir, "cwd-"));
  const file = join(cwd, `${name}.ts`);
  writeFileSync(file, `export default {\n  name: "${name}",\n  onRequest() {\n${body}\n  },\n};\n`);
  const proxy = await runProxy(["--no-capture", "-s", file, ...args], cwd, children);
  return { proxy, file };
}

/** Sends one CONNECT (its onRequest is what blocks); settles however the proxy answers, or not. */
function request(port: number): void {
  const proxy = { host: "127.0.0.1", port, type: 5 as const };
  const client = new SocksClient({ proxy, command: "connect", destination: { host: "127.0.0.1", port: 9 }, timeout: 10_000 });
  client.on("error", () => {});
  client.connect();
}

/** The exit code and signal, within `ms`. */
async function exited(proxy: CliProxy, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = proxy.child;
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await withTimeout(once(child, "exit"), ms, "the proxy did not exit")) as [number | null, NodeJS.Signals | null];
  return { code, signal };
}

async function stderrLine(proxy: CliProxy, pattern: RegExp, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = proxy.stderr.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no stderr line like ${pattern} within ${ms} ms:\n${proxy.stderr.join("\n")}`);
    await sleep(50);
  }
}

describe("watchdog: a hook that never returns", () => {
  it("run --max-block ends the process by itself once a hook has blocked that long, naming the limit", async () => {
    const { proxy, file } = await proxyWith("stuck", "    while (true) {}", ["--max-block", "1s"]);
    request(proxy.port);
    const { code, signal } = await exited(proxy, 8_000);
    expect(signal ?? code).toBe("SIGKILL");
    const line = await stderrLine(proxy, /--max-block 1\.0 s reached/, 1_000);
    expect(line).toContain(`addon stuck's onRequest (${file}:3:3)`);
  });

  it("SIGTERM still stops the process, and stderr names the addon, the hook, its file:line and the session", async () => {
    const { proxy, file } = await proxyWith("spin", `    console.error("hook entered");\n    while (true) {}`);
    request(proxy.port);
    await stderrLine(proxy, /hook entered/, 5_000); // the hook is spinning (long before any block report)
    proxy.child.kill("SIGTERM");
    const { code, signal } = await exited(proxy, 8_000);
    expect(signal ?? code).toBe("SIGKILL");
    const line = await stderrLine(proxy, /SIGTERM received/, 1_000);
    expect(line).toContain(`addon spin's onRequest (${file}:3:3)`);
    expect(line).toContain("for session #1");
    expect(line).toContain("exiting now");
  }, 20_000);

  it("a blocked loop is reported without a signal (addon, hook, file, session), and SIGINT stops it", async () => {
    const { proxy, file } = await proxyWith("spin", "    for (;;) {}");
    request(proxy.port);
    const report = await stderrLine(proxy, /event loop has been blocked/, 8_000);
    expect(report).toMatch(/^error: the event loop has been blocked for \d+\.\d s in addon spin's onRequest /);
    expect(report).toContain(`(${file}:3:3)`);
    expect(report).toContain("for session #1");
    expect(report).toContain("SIGINT/SIGTERM still stop the process");
    proxy.child.kill("SIGINT");
    const { code, signal } = await exited(proxy, 8_000);
    expect(signal ?? code).toBe("SIGKILL");
    expect(await stderrLine(proxy, /SIGINT received/, 1_000)).toContain("addon spin's onRequest");
  }, 25_000);

  it("a hook that blocks for a while and returns: SIGTERM during it still stops gracefully (exit 0)", async () => {
    const { proxy } = await proxyWith(
      "slow",
      `    console.error("hook entered");\n    const until = Date.now() + 700;\n    while (Date.now() < until) {}\n    return { deny: 2 };`,
    );
    request(proxy.port);
    await stderrLine(proxy, /hook entered/, 5_000); // the signal comes during the 700 ms block
    proxy.child.kill("SIGTERM");
    const { code, signal } = await exited(proxy, 8_000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(proxy.stderr.some((l) => /exiting now/.test(l))).toBe(false);
    expect(proxy.stderr.some((l) => /^SIGTERM/.test(l))).toBe(true); // the proxy's own shutdown ran
  }, 20_000);
});

describe("watchdog: a hook that blocks for longer than the report threshold, then returns", () => {
  it("is reported while it blocks, logged once the loop runs again, and the proxy still stops gracefully", async () => {
    const { proxy } = await proxyWith("stall", "    const until = Date.now() + 2_600;\n    while (Date.now() < until) {}\n    return { deny: 2 };");
    request(proxy.port);
    const report = await stderrLine(proxy, /event loop has been blocked/, 6_000);
    expect(report).toContain("in addon stall's onRequest");
    expect(await stderrLine(proxy, /runs again/, 6_000)).toMatch(/^warn: the event loop runs again after \d\.\d s blocked$/);
    const { code, signal } = await proxy.stop().then((c) => ({ code: c, signal: proxy.child.signalCode }));
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  }, 20_000);
});

describe("watchdog worker alone", () => {
  it("ends a process whose event loop stays blocked past exitAfterMs, with a line naming the limit", async () => {
    // A main thread that starts the worker and then never yields (and never beats).
    const worker = join(import.meta.dirname, "../../dist/watchdog-worker.js");
    const script = `
      import { Worker } from "node:worker_threads";
      const state = new SharedArrayBuffer(7 * 4);
      const view = new Int32Array(state); view[2] = view[3] = view[4] = -1;
      const w = new Worker(${JSON.stringify(worker)}, { workerData: { state, reportAfterMs: 300, exitAfterMs: 1000, signalWaitMs: 2000, format: "json" } });
      w.unref();
      setTimeout(() => { for (;;) {} }, 100);
    `;
    const main = join(mkdtempSync(join(dir, "alone-")), "blocked.mjs");
    writeFileSync(main, script);
    const child = spawn(process.execPath, [main], { stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code, signal] = (await withTimeout(once(child, "exit"), 8_000, "the blocked process did not exit")) as [number | null, NodeJS.Signals | null];
    expect(signal ?? code).toBe("SIGKILL");
    const lines = stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; message: string; inHook: boolean; blockedMs: number });
    expect(lines[0]).toMatchObject({ level: "error", inHook: false });
    expect(lines[0]!.message).toMatch(/^the event loop has been blocked for \d\.\d s before any addon hook ran/);
    expect(lines.at(-1)!.message).toContain("--max-block 1.0 s reached");
    expect(lines.at(-1)!.blockedMs).toBeGreaterThanOrEqual(1000);
  }, 15_000);
});
