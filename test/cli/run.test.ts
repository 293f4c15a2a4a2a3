/**
 * The `socksmith run` command as a user runs it: the built binary in a child process, its exit
 * codes, its output lines, and its shutdown on SIGINT.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { openTunnel, startEchoServer, withTimeout } from "../support/net.js";

const CLI = join(import.meta.dirname, "../../dist/cli.js");

interface Running {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
}

const children: ChildProcess[] = [];
/** Each run gets its own working directory, so its default capture file is its own. */
const root = mkdtempSync(join(tmpdir(), "socksmith-run-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

function spawnCli(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: mkdtempSync(join(root, "cwd-")) });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lines = (into: string[]) => {
    let rest = "";
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split("\n");
      rest = parts.pop()!;
      into.push(...parts);
    };
  };
  child.stdout!.on("data", lines(stdout));
  child.stderr!.on("data", lines(stderr));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  return { child, stdout, stderr, exit };
}

async function waitFor(lines: string[], pattern: RegExp, ms = 5000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (const line of lines) {
      const m = pattern.exec(line);
      if (m) return m;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no line matching ${pattern} in ${JSON.stringify(lines)}`);
}

async function runToExit(args: string[]): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const run = spawnCli(args);
  const code = await withTimeout(run.exit, 10_000, `socksmith ${args.join(" ")} did not exit`);
  return { code, stdout: run.stdout, stderr: run.stderr };
}

describe("socksmith run: bad input", () => {
  const cases: Array<[string[], RegExp]> = [
    [["run", "--nope"], /unknown option '--nope'/],
    [["run", "--listen", "127.0.0.1:99999"], /port 99999 is out of range/],
    [["run", "--listen", "::1:1080"], /brackets/],
    [["run", "--handshake-timeout", "soon"], /--handshake-timeout: "soon" is not a duration/],
    [["run", "--max-sessions", "0"], /--max-sessions: must be at least 1/],
    [["run", "--auth", "nocolon"], /--auth: expected USER:PASS/],
    [["run", "--log-format", "xml"], /--log-format.*xml.*invalid|Allowed choices/],
    [["run", "--auth-file", "/nonexistent/auth.txt"], /--auth-file: cannot read .*ENOENT/],
  ];
  for (const [args, message] of cases) {
    it(`${args.join(" ")} exits 2 with one clear line`, async () => {
      const { code, stderr, stdout } = await runToExit(args);
      expect(code).toBe(2);
      expect(stdout).toEqual([]);
      const text = stderr.filter((l) => l.trim() !== "");
      expect(text).toHaveLength(1);
      expect(text[0]).toMatch(message);
    });
  }

  it("an auth file with a bad line names the file and line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "socksmith-"));
    const file = join(dir, "users.txt");
    writeFileSync(file, "# users\nalice:one\nbob\n");
    const { code, stderr } = await runToExit(["run", "--auth-file", file]);
    expect(code).toBe(2);
    expect(stderr.join("\n")).toContain(`${file}:3: expected USER:PASS`);
  });

  it("a port in use exits 1 with a clear message", async () => {
    const blocker = createServer();
    blocker.listen(0, "127.0.0.1");
    await once(blocker, "listening");
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, stderr } = await runToExit(["run", "--headless", "-l", `127.0.0.1:${port}`]);
      expect(code).toBe(1);
      expect(stderr.join("\n")).toMatch(new RegExp(`cannot listen on 127.0.0.1:${port}: the address is already in use`));
    } finally {
      blocker.close();
    }
  });
});

describe("socksmith run: running", () => {
  it("without a terminal it runs headless with a one-line notice; tui refuses with exit 2", async () => {
    const run = spawnCli(["run", "-l", "127.0.0.1:0"]);
    await waitFor(run.stdout, /listening on 127\.0\.0\.1:\d+/);
    expect(run.stderr).toEqual(["socksmith: no terminal, running headless (--headless hides this notice)"]);
    run.child.kill("SIGINT");
    expect(await withTimeout(run.exit, 10_000, "did not stop")).toBe(0);
    const tui = await runToExit(["tui"]);
    expect(tui.code).toBe(2);
    expect(tui.stderr.join("\n")).toMatch(/tui needs a terminal/);
  });

  it("warns loudly when listening beyond loopback without auth, and not with auth", async () => {
    const open = spawnCli(["run", "--headless", "-l", "0.0.0.0:0"]);
    await waitFor(open.stdout, /listening on 0\.0\.0\.0:\d+/);
    expect(await waitFor(open.stderr, /WARNING: .*without authentication: anyone who can reach this address can use the proxy/)).toBeTruthy();
    open.child.kill("SIGINT");
    expect(await open.exit).toBe(0);

    const authed = spawnCli(["run", "--headless", "-l", "0.0.0.0:0", "--auth", "u:p"]);
    await waitFor(authed.stdout, /listening on 0\.0\.0\.0:\d+ .*username\/password/);
    authed.child.kill("SIGINT");
    expect(await authed.exit).toBe(0);
    expect(authed.stderr.join("\n")).not.toContain("WARNING");
  });

  it("prints JSON lines, lets an open tunnel finish on SIGINT, then exits 0", async () => {
    const echo = await startEchoServer();
    const run = spawnCli(["run", "--headless", "-l", "127.0.0.1:0", "-l", "[::1]:0", "--log-format", "json", "--shutdown-grace", "3s"]);
    const listening = (await waitFor(run.stdout, /^\{"event":"listening".*"address":"127\.0\.0\.1"/)).input!;
    const port = JSON.parse(listening).port as number;
    await waitFor(run.stdout, /"address":"::1"/);

    const tunnel = await openTunnel(port, echo.port);
    run.child.kill("SIGINT");
    await waitFor(run.stderr, /SIGINT: no longer accepting; waiting up to 3s for 1 open session/);
    // The open tunnel still relays during the grace period.
    tunnel.write(Buffer.from("still here"));
    expect((await tunnel.read(10)).toString()).toBe("still here");
    tunnel.end();
    await tunnel.readToEnd();
    expect(await withTimeout(run.exit, 5000, "no exit after the tunnel closed")).toBe(0);

    const session = JSON.parse(run.stdout.find((l) => l.includes('"event":"session"'))!);
    expect(session).toMatchObject({ version: 5, command: "connect", rep: 0, bytesUp: 10, bytesDown: 10, reason: "completed" });
    expect(session.destination).toEqual({ host: "127.0.0.1", port: echo.port });
    await echo.close();
  });

  it("a second SIGINT closes open sessions at once", async () => {
    const echo = await startEchoServer();
    const run = spawnCli(["run", "--headless", "-l", "127.0.0.1:0", "--shutdown-grace", "60s"]);
    const port = Number((await waitFor(run.stdout, /listening on 127\.0\.0\.1:(\d+)/))[1]);
    const tunnel = await openTunnel(port, echo.port);
    run.child.kill("SIGINT");
    await waitFor(run.stderr, /waiting up to 60s/);
    run.child.kill("SIGINT");
    expect(await withTimeout(run.exit, 5000, "second SIGINT did not stop it")).toBe(0);
    await tunnel.readToEnd();
    expect(run.stdout.join("\n")).toMatch(/CONNECT 127\.0\.0\.1:\d+ 00 ok .* shutdown/);
    await echo.close();
  });
});
