/**
 * Client replay of UDP associations, end to end: datagrams recorded through the real CLI against
 * UDP servers the test starts, then `socksmith replay` sends them again, straight to the peer or
 * through a running socksmith (--via), and compares the answers.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CaptureReader } from "../../src/store/reader.js";
import { CLI, replayJson, runProxy, udpExchange } from "../support/cli.js";
import { first } from "../support/net.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-udp-replay-"));
const children: ChildProcess[] = [];
const cleanups: Array<() => void> = [];
let n = 0;
afterEach(() => {
  cleanups.splice(0).forEach((c) => c());
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A UDP server; `answer` says what to send back for the nth datagram (from 1). */
async function udpServer(answer: (msg: Buffer, nth: number) => string): Promise<number> {
  const socket: UdpSocket = createSocket("udp4");
  let nth = 0;
  socket.on("message", (msg, rinfo) => socket.send(answer(msg, ++nth), rinfo.port, rinfo.address));
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  cleanups.push(() => socket.close());
  return socket.address().port;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { cwd: root }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr })),
  );
}

/** Records one association that sends `payloads` to the server, through a capturing proxy. */
async function record(serverPort: number, payloads: string[]): Promise<{ file: string; answers: string[] }> {
  const file = join(root, `u${++n}.db`);
  const proxy = await runProxy(["-w", file], root, children);
  const answers = await udpExchange(proxy.port, serverPort, payloads);
  expect(await proxy.stop()).toBe(0);
  return { file, answers };
}

describe("socksmith replay of a UDP association", () => {
  it("re-sends the datagrams, finds the same answers, and records the replay as a UDP session with replay_of", async () => {
    const port = await udpServer((msg) => `echo:${msg}`);
    const { file, answers } = await record(port, ["one", "two", "three"]);
    expect(answers).toEqual(["echo:one", "echo:two", "echo:three"]);
    const result = await cli(["replay", "1", file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^replay of #1 \\(UDP\\) → 127\\.0\\.0\\.1:${port}: sent 3 datagrams; received 3 answers \\(recorded 3\\): same as recorded\\n  recorded as session #2\\n$`,
      ),
    );
    const reader = new CaptureReader(file);
    try {
      const replay = reader.session(2)!;
      expect(replay).toMatchObject({ command: "udp", replay_of: 1, status: "ok" });
      expect([...reader.datagrams(2)].map((d) => [d.direction, d.data.toString()])).toEqual([
        ["up", "one"],
        ["down", "echo:one"],
        ["up", "two"],
        ["down", "echo:two"],
        ["up", "three"],
        ["down", "echo:three"],
      ]);
    } finally {
      reader.close();
    }
    // --filter picks the sessions; the replay recorded above is left out.
    const picked = await cli(["replay", file, "--filter", "cmd:udp", "--json", "--no-record"]);
    expect(picked.code).toBe(0);
    expect(replayJson(picked.stdout).map((r) => [r.original, r.match])).toEqual([[1, true]]);
    const none = await cli(["replay", file, "--filter", "cmd:bind"]);
    expect(none).toMatchObject({ code: 1, stderr: expect.stringContaining("no CONNECT or UDP session matches cmd:bind") });
    expect((await cli(["replay", file])).code).toBe(2);
  }, 30_000);

  it("reports which answer differs and where, for a server that answers differently the second time", async () => {
    const port = await udpServer((msg, nth) => `reply ${msg} from run ${nth <= 2 ? 1 : 2}`);
    const { file } = await record(port, ["a", "b"]);
    const result = await cli(["replay", "1", file, "--json", "--no-record"]);
    expect(result.code).toBe(0);
    const report = first(replayJson(result.stdout), "replay result");
    // Answers of the replay: "reply a from run 2", "reply b from run 2": the first differs at byte 17.
    expect(report).toMatchObject({
      original: 1,
      completed: true,
      match: false,
      difference: { offset: 17 },
      udp: { sent: 2, expected: 2, received: 2, differingAnswer: 0 },
    });
    expect(report.udp).not.toHaveProperty("datagrams");
    const text = await cli(["replay", "1", file, "--no-record"]);
    expect(text.stdout).toContain("answer 1 differs at byte 17");
  }, 30_000);

  it("--via goes through a running socksmith, which captures the replayed association", async () => {
    const port = await udpServer((msg) => `echo:${msg}`);
    const { file } = await record(port, ["via me"]);
    const other = join(root, `via${++n}.db`);
    const proxy = await runProxy(["-w", other], root, children);
    const result = await cli(["replay", "1", file, "--via", `socks5://127.0.0.1:${proxy.port}`, "--no-record"]);
    expect(result.stdout).toContain("same as recorded");
    expect(result.code).toBe(0);
    expect(await proxy.stop()).toBe(0);
    const reader = new CaptureReader(other);
    try {
      const [association] = reader.sessions({ filter: "cmd:udp" });
      expect(association).toBeDefined();
      expect([...reader.datagrams(association!.id)].map((d) => [d.direction, d.verdict, d.data.toString()])).toEqual([
        ["up", "relayed", "via me"],
        ["down", "relayed", "echo:via me"],
      ]);
    } finally {
      reader.close();
    }
  }, 30_000);

  it("an unknown session id: exit 1 with a clear message", async () => {
    const port = await udpServer((msg) => `echo:${msg}`);
    const { file } = await record(port, ["x"]);
    const result = await cli(["replay", "7", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no session 7");
  }, 30_000);
});
