/**
 * Client replay of UDP associations, beyond the CLI round trips of datagram-replay.test.ts:
 * replayDatagrams on rows as the recorder stores them (what is re-sent, where, how it is paced,
 * how answers are compared), RFC 1929 through a running socksmith, `--target` with `--json`,
 * and the TUI's `r` (fileReplay, liveReplay) on a UDP session. Real loopback sockets only.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { replayDatagrams } from "../../src/replay/datagram-replay.js";
import { CaptureReader } from "../../src/store/reader.js";
import type { DatagramRow, SessionRow } from "../../src/store/schema.js";
import { runCommand } from "../../src/cli/commands/run.js";
import type { RunningProxy } from "../../src/cli/proxy.js";
import { fileReplay, liveReplay } from "../../src/cli/tui-replay.js";
import { CLI, replayJson, runProxy, udpExchange } from "../support/cli.js";
import { startServer } from "../support/net.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-udp-replay2-"));
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
let n = 0;
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Arrival {
  readonly data: string;
  readonly at: number;
  readonly from: { host: string; port: number };
}

/**
 * A UDP server on `host`: `answer` says what to send back for the nth datagram (from 1), or
 * undefined for no answer; `delayMs` holds each answer back.
 */
async function udpServer(answer: (msg: string, nth: number) => string | undefined, options: { host?: string; delayMs?: number } = {}) {
  const host = options.host ?? "127.0.0.1";
  const socket: UdpSocket = createSocket(host.includes(":") ? "udp6" : "udp4");
  const arrivals: Arrival[] = [];
  socket.on("message", (msg, rinfo) => {
    arrivals.push({ data: msg.toString(), at: Date.now(), from: { host: rinfo.address, port: rinfo.port } });
    const reply = answer(msg.toString(), arrivals.length);
    if (reply === undefined) return;
    const send = () => socket.send(reply, rinfo.port, rinfo.address);
    if (options.delayMs === undefined) send();
    else setTimeout(send, options.delayMs);
  });
  socket.bind(0, host);
  await once(socket, "listening");
  cleanups.push(() => void socket.close());
  return { host, port: socket.address().port, arrivals };
}

/** The session as far as replayDatagrams reads it (its id); the rest does not matter here. */
const association = { id: 1, command: "udp" } as SessionRow;

let seq = 0;
/** A datagram row as the recorder writes one: `peer` is where "up" went as the client wrote it, where "down" came from. */
function row(
  direction: "up" | "down",
  peer: { host: string; port: number },
  data: string,
  at: number,
  verdict: DatagramRow["verdict"] = "relayed",
): DatagramRow {
  const client = { host: "127.0.0.1", port: 40000 };
  const bytes = Buffer.from(data);
  return {
    id: ++seq,
    session_id: 1,
    seq,
    at,
    direction,
    peer_type: peer.host.includes(":") ? "ipv6" : /^[\d.]+$/.test(peer.host) ? "ipv4" : "domain",
    peer_host: peer.host,
    peer_port: peer.port,
    from_host: direction === "up" ? client.host : peer.host,
    from_port: direction === "up" ? client.port : peer.port,
    to_host: verdict === "dropped" ? null : direction === "up" ? peer.host : client.host,
    to_port: verdict === "dropped" ? null : direction === "up" ? peer.port : client.port,
    data: bytes,
    size: bytes.length,
    sent: null,
    verdict,
    reason: verdict === "dropped" ? "hook" : null,
    detail: null,
  };
}

