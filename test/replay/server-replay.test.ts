/**
 * Server replay end to end: sessions recorded through the real CLI against local servers, the
 * servers stopped, then `socksmith run --server-replay FILE` answers curl, a raw SOCKS client and
 * a UDP client from the recording alone.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CaptureReader } from "../../src/store/reader.js";
import { CLI, runProxy, udpExchange } from "../support/cli.js";
import { RawClient, hex, openTunnel, sleep, startServer, withTimeout } from "../support/net.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-serve-"));
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
let n = 0;
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const run = (args: string[]) => runProxy(args, root, children);

function curl(port: number, url: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-s", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${port}`, url], (err, stdout) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout }),
    );
  });
}

/** An HTTP server that says which path it was asked for, and how many requests it has had. */
async function httpServer() {
  let count = 0;
  const server = createHttpServer((req, res) => res.end(`recorded answer to ${req.url} (#${++count})`));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  let open = true;
  const close = async () => {
    if (!open) return;
    open = false;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  cleanups.push(close);
  return { port: (server.address() as AddressInfo).port, close };
}

const capture = () => join(root, `c${++n}.db`);

function sessions(file: string) {
  const reader = new CaptureReader(file);
  try {
    return reader.sessions({ order: "oldest", limit: 1000 });
  } finally {
    reader.close();
  }
}

/** The messages of a session's "replay" events (served from another capture file). */
function servedEvents(file: string, id: number): string[] {
  const reader = new CaptureReader(file);
  try {
    return [...reader.events(id)].filter((e) => e.kind === "replay").map((e) => e.message);
  } finally {
    reader.close();
  }
}

describe("socksmith run --server-replay", () => {
  it("serves curl the recorded HTTP answer with the real server stopped; a second ask is denied with 0x02; --replay-reuse answers again", async () => {
    const http = await httpServer();
    const recording = capture();
    const recorder = await run(["-w", recording]);
    expect((await curl(recorder.port, `http://localhost:${http.port}/status`)).body).toBe("recorded answer to /status (#1)");
    expect(await recorder.stop()).toBe(0);
    await http.close();

    const served = capture();
    const mock = await run(["-w", served, "--server-replay", recording]);
    expect(mock.stdout.join("\n")).toContain(
      `server replay from ${recording}: 1 TCP recording of 1 destination, 0 UDP exchanges (each answers once); anything else is denied (0x02)`,
    );
    expect(await curl(mock.port, `http://localhost:${http.port}/status`)).toEqual({ code: 0, body: "recorded answer to /status (#1)" });
    // Used once: the next request is a miss, refused with REP 02 (curl: 97, proxy handshake failed).
    const raw = await RawClient.connect(mock.port);
    const name = Buffer.from("localhost");
    raw.write(Buffer.concat([hex("050100"), Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([http.port >> 8, http.port & 0xff])]));
    expect((await raw.read(2)).toString("hex")).toBe("0500");
    expect((await raw.read(2)).toString("hex")).toBe("0502");
    raw.destroy();
    expect((await curl(mock.port, `http://localhost:${http.port}/status`)).code).toBe(97);
    expect(mock.stderr.join("\n")).toMatch(/server replay: no recording of localhost:\d+ left: denied with 0x02/);
    expect(await mock.stop()).toBe(0);

    const rows = sessions(served);
    // Served from another file: served_from names sessions of this file only, so an event says which.
    expect(rows.map((s) => [s.reply, s.served_from, s.bytes_down_sent])).toEqual([
      [0, null, rows[0]!.bytes_down_received],
      [2, null, 0],
      [2, null, 0],
    ]);
    expect(rows[0]!.bytes_down_sent).toBeGreaterThan(100);
    expect(servedEvents(served, rows[0]!.id)).toEqual([`served from ${recording} session 1`]);

    const reuse = await run(["--no-capture", "--server-replay", recording, "--replay-reuse"]);
    for (let i = 0; i < 3; i++) expect((await curl(reuse.port, `http://localhost:${http.port}/status`)).body).toBe("recorded answer to /status (#1)");
    expect(await reuse.stop()).toBe(0);
  }, 30_000);

  it("serves a 24 MiB recorded download byte-exact to curl (read from the file in pages)", async () => {
    const big = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
    const server = createHttpServer((_req, res) => res.end(big));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const fetch = (proxyPort: number) =>
      new Promise<{ code: number; body: Buffer }>((resolve) =>
        execFile(
          "curl",
          ["-s", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${proxyPort}`, `http://localhost:${port}/big`],
          { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
          (err, stdout) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, body: stdout }),
        ),
      );
    const recording = capture();
    const recorder = await run(["-w", recording]);
    expect((await fetch(recorder.port)).body.equals(big)).toBe(true);
    expect(await recorder.stop()).toBe(0);
    server.closeAllConnections();

    const mock = await run(["--no-capture", "--server-replay", recording]);
    const served = await fetch(mock.port);
    expect(served.code).toBe(0);
    expect(served.body.equals(big)).toBe(true);
    expect(await mock.stop()).toBe(0);
  }, 30_000);

  it("picks among recordings of one destination by the client's first bytes", async () => {
    const http = await httpServer();
    const recording = capture();
    const recorder = await run(["-w", recording]);
    for (const path of ["/alpha", "/beta", "/gamma"]) expect((await curl(recorder.port, `http://localhost:${http.port}${path}`)).code).toBe(0);
    expect(await recorder.stop()).toBe(0);
    await http.close();

    const mock = await run(["--no-capture", "--server-replay", recording]);
    // Asked in another order than recorded: each gets its own answer.
    expect((await curl(mock.port, `http://localhost:${http.port}/gamma`)).body).toBe("recorded answer to /gamma (#3)");
    expect((await curl(mock.port, `http://localhost:${http.port}/alpha`)).body).toBe("recorded answer to /alpha (#1)");
    expect((await curl(mock.port, `http://localhost:${http.port}/beta`)).body).toBe("recorded answer to /beta (#2)");
    expect(await mock.stop()).toBe(0);

    // --replay-filter: only what it matches answers.
    const filtered = await run(["--no-capture", "--server-replay", recording, "--replay-filter", "id:2"]);
    expect(filtered.stdout.join("\n")).toContain("(filter id:2): 1 TCP recording of 1 destination");
    expect((await curl(filtered.port, `http://localhost:${http.port}/alpha`)).body).toBe("recorded answer to /beta (#2)");
    expect((await curl(filtered.port, `http://localhost:${http.port}/alpha`)).code).toBe(97);
    expect(await filtered.stop()).toBe(0);
  }, 30_000);

  it("replays a server that speaks first, turn by turn, and closes after the last recorded turn", async () => {
    // A tiny SMTP-like server: a banner, then one answer per line.
    const server = await startServer((socket) => {
      socket.write("220 mock ready\r\n");
      let buffered = "";
      socket.on("data", (d) => {
        buffered += d.toString();
        let i: number;
        while ((i = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, i).trim();
          buffered = buffered.slice(i + 1);
          socket.write(line === "QUIT" ? "221 bye\r\n" : `250 ok ${line}\r\n`);
          if (line === "QUIT") socket.end();
        }
      });
    });
    cleanups.push(() => server.close());
    const conversation = async (port: number): Promise<string[]> => {
      const c = await openTunnel(port, server.port);
      const lines: string[] = [];
      const line = async () => {
        let text = "";
        while (!text.endsWith("\r\n")) text += (await c.read(1)).toString();
        lines.push(text.trimEnd());
      };
      await line();
      for (const command of ["HELO me", "MAIL FROM:<a@b>", "QUIT"]) {
        // Each command in two writes: the turn is answered once all its bytes are in.
        c.write(Buffer.from(command.slice(0, 3)));
        await sleep(30);
        c.write(Buffer.from(`${command.slice(3)}\r\n`));
        await line();
      }
      await withTimeout(c.readToEnd(), 3000, "no FIN after the last turn");
      c.end();
      return lines;
    };
    const recording = capture();
    const recorder = await run(["-w", recording]);
    const live = await conversation(recorder.port);
    expect(live).toEqual(["220 mock ready", "250 ok HELO me", "250 ok MAIL FROM:<a@b>", "221 bye"]);
    expect(await recorder.stop()).toBe(0);
    await server.close();

    const mock = await run(["--no-capture", "--server-replay", recording]);
    expect(await conversation(mock.port)).toEqual(live);
    expect(await mock.stop()).toBe(0);
  }, 30_000);

  it("answers a UDP datagram with the recorded reply, and drops one to a destination never recorded", async () => {
    const echo = createSocket("udp4");
    echo.on("message", (msg, rinfo) => echo.send(Buffer.concat([Buffer.from("echo:"), msg]), rinfo.port, rinfo.address));
    echo.bind(0, "127.0.0.1");
    await once(echo, "listening");
    const echoPort = echo.address().port;
    const recording = capture();
    const recorder = await run(["-w", recording]);
    const live = await udpExchange(recorder.port, echoPort, ["ping 1", "ping 2"]);
    expect(live).toEqual(["echo:ping 1", "echo:ping 2"]);
    expect(await recorder.stop()).toBe(0);
    echo.close();

    const served = capture();
    const mock = await run(["-w", served, "--server-replay", recording]);
    expect(mock.stdout.join("\n")).toContain("2 UDP exchanges");
    // Asked in the other order: each gets its own recorded answer, from the recorded peer.
    expect(await udpExchange(mock.port, echoPort, ["ping 2", "ping 1"])).toEqual(["echo:ping 2", "echo:ping 1"]);
    // Nothing recorded for this port: dropped, no answer.
    expect(await udpExchange(mock.port, echoPort + 1 === 65536 ? 1 : echoPort + 1, ["anyone?"], 300)).toEqual([]);
    expect(await mock.stop()).toBe(0);
    const reader = new CaptureReader(served);
    try {
      const [first] = reader.sessions({ order: "oldest" });
      expect(first!.served_from).toBeNull();
      expect([...reader.events(first!.id)].filter((e) => e.kind === "replay").map((e) => e.message)).toEqual([`served from ${recording} session 1`]);
      const datagrams = [...reader.datagrams(first!.id)];
      expect(datagrams.map((d) => [d.direction, d.verdict, d.data.toString()])).toEqual([
        ["up", "dropped", "ping 2"],
        ["down", "injected", "echo:ping 2"],
        ["up", "dropped", "ping 1"],
        ["down", "injected", "echo:ping 1"],
      ]);
      expect(datagrams[1]).toMatchObject({ from_host: "127.0.0.1", from_port: echoPort });
    } finally {
      reader.close();
    }
  }, 30_000);

  it("tells addons the session is served from a recording; --replay-miss forward dials what was not recorded", async () => {
    const http = await httpServer();
    const recording = capture();
    const recorder = await run(["-w", recording]);
    expect((await curl(recorder.port, `http://localhost:${http.port}/recorded`)).code).toBe(0);
    expect(await recorder.stop()).toBe(0);

    const addon = join(root, "replay-tag.ts");
    writeFileSync(
      addon,
      `import type { Addon } from "socksmith/addon";
export default {
  onRequest(_request, ctx) {
    ctx.tag("replay", ctx.session.replay === undefined ? "live" : ctx.session.replay.kind + " of " + ctx.session.replay.of);
    ctx.tag("replayed", String(ctx.replayed));
  },
} satisfies Addon;
`,
    );
    const served = capture();
    const mock = await run(["-w", served, "-s", addon, "--server-replay", recording, "--replay-miss", "forward"]);
    expect((await curl(mock.port, `http://localhost:${http.port}/recorded`)).body).toBe("recorded answer to /recorded (#1)");
    // Not recorded: forwarded to the live server, which has now had its second request.
    expect((await curl(mock.port, `http://127.0.0.1:${http.port}/live`)).body).toBe("recorded answer to /live (#2)");
    expect(await mock.stop()).toBe(0);
    const rows = sessions(served);
    expect(rows.map((s) => [JSON.parse(s.tags), s.served_from])).toEqual([
      [{ replay: "server of 1", replayed: "true" }, null],
      [{ replay: "live", replayed: "false" }, null],
    ]);
  }, 30_000);

  it("refuses a capture file it cannot read (exit 1), and replay options without --server-replay (exit 2)", async () => {
    const start = (args: string[]) =>
      new Promise<{ code: number; stderr: string }>((resolve) =>
        execFile(process.execPath, [CLI, "run", "--headless", "--no-capture", "-l", "127.0.0.1:0", ...args], (err, _out, stderr) =>
          resolve({ code: err === null ? 0 : Number(err.code), stderr }),
        ),
      );
    const missing = join(root, "nothing-here.db");
    const result = await start(["--server-replay", missing]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${missing}: no such capture file`);
    const stray = await start(["--replay-reuse"]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("--replay-reuse only applies with --server-replay FILE");
  });
});
