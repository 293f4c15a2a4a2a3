/**
 * Client replay over real sockets: sessions recorded through a capturing proxy against local
 * servers, then replayed directly, through a SOCKS5 proxy (--via), and from the CLI.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SocksEngine } from "../../src/engine/index.js";
import { Recorder } from "../../src/store/recorder.js";
import { CaptureReader } from "../../src/store/reader.js";
import { replayClient } from "../../src/replay/client-replay.js";
import { parseVia } from "../../src/cli/commands/replay.js";
import { openTunnel, startServer } from "../support/net.js";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const root = mkdtempSync(join(tmpdir(), "socksmith-replay-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
let n = 0;

/** A server that answers each request line: "echo:<line>" and, when `counting`, the how-many-th connection it is. */
async function lineServer(counting: boolean) {
  let connections = 0;
  const server = await startServer((socket) => {
    const nth = ++connections;
    let buffered = "";
    socket.on("data", (d) => {
      buffered += d.toString();
      let i: number;
      while ((i = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        socket.write(`echo:${line}${counting ? ` #${nth}` : ""}\n`);
      }
    });
    socket.on("end", () => socket.end());
  });
  cleanups.push(() => server.close());
  return server;
}

/** Records one session that sends `lines` one turn at a time, through a capturing proxy. */
async function record(targetPort: number, lines: string[]): Promise<string> {
  const file = join(root, `r${++n}.db`);
  const recorder = new Recorder(file);
  const engine = new SocksEngine({ listen: [{ host: "127.0.0.1", port: 0 }], observer: recorder });
  const [bound] = await engine.start();
  const c = await openTunnel(bound!.port, targetPort);
  for (const line of lines) {
    c.write(Buffer.from(`${line}\n`));
    while ((await c.read(1)).toString() !== "\n");
  }
  c.end();
  await c.readToEnd();
  await new Promise((r) => setTimeout(r, 50));
  await engine.stop(200);
  await recorder.close();
  return file;
}

function session1(file: string) {
  const reader = new CaptureReader(file);
  cleanups.push(() => reader.close());
  return { reader, session: reader.session(1)!, chunks: [...reader.chunks(1)] };
}

describe("client replay", () => {
  it("re-sends the client's turns and finds the same answer from a deterministic server", async () => {
    const server = await lineServer(false);
    const file = await record(server.port, ["one", "two", "three"]);
    const { session, chunks } = session1(file);
    const result = await replayClient(session, chunks, { quietMs: 200 });
    expect(result).toMatchObject({ completed: true, match: true, sent: 14, turns: 3, expected: 29, received: 29 });
    expect(result.difference).toBeUndefined();
  });

  it("reports the first differing byte when the server answers differently the second time", async () => {
    const server = await lineServer(true);
    const file = await record(server.port, ["hello"]);
    const { session, chunks } = session1(file);
    const result = await replayClient(session, chunks, { quietMs: 200 });
    expect(result.completed).toBe(true);
    expect(result.match).toBe(false);
    // "echo:hello #1\n" then, replayed, "echo:hello #2\n": they differ at byte 12.
    expect(result.difference).toMatchObject({ offset: 12 });
    expect(result.difference!.expected).toContain("31");
    expect(result.difference!.actual).toContain("32");
  });

  it("goes through a SOCKS5 proxy with --via (with credentials)", async () => {
    const server = await lineServer(false);
    const file = await record(server.port, ["via"]);
    const { session, chunks } = session1(file);
    const { Credentials } = await import("../../src/engine/index.js");
    const credentials = new Credentials();
    credentials.add("u", "p");
    const proxy = new SocksEngine({ listen: [{ host: "127.0.0.1", port: 0 }], credentials });
    const [bound] = await proxy.start();
    cleanups.push(() => proxy.stop(100));
    const result = await replayClient(session, chunks, { quietMs: 200, via: { host: "127.0.0.1", port: bound!.port, user: "u", password: "p" } });
    expect(result).toMatchObject({ completed: true, match: true, via: { host: "127.0.0.1", port: bound!.port } });
    const refused = await replayClient(session, chunks, { quietMs: 200, via: { host: "127.0.0.1", port: bound!.port, user: "u", password: "wrong" } });
    expect(refused).toMatchObject({ completed: false });
    expect(refused.error).toMatch(/rejected the user name or password/);
  });

  it("parses --via URLs", () => {
    expect(parseVia("socks5://127.0.0.1:1080")).toEqual({ host: "127.0.0.1", port: 1080 });
    expect(parseVia("socks5://al%40ice:p%3Ass@[::1]:9050")).toEqual({ host: "::1", port: 9050, user: "al@ice", password: "p:ss" });
    expect(() => parseVia("http://x:1")).toThrow(/only socks5/);
    expect(() => parseVia("socks5://x")).toThrow(/needs a port/);
  });
});

describe("socksmith replay (CLI)", () => {
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { cwd: root }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
      );
    });
  }

  it("says when less was sent than recorded because the other side closed first", async () => {
    const server = await lineServer(false);
    const file = await record(server.port, ["one", "two", "three"]);
    // Another server at --target: it answers the first line and closes.
    const closer = await startServer((socket) => socket.once("data", () => socket.end("bye\n")));
    cleanups.push(() => closer.close());
    const text = await cli(["replay", "1", file, "--target", `127.0.0.1:${closer.port}`, "--quiet", "200ms", "--no-record"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/: sent 4 B of 14 B recorded \(the other side closed first\) in 3 turns; received 4 B \(recorded 29 B\): differs at byte 0/);
    const json = JSON.parse((await cli(["replay", "1", file, "--target", `127.0.0.1:${closer.port}`, "--quiet", "200ms", "--no-record", "--json"])).stdout);
    expect(json[0]).toMatchObject({ sent: 4, recordedSent: 14, completed: true, match: false });
  });

  it("replays, prints the comparison, records the replay with replay_of, and exits 1 when it cannot connect", async () => {
    const server = await lineServer(true);
    const file = await record(server.port, ["x"]);
    const text = await cli(["replay", "1", file, "--quiet", "200ms"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/replay of #1 → 127\.0\.0\.1:\d+: sent 2 B in 1 turn; received 10 B \(recorded 10 B\): differs at byte 8/);
    expect(text.stdout).toMatch(/recorded as session #2/);
    const json = await cli(["replay", "1", file, "--quiet", "200ms", "--json", "--no-record"]);
    const [result] = JSON.parse(json.stdout);
    expect(result).toMatchObject({ original: 1, completed: true, match: false, difference: { offset: 8 } });
    const rows = JSON.parse((await cli(["sessions", file, "--json"])).stdout);
    expect(rows.map((r: { id: number; replayOf: number | null }) => [r.id, r.replayOf])).toEqual([
      [1, null],
      [2, 1],
    ]);
    await server.close();
    const failed = await cli(["replay", "1", file, "--quiet", "200ms", "--no-record"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/failed: connect ECONNREFUSED/);
    const bad = await cli(["replay", "one", file]);
    expect(bad.code).toBe(2);
  });
});