/** An exchange recorded as: each payload sent to `peer`, then `answers(payload)` back from it. */
function recorded(peer: { host: string; port: number }, exchanges: Array<[string, string[]]>, gapMs = 10): DatagramRow[] {
  const rows: DatagramRow[] = [];
  let at = 1_000_000;
  for (const [payload, answers] of exchanges) {
    rows.push(row("up", peer, payload, at));
    for (const a of answers) rows.push(row("down", peer, a, (at += 1)));
    at += gapMs;
  }
  return rows;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { cwd: root }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr })),
  );
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("replayDatagrams over loopback", () => {
  it("re-sends only the relayed datagrams the client sent, each to its recorded peer from one socket, and compares the answers in order", async () => {
    const a = await udpServer((msg) => `A:${msg}`);
    const b = await udpServer((msg) => `B:${msg}`);
    const rows = [
      row("up", a, "a1", 1000),
      row("down", a, "A:a1", 1001),
      // An addon dropped it: the peer never got it, so the replay does not send it either.
      row("up", b, "never sent", 1002, "dropped"),
      row("up", b, "b1", 1003),
      row("down", b, "B:b1", 1004),
    ];
    let local: { host: string; port: number } | undefined;
    const result = await replayDatagrams(association, rows, { quietMs: 300, connected: (l) => (local = l) });
    expect(result).toMatchObject({ original: 1, completed: true, match: true, turns: 2, target: { host: "127.0.0.1", port: a.port } });
    expect(result.udp).toMatchObject({ sent: 2, expected: 2, received: 2 });
    expect(result.udp!.differingAnswer).toBeUndefined();
    expect(a.arrivals.map((x) => x.data)).toEqual(["a1"]);
    expect(b.arrivals.map((x) => x.data)).toEqual(["b1"]);
    // Both peers saw the port `connected` reported, as they would behind the proxy's relay.
    expect(local).toBeDefined();
    expect(a.arrivals[0]!.from.port).toBe(local!.port);
    expect(b.arrivals[0]!.from.port).toBe(local!.port);
    // The log for recording the replay: where each datagram went, and where each answer came from.
    expect(result.udp!.datagrams.map((d) => [d.direction, `${d.peer.host}:${d.peer.port}`, d.data.toString()])).toEqual([
      ["up", `127.0.0.1:${a.port}`, "a1"],
      ["down", `127.0.0.1:${a.port}`, "A:a1"],
      ["up", `127.0.0.1:${b.port}`, "b1"],
      ["down", `127.0.0.1:${b.port}`, "B:b1"],
    ]);
  });

  it("target replaces every recorded peer", async () => {
    const a = await udpServer((msg) => `A:${msg}`);
    const b = await udpServer((msg) => `B:${msg}`);
    const elsewhere = await udpServer((msg) => `A:${msg}`);
    const rows = [row("up", a, "one", 1000), row("down", a, "A:one", 1001), row("up", b, "two", 1002), row("down", b, "B:two", 1003)];
    const result = await replayDatagrams(association, rows, { quietMs: 300, target: { host: "127.0.0.1", port: elsewhere.port } });
    expect(a.arrivals).toEqual([]);
    expect(b.arrivals).toEqual([]);
    expect(elsewhere.arrivals.map((x) => x.data)).toEqual(["one", "two"]);
    // The first answer is the same; the second comes back as "A:two" where "B:two" was recorded.
    expect(result).toMatchObject({
      completed: true,
      match: false,
      target: { port: elsewhere.port },
      difference: { offset: 0, expected: "42 3a 74 77 6f", actual: "41 3a 74 77 6f" },
    });
    expect(result.udp).toMatchObject({ sent: 2, received: 2, differingAnswer: 1 });
  });

  it("names the first differing answer and the byte where it differs, and counts a missing answer as differing", async () => {
    const server = await udpServer((msg, nth) => (nth === 3 ? undefined : `reply to ${msg}${nth === 2 ? "!" : "."}`));
    const rows = recorded(server, [
      ["one", ["reply to one."]],
      ["two", ["reply to two."]],
      ["three", ["reply to three."]],
    ]);
    const result = await replayDatagrams(association, rows, { quietMs: 200 });
    expect(result).toMatchObject({
      completed: true,
      match: false,
      difference: { offset: 12, expected: "79 20 74 6f 20 74 77 6f 2e", actual: "79 20 74 6f 20 74 77 6f 21" },
    });
    expect(result.udp).toMatchObject({ sent: 3, expected: 3, received: 2, differingAnswer: 1 });

    // The same server, a fresh count: only the third answer is missing now.
    const again = await udpServer((msg, nth) => (nth === 3 ? undefined : `reply to ${msg}.`));
    const missing = await replayDatagrams(
      association,
      recorded(again, [
        ["one", ["reply to one."]],
        ["two", ["reply to two."]],
        ["three", ["reply to three."]],
      ]),
      { quietMs: 200 },
    );
    expect(missing).toMatchObject({ completed: true, match: false, difference: { offset: 0, actual: "" } });
    expect(missing.udp).toMatchObject({ received: 2, differingAnswer: 2 });
  });

  it("pace: turns waits for each answer, none sends everything at once, original keeps the recorded gaps", async () => {
    const slow = await udpServer((msg) => `ok ${msg}`, { delayMs: 250 });
    const exchanges: Array<[string, string[]]> = [
      ["1", ["ok 1"]],
      ["2", ["ok 2"]],
      ["3", ["ok 3"]],
    ];
    const gaps = (arrivals: Arrival[]) => arrivals.slice(1).map((x, i) => x.at - arrivals[i]!.at);

    const turns = await replayDatagrams(association, recorded(slow, exchanges), { pace: "turns", quietMs: 1000 });
    expect(turns).toMatchObject({ completed: true, match: true });
    for (const gap of gaps(slow.arrivals)) expect(gap).toBeGreaterThanOrEqual(200);

    slow.arrivals.length = 0;
    const none = await replayDatagrams(association, recorded(slow, exchanges), { pace: "none", quietMs: 1000 });
    expect(none).toMatchObject({ completed: true, match: true });
    expect(slow.arrivals).toHaveLength(3);
    for (const gap of gaps(slow.arrivals)) expect(gap).toBeLessThan(100);

    // Recorded 400 ms apart; answered at once now, so only the recorded timing spaces them.
    const quick = await udpServer((msg) => `ok ${msg}`);
    const original = await replayDatagrams(association, recorded(quick, exchanges, 400), { pace: "original", quietMs: 200 });
    expect(original).toMatchObject({ completed: true, match: true });
    for (const gap of gaps(quick.arrivals)) expect(gap).toBeGreaterThanOrEqual(350);
  });

  it("with pace turns, quietMs without an answer moves on to the next datagram, and the replay ends quietMs after the last", async () => {
    const mute = await udpServer(() => undefined);
    const started = Date.now();
    const result = await replayDatagrams(
      association,
      recorded(mute, [
        ["1", ["a"]],
        ["2", ["b"]],
      ]),
      { quietMs: 150, timeoutMs: 10_000 },
    );
    const took = Date.now() - started;
    expect(result).toMatchObject({ completed: true, match: false, received: 0, difference: { offset: 0, expected: "61", actual: "" } });
    expect(result.udp).toMatchObject({ sent: 2, expected: 2, received: 0, differingAnswer: 0 });
    expect(mute.arrivals[1]!.at - mute.arrivals[0]!.at).toBeGreaterThanOrEqual(120);
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);
  });

  it("a peer the client named is looked up, and the replay sends to the address it resolves to", async () => {
    const { address } = await lookup("localhost");
    const server = await udpServer((msg) => `hello ${msg}`, { host: address });
    const result = await replayDatagrams(association, recorded({ host: "localhost", port: server.port }, [["named", ["hello named"]]]), { quietMs: 300 });
    expect(result).toMatchObject({ completed: true, match: true });
    expect(server.arrivals.map((x) => x.data)).toEqual(["named"]);
    expect(result.udp!.datagrams[0]!.peer).toEqual({ host: address, port: server.port });
  });

  it("timeoutMs bounds a replay through a proxy that never answers the SOCKS handshake; it fails, not hangs", async () => {
    const held: Array<{ destroy(): void }> = [];
    const silent = await startServer((socket) => held.push(socket));
    cleanups.push(() => silent.close());
    cleanups.push(() => held.forEach((s) => s.destroy()));
    const target = await udpServer((msg) => msg);
    const started = Date.now();
    const result = await replayDatagrams(association, recorded(target, [["x", ["x"]]]), { via: { host: "127.0.0.1", port: silent.port }, timeoutMs: 300 });
    expect(result.completed).toBe(false);
    expect(result.error).toBeTruthy();
    expect(result.via).toEqual({ host: "127.0.0.1", port: silent.port });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(target.arrivals).toEqual([]);
  });
});

