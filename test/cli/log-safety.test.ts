/**
 * The headless log as a user's terminal receives it: a SOCKS5 client whose target host and user
 * name carry terminal control sequences (OSC retitle ESC ] 0;… BEL, a C1 CSI, a clear-screen) and
 * an addon that tags the session with one must not get a raw control byte onto stdout, in text
 * or JSON format. The client is a raw socket: curl refuses such bytes in a URL.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CLI } from "../support/cli.js";
import { sleep, withTimeout } from "../support/net.js";
import { logLine } from "../../src/cli/session-log.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-log-safety-"));
const children: ChildProcess[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Anything a terminal would act on: C0 controls (a line's own "\n" is split off before), DEL, C1, bidi overrides. */
const RAW_CONTROL = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

// OSC 0 (set title) ended by BEL, then a C1 CSI (0x9b, one latin1 byte) asking to clear the screen.
const HOST = Buffer.concat([Buffer.from("evil\x1b]0;pwned\x07"), Buffer.from([0x9b]), Buffer.from("2J.example")]);
const USER = Buffer.concat([Buffer.from("al\x1b[2Jice"), Buffer.from([0x9b, 0x41])]);

/** SOCKS5 with username/password only, then CONNECT to HOST:80; resolves when the proxy closes. */
function hostileClient(port: number): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      socket.on("error", reject);
      socket.on("close", () => resolve());
      const pass = Buffer.from("x");
      const request = Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, HOST.length]), HOST, Buffer.from([0x00, 0x50])]);
      // Pipelined: greeting, credentials and request in one write (the proxy reads a byte stream).
      socket.end(Buffer.concat([Buffer.from([0x05, 0x01, 0x02, 0x01, USER.length]), USER, Buffer.from([pass.length]), pass, request]));
      socket.resume();
    }),
    5000,
    "the proxy did not close the hostile session",
  );
}

// Tags the session with a clear-screen sequence and denies every request (nothing is resolved or dialled).
const ADDON = `export default {
  name: "hostile",
  onRequest(request, ctx) {
    ctx.tag("note", "\\u001b[2J\\u202ecleared");
    return { deny: 2 };
  },
};
`;

/** `run --headless` with the addon; the stdout lines of a session by the hostile client. */
async function logOf(format: "text" | "json"): Promise<string> {
  const addon = join(dir, `hostile-${format}.ts`);
  writeFileSync(addon, ADDON);
  const args = [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--no-capture", "--log-format", format, "-s", addon];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  children.push(child);
  const exit = once(child, "exit");
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lineMatching = async (pattern: RegExp, what: string): Promise<string> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = stdout.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}: ${stdout}\n${stderr}`);
      await sleep(20);
    }
  };
  const listening = await lineMatching(format === "json" ? /"event":"listening"/ : /listening on /, "proxy did not start");
  const port = format === "json" ? (JSON.parse(listening) as { port: number }).port : Number(/127\.0\.0\.1:(\d+)/.exec(listening)![1]);
  await hostileClient(port);
  const line = await lineMatching(format === "json" ? /"event":"session"/ : / CONNECT /, "no session line");
  child.kill("SIGINT");
  expect((await withTimeout(exit, 10_000, "proxy did not stop"))[0]).toBe(0);
  return line;
}

describe("headless log: wire and addon text cannot control the terminal", () => {
  it("text: host, user and tags are escaped", async () => {
    const line = await logOf("text");
    expect(line).not.toMatch(RAW_CONTROL);
    expect(line).toContain("CONNECT evil\\x1b]0;pwned\\x07\\x9b2J.example:80");
    expect(line).toContain("\\x9bA");
    expect(line).toContain("note=\\x1b[2J\\u{202e}cleared");
  });

  it("json: the same values, parsed back exactly, with no raw control character in the line", async () => {
    const line = await logOf("json");
    expect(line).not.toMatch(RAW_CONTROL);
    const parsed = JSON.parse(line) as { destination: { host: string }; user: string; tags: Record<string, string> };
    expect(parsed.destination.host).toBe(HOST.toString("latin1"));
    expect(parsed.user).toBe(USER.toString("latin1"));
    expect(parsed.tags.note).toBe("\x1b[2J\u202ecleared");
  });
});

describe("logLine (the CLI's stderr log: addon messages, hook errors)", () => {
  const hostile = "[addon] #1 \x1b]0;pwned\x07 \u009b2J \u202eevil\nsecond line";

  it("text: one line, every control and bidi character escaped", () => {
    const line = logLine("text", "info", hostile);
    expect(line).toBe("info: [addon] #1 \\x1b]0;pwned\\x07 \\x9b2J \\u{202e}evil\\x0asecond line");
  });

  it("json: parses back to the same message, no raw control character", () => {
    const line = logLine("json", "error", hostile, { addon: "a\x1b" });
    expect(line).not.toMatch(RAW_CONTROL);
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual({ event: "log", level: "error", message: hostile, addon: "a\x1b" });
  });
});
