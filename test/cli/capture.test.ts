/**
 * Capture as a user meets it: `socksmith run` (a child process) writing ./socksmith.db or -w FILE
 * while curl and raw clients go through it, then `sessions`, `show` and `export` on the file;
 * kill -9 in the middle of a transfer; start-up errors.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, runProxy, type CliProxy } from "../support/cli.js";
import { openTunnel, startServer, until } from "../support/net.js";
import { CaptureReader } from "../../src/store/reader.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-capture-"));
const children: ChildProcess[] = [];
let http: Server;
let httpPort: number;

beforeAll(async () => {
  http = createServer((req, res) => res.end(`hello ${req.url}`));
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  httpPort = (http.address() as AddressInfo).port;
});
afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

const start = (args: string[], cwd: string): Promise<CliProxy> => runProxy(args, cwd, children);
const stop = (p: CliProxy): Promise<number | null> => p.stop();

function cli(args: string[], cwd = root): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout: stdout.toString("utf8"), stderr: stderr.toString() });
    });
  });
}

function curl(args: string[]): Promise<{ code: number; body: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-s", "--max-time", "5", ...args], (err, stdout) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout }),
    );
  });
}

describe("socksmith run: capture", () => {
  it("captures to ./socksmith.db (0600) by default; sessions, show and export read it back", async () => {
    const cwd = mkdtempSync(join(root, "default-"));
    const proxy = await start([], cwd);
    expect(proxy.stdout[0]).toMatch(/capturing to socksmith\.db/);
    expect((await curl(["--socks5-hostname", `127.0.0.1:${proxy.port}`, `http://localhost:${httpPort}/one`])).body).toBe("hello /one");
    expect((await curl(["--socks4", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}/two`])).body).toBe("hello /two");
    expect(await stop(proxy)).toBe(0);
    const file = join(cwd, "socksmith.db");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-payload`).mode & 0o777).toBe(0o600);
    // The log line's #N is the capture's id.
    expect(proxy.stdout.join("\n")).toMatch(/#1 127\.0\.0\.1:\d+ socks5 CONNECT localhost:/);

    const table = await cli(["sessions"], cwd);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TIME\s+CLIENT\s+V\s+CMD\s+TARGET/);
    expect(lines[1]).toMatch(new RegExp(`^1 .* 5\\s+connect\\s+localhost:${httpPort}(\\s|$).*00 ok\\s+ok .*http localhost:${httpPort}`));
    expect(lines[2]).toMatch(new RegExp(`^2 .* 4\\s+connect\\s+127\\.0\\.0\\.1:${httpPort}\\s`));

    const json = await cli(["sessions", "--json", "--filter", "v:4"], cwd);
    const rows = JSON.parse(json.stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: 2, version: "4", command: "connect", status: "ok", protocol: "http", protocolInfo: { method: "GET", path: "/two" } });

    const show = await cli(["show", "1"], cwd);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/target:\s+localhost:\d+/);
    expect(show.stdout).toMatch(/>> .* client → target #0(–\d+)? \(\d+ bytes/);
    expect(show.stdout).toContain("GET /one HTTP/1.1");
    expect(show.stdout).toMatch(/<< .* target → client/);
    expect(show.stdout).toContain("hello /one");
    const hex = await cli(["show", "1", "--hex"], cwd);
    expect(hex.stdout).toMatch(/00000000 {2}47 45 54 20 2f 6f 6e 65/);

    const out = join(cwd, "all.json");
    const exported = await cli(["export", "--format", "json", "-o", out], cwd);
    expect(exported.code).toBe(0);
    const doc = JSON.parse(readFileSync(out, "utf8"));
    expect(doc.sessions.map((s: { id: number }) => s.id)).toEqual([1, 2]);
    const up = Buffer.concat(
      doc.sessions[0].chunks.filter((c: { direction: string }) => c.direction === "up").map((c: { data: string }) => Buffer.from(c.data, "base64")),
    );
    expect(up.toString()).toMatch(/^GET \/one HTTP\/1\.1\r\n/);
    expect(statSync(out).mode & 0o777).toBe(0o600);

    const rawDir = join(cwd, "raw");
    expect((await cli(["export", "--format", "raw", "-o", rawDir, "--filter", "id:2"], cwd)).code).toBe(0);
    expect(readdirSync(rawDir).sort()).toEqual(["2-down.bin", "2-up.bin"]);
    expect(readFileSync(join(rawDir, "2-down.bin"), "latin1")).toMatch(/hello \/two$/);

    const pcap = join(cwd, "all.pcapng");
    expect((await cli(["export", "--format", "pcapng", "-o", pcap], cwd)).code).toBe(0);
    const bytes = readFileSync(pcap);
    expect(bytes.readUInt32LE(0)).toBe(0x0a0d0d0a);
    expect(bytes.includes(Buffer.from("GET /one HTTP/1.1"))).toBe(true);
  });

  it("-w FILE appends runs to one file; ids keep counting; --no-capture writes nothing", async () => {
    const cwd = mkdtempSync(join(root, "w-"));
    const file = join(cwd, "mine.db");
    for (const path of ["/a", "/b"]) {
      const proxy = await start(["-w", file], cwd);
      await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}${path}`]);
      expect(await stop(proxy)).toBe(0);
    }
    const rows = JSON.parse((await cli(["sessions", file, "--json"])).stdout);
    expect(rows.map((r: { id: number; run: number }) => [r.id, r.run])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    const none = await start(["--no-capture"], cwd);
    expect(none.stdout[0]).toMatch(/not capturing/);
    await curl(["--socks5", `127.0.0.1:${none.port}`, `http://127.0.0.1:${httpPort}/`]);
    expect(await stop(none)).toBe(0);
    expect(existsSync(join(cwd, "socksmith.db"))).toBe(false);
  });

  it("a capture file that cannot be written stops the start with exit 1 and says why", async () => {
    const r = await cli(["run", "--headless", "-l", "127.0.0.1:0", "-w", join(root, "no-such-dir", "x.db")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot use capture file .*x\.db: cannot open the file .*--no-capture/);
    const notOurs = join(root, "notes.db");
    const db = new Database(notOurs);
    db.exec("CREATE TABLE notes (x)");
    db.close();
    const r2 = await cli(["run", "--headless", "-l", "127.0.0.1:0", "-w", notOurs]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/not a socksmith capture/);
  });

  it("after kill -9 mid-transfer the file is intact, holds the session and its bytes, and the next run marks it interrupted", async () => {
    const cwd = mkdtempSync(join(root, "kill-"));
    const file = join(cwd, "crash.db");
    const sink = await startServer((s) => s.on("data", () => {}));
    try {
      const proxy = await start(["-w", file], cwd);
      const c = await openTunnel(proxy.port, sink.port);
      const block = Buffer.alloc(64 * 1024, 0x61);
      for (let i = 0; i < 16; i++) c.write(block);
      // Until the file holds every byte (flushed every 100 ms), then a crash with the session open.
      const storedUp = (): number => {
        try {
          const db = new Database(file, { readonly: true });
          try {
            const sql = `SELECT coalesce(sum(CASE WHEN payload_at IS NULL THEN length(data) ELSE payload_data END), 0) AS n
              FROM chunks WHERE session_id = 1 AND direction = 'up'`;
            return (db.prepare(sql).get() as { n: number }).n;
          } finally {
            db.close();
          }
        } catch {
          return 0; // not readable yet
        }
      };
      await until(() => storedUp() === 16 * 64 * 1024, 10_000, "every byte in the capture file");
      proxy.child.kill("SIGKILL");
      await proxy.exit;
      c.destroy();

      const db = new Database(file, { readonly: true });
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      const row = db.prepare("SELECT status, requested_port FROM sessions WHERE id = 1").get();
      expect(row).toEqual({ status: "open", requested_port: sink.port });
      db.close();
      // Every byte, read back (from the payload file for the large reads) as it was sent.
      const reader = new CaptureReader(file);
      const up = [...reader.chunks(1)].filter((c) => c.direction === "up").map((c) => c.data);
      reader.close();
      const all = Buffer.concat(up);
      expect(all.length).toBe(16 * 64 * 1024);
      expect(all.every((b) => b === 0x61)).toBe(true);

      const again = await start(["-w", file], cwd);
      expect(again.stderr.join("\n")).toMatch(/marked 1 session of an earlier run as interrupted/);
      expect(await stop(again)).toBe(0);
      const rows = JSON.parse((await cli(["sessions", file, "--json", "--filter", "status:interrupted"])).stdout);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ id: 1, status: "interrupted", closeReason: "interrupted" });
    } finally {
      await sink.close();
    }
  });

  it("prune deletes sessions by filter and gives the payload file's space back; the rest reads back whole", async () => {
    const cwd = mkdtempSync(join(root, "prune-"));
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 10)) & 0xff;
    const big = createServer((_req, res) => res.end(body));
    big.listen(0, "127.0.0.1");
    await once(big, "listening");
    const port = (big.address() as AddressInfo).port;
    try {
      const proxy = await start([], cwd);
      for (const path of ["keep", "drop"]) {
        const got = await new Promise<number>((resolve) =>
          execFile(
            "curl",
            [
              "-s",
              "--max-time",
              "5",
              "-o",
              "/dev/null",
              "-w",
              "%{size_download}",
              "--socks5-hostname",
              `127.0.0.1:${proxy.port}`,
              `http://localhost:${port}/${path}`,
            ],
            (_e, out) => resolve(Number(out)),
          ),
        );
        expect(got).toBe(body.length);
      }
      expect(await stop(proxy)).toBe(0);
      const payload = join(cwd, "socksmith.db-payload");
      const before = statSync(payload).size;
      expect(before).toBeGreaterThanOrEqual(2 * body.length);

      const none = await cli(["prune"], cwd);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/say which sessions to delete with --filter and\/or --older-than/);
      const dry = await cli(["prune", "-f", '~"GET /drop"', "--dry-run"], cwd);
      expect(dry.stdout).toMatch(/socksmith\.db: would delete 1 session \(of /);
      expect(statSync(payload).size).toBe(before);
      const pruned = await cli(["prune", "-f", '~"GET /drop"'], cwd);
      expect(pruned.code).toBe(0);
      expect(pruned.stdout).toMatch(/socksmith\.db: deleted 1 session; .* → .* on disk/);
      expect(statSync(payload).size).toBeLessThan(before - body.length / 2);

      const rows = JSON.parse((await cli(["sessions", "--json"], cwd)).stdout) as { id: number }[];
      expect(rows.map((r) => r.id)).toEqual([1]);
      const out = join(cwd, "streams");
      expect((await cli(["export", "--format", "raw", "-o", out], cwd)).code).toBe(0);
      const down = readFileSync(join(out, "1-down.bin"));
      expect(down.subarray(down.length - body.length).equals(body)).toBe(true);
    } finally {
      big.closeAllConnections();
      await new Promise((r) => big.close(r));
    }
  });

  it("stores a throwing addon's error with its file:line as an event that show prints", async () => {
    const cwd = mkdtempSync(join(root, "addon-"));
    const addon = join(cwd, "thrower.ts");
    writeFileSync(
      addon,
      'import type { Addon } from "socksmith/addon";\n\nexport default {\n  onRequest(req, ctx) {\n    ctx.log("looking at " + req.host);\n    throw new Error("kaboom");\n  },\n} satisfies Addon;\n',
    );
    const proxy = await start(["-s", addon], cwd);
    await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}/`]);
    expect(await stop(proxy)).toBe(0);
    const show = await cli(["show", "1"], cwd);
    expect(show.stdout).toMatch(/addon-log \[thrower\]: looking at 127\.0\.0\.1/);
    expect(show.stdout).toMatch(/hook-error threw \[thrower onRequest\] at .*thrower\.ts:6:\d+: kaboom\n/);
  });

  it("sessions/show/export give clear errors: bad filter (exit 2, with the column), unknown id, missing file", async () => {
    const cwd = mkdtempSync(join(root, "errors-"));
    const proxy = await start([], cwd);
    await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}/`]);
    expect(await stop(proxy)).toBe(0);
    const bad = await cli(["sessions", "--filter", "port:80 hots:x"], cwd);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/hots/);
    expect(bad.stderr).toContain("\n  port:80 hots:x\n          ^");
    const missing = await cli(["show", "99"], cwd);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no session 99/);
    const nofile = await cli(["sessions", join(cwd, "nope.db")]);
    expect(nofile.code).toBe(1);
    expect(nofile.stderr).toMatch(/no such capture file/);
  });
});