/** Records one association through a capturing socksmith (the CLI), sending `payloads` to the server. */
async function recordThroughCli(serverPort: number, payloads: string[]): Promise<string> {
  const file = join(root, `u${++n}.db`);
  const proxy = await runProxy(["-w", file], root, children);
  const answers = await udpExchange(proxy.port, serverPort, payloads);
  expect(answers).toHaveLength(payloads.length);
  expect(await proxy.stop()).toBe(0);
  return file;
}

describe("socksmith replay of a UDP association, more options", () => {
  it("--via with user:pass does the RFC 1929 exchange before the UDP ASSOCIATE; a wrong password fails the replay (exit 1)", async () => {
    const server = await udpServer((msg) => `echo:${msg}`);
    const file = await recordThroughCli(server.port, ["secret one", "secret two"]);
    const other = join(root, `auth${++n}.db`);
    const proxy = await runProxy(["-w", other, "--auth", "alice:s3cret"], root, children);

    const ok = await cli(["replay", "1", file, "--via", `socks5://alice:s3cret@127.0.0.1:${proxy.port}`, "--no-record"]);
    expect(ok.stdout).toContain(
      `replay of #1 (UDP) → 127.0.0.1:${server.port} via 127.0.0.1:${proxy.port}: sent 2 datagrams; received 2 answers (recorded 2): same as recorded`,
    );
    expect(ok.code).toBe(0);

    const wrong = await cli(["replay", "1", file, "--via", `socks5://alice:nope@127.0.0.1:${proxy.port}`, "--json", "--no-record"]);
    expect(wrong.code).toBe(1);
    const [report] = replayJson(wrong.stdout);
    expect(report).toMatchObject({ original: 1, completed: false, error: expect.stringContaining("rejected the user name or password") });
    expect(wrong.stderr).toContain("1 of 1 replays did not complete");

    expect(await proxy.stop()).toBe(0);
    const reader = new CaptureReader(other);
    try {
      const associations = reader.sessions({ filter: "cmd:udp" });
      expect(associations).toHaveLength(1);
      expect(associations[0]).toMatchObject({ user: "alice" });
      expect([...reader.datagrams(associations[0]!.id)].map((d) => [d.direction, d.data.toString()])).toEqual([
        ["up", "secret one"],
        ["down", "echo:secret one"],
        ["up", "secret two"],
        ["down", "echo:secret two"],
      ]);
    } finally {
      reader.close();
    }
  }, 30_000);

  it("--target sends every datagram elsewhere; --json reports it; the recorded replay is a UDP session with replay_of whose datagrams went there", async () => {
    const server = await udpServer((msg) => `echo:${msg}`);
    const file = await recordThroughCli(server.port, ["p", "q"]);
    const elsewhere = await udpServer((msg) => `ECHO:${msg}`);
    const result = await cli(["replay", "1", file, "--target", `127.0.0.1:${elsewhere.port}`, "--pace", "none", "--json"]);
    expect(result.code).toBe(0);
    const [report] = replayJson(result.stdout);
    expect(report).toMatchObject({
      original: 1,
      completed: true,
      match: false,
      target: { host: "127.0.0.1", port: elsewhere.port },
      difference: { offset: 0, expected: "65 63 68 6f 3a 70", actual: "45 43 48 4f 3a 70" },
      udp: { sent: 2, expected: 2, received: 2, differingAnswer: 0 },
      recordedAs: 2,
    });
    expect(server.arrivals.map((x) => x.data)).toEqual(["p", "q"]);
    expect(elsewhere.arrivals.map((x) => x.data)).toEqual(["p", "q"]);
    const reader = new CaptureReader(file);
    try {
      expect(reader.session(2)).toMatchObject({ command: "udp", replay_of: 1, status: "ok" });
      expect([...reader.datagrams(2)].filter((d) => d.direction === "up").map((d) => [d.peer_host, d.peer_port, d.data.toString()])).toEqual([
        ["127.0.0.1", elsewhere.port, "p"],
        ["127.0.0.1", elsewhere.port, "q"],
      ]);
    } finally {
      reader.close();
    }
  }, 30_000);
});

