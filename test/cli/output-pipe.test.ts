/**
 * `socksmith show 1 | head -1` and `sessions | head -1`: the reader of stdout goes away after
 * one line. The command stops quietly with status 0 (as `git log | head` does): no EPIPE stack
 * trace. The capture holds more output than a pipe buffers, so the writes really fail.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, runProxy } from "../support/cli.js";
import { openTunnel, startEchoServer, withTimeout } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-pipe-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 256 KiB of short text lines: `show --max-bytes 0` prints one output line per line. */
const PAYLOAD = Buffer.from(Array.from({ length: 16 * 1024 }, (_, i) => `line ${String(i).padStart(8, "0")}\n`).join(""));

beforeAll(async () => {
  const echo = await startEchoServer();
  try {
    const proxy = await runProxy(["-w", "cap.db"], dir, children);
    const tunnel = await openTunnel(proxy.port, echo.port);
    tunnel.write(PAYLOAD);
    await tunnel.read(PAYLOAD.length, 10_000);
    tunnel.end();
    await tunnel.readToEnd();
    expect(await proxy.stop()).toBe(0);
  } finally {
    await echo.close();
  }
  // 3000 more sessions (copies of the first), so that `sessions --all` prints ~300 KB too.
  const db = new Database(join(dir, "cap.db"));
  const columns = (db.prepare("SELECT name FROM pragma_table_info('sessions')").all() as { name: string }[]).map((c) => c.name).filter((c) => c !== "id");
  db.prepare(
    `WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 3000)
     INSERT INTO sessions (id, ${columns.join(", ")}) SELECT 1 + k, ${columns.join(", ")} FROM sessions, n WHERE sessions.id = 1`,
  ).run();
  db.close();
}, 30_000);

/** Runs the CLI, reads until the first line, then closes the pipe (as `head -1` exits). */
async function firstLineThenClose(args: string[]): Promise<{ line: string; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const exit = once(child, "exit");
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  let out = "";
  const line = await withTimeout(
    new Promise<string>((resolve) => {
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const end = out.indexOf("\n");
        if (end < 0) return;
        child.stdout!.destroy();
        resolve(out.slice(0, end));
      });
    }),
    10_000,
    "no first line",
  );
  const [code] = await withTimeout(exit, 10_000, `socksmith ${args.join(" ")} did not exit after its reader went away`);
  return { line, code: code as number | null, stderr };
}

describe("stdout closed early (| head -1)", () => {
  it("show 1 --max-bytes 0: exits 0, no stack trace", async () => {
    const r = await firstLineThenClose(["show", "1", "cap.db", "--max-bytes", "0"]);
    expect(r.line).toMatch(/^session 1 /);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("sessions --all: exits 0, no stack trace", async () => {
    const r = await firstLineThenClose(["sessions", "cap.db", "--all"]);
    expect(r.line).toMatch(/^ID\s+TIME/);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("show 1 --json (one large write): exits 0, no stack trace", async () => {
    const r = await firstLineThenClose(["show", "1", "cap.db", "--json"]);
    expect(r.line).toBe("{");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("run: a proxy whose log reader went away keeps serving (lines dropped, one notice on stderr)", async () => {
    const child = spawn(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--no-capture"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    const exit = once(child, "exit");
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    let out = "";
    const port = await withTimeout(
      new Promise<number>((resolve) => {
        child.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
          if (m === null) return;
          child.stdout!.destroy();
          resolve(Number(m[1]));
        });
      }),
      10_000,
      "proxy did not start",
    );
    const echo = await startEchoServer();
    try {
      // Each tunnel's log line is written to the closed pipe; the proxy goes on.
      for (let i = 0; i < 3; i++) {
        const tunnel = await openTunnel(port, echo.port);
        tunnel.write(Buffer.from(`ping ${i}`));
        expect((await tunnel.read(6)).toString()).toBe(`ping ${i}`);
        tunnel.end();
        await tunnel.readToEnd();
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await echo.close();
    }
    expect(child.exitCode).toBeNull();
    child.kill("SIGINT");
    const [code] = await withTimeout(exit, 10_000, "proxy did not stop");
    expect(code).toBe(0);
    expect(stderr).toContain("stdout closed (EPIPE)");
    expect(stderr).not.toMatch(/Error|\n\s+at /);
  });
});