/** socksmith run, in this process (so that liveReplay gets its RunningProxy), capturing to `file`. */
async function proxyInProcess(file: string): Promise<RunningProxy> {
  let running: RunningProxy | undefined;
  const terminal = { out: () => {}, err: () => {} };
  await runCommand(terminal, async (proxy) => {
    running = proxy;
  }).parseAsync(["--headless", "-q", "-l", "127.0.0.1:0", "-w", file], { from: "user" });
  const proxy = running!;
  cleanups.push(() => proxy.stop(0));
  return proxy;
}

describe("the TUI's r on a UDP session", () => {
  it("browsing a file: fileReplay replays straight to the peer, records the replay in the file and focuses it", async () => {
    const server = await udpServer((msg) => `echo:${msg}`);
    const file = await recordThroughCli(server.port, ["from the tui"]);
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    const outcome = await fileReplay(reader)(1);
    expect(outcome).toEqual({ message: `replayed #1 as #2 to 127.0.0.1:${server.port}: same answer as recorded`, focus: 2 });
    expect(reader.session(2)).toMatchObject({ command: "udp", replay_of: 1 });
    expect([...reader.datagrams(2)].map((d) => [d.direction, d.data.toString()])).toEqual([
      ["up", "from the tui"],
      ["down", "echo:from the tui"],
    ]);
    expect(server.arrivals.map((x) => x.data)).toEqual(["from the tui", "from the tui"]);
  }, 30_000);

  it("attached to a running proxy: liveReplay goes through it, and the proxy records the new association as the replay", async () => {
    const server = await udpServer((msg, nth) => `echo:${msg}${nth > 1 ? " again" : ""}`);
    const file = join(root, `live${++n}.db`);
    const proxy = await proxyInProcess(file);
    expect(await udpExchange(proxy.bound[0]!.port, server.port, ["live"])).toEqual(["echo:live"]);
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    // The recorder writes in batches: wait until the association and its answer are in the file.
    await until("the recorded association", () => (reader.session(1)?.closed_at != null && [...reader.datagrams(1)].length === 2 ? true : undefined));

    const outcome = await liveReplay(reader, proxy)(1);
    expect(outcome.focus).toBe(2);
    expect(outcome.message).toBe(`replayed #1 as #2 to 127.0.0.1:${server.port}: answer 1 differs at byte 9`);
    const replay = await until("the replay's datagrams", () =>
      reader.session(2)?.closed_at != null && [...reader.datagrams(2)].length === 2 ? reader.session(2) : undefined,
    );
    expect(replay).toMatchObject({ command: "udp", replay_of: 1 });
    expect([...reader.datagrams(2)].map((d) => [d.direction, d.verdict, d.data.toString()])).toEqual([
      ["up", "relayed", "live"],
      ["down", "relayed", "echo:live again"],
    ]);
  }, 30_000);
});
