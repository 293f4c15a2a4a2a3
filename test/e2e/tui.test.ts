/**
 * The TUI in a real terminal: socksmith runs under tmux (so it has a TTY), curl goes through it,
 * and the test reads the screen with `tmux capture-pane` and types with `tmux send-keys`.
 * CI=true is set on purpose: Ink draws nothing until exit when it thinks it runs in CI, and a
 * terminal whose shell exports CI must still get the TUI.
 */
import { execFileSync, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CaptureReader } from "../../src/store/reader.js";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const root = mkdtempSync(join(tmpdir(), "socksmith-tui-"));
const session = `socksmith-test-${process.pid}`;
let http: Server;
let httpPort: number;

function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", session, ...args], { encoding: "utf8" });
}
const screen = () => tmux("capture-pane", "-p", "-t", session);

async function until(what: string, check: (text: string) => boolean, ms = 8000): Promise<string> {
  const deadline = Date.now() + ms;
  let text = "";
  while (Date.now() < deadline) {
    text = screen();
    if (check(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not on screen after ${ms} ms:\n${text}`);
}

function curl(port: number, path: string): Promise<string> {
  return new Promise((resolve) =>
    execFile("curl", ["-s", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${httpPort}${path}`], (_e, out) => resolve(out)),
  );
}

beforeAll(async () => {
  http = createServer((req, res) => res.end(`tui says hi to ${req.url}`));
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  httpPort = (http.address() as AddressInfo).port;
});
afterAll(async () => {
  try {
    tmux("kill-server");
  } catch {
    // already gone
  }
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  rmSync(root, { recursive: true, force: true });
});

describe("socksmith run on a terminal (tmux)", () => {
  it("shows sessions live, opens one with its bytes, filters with host:, replays with r (addons see session.replay), and quits with exit 0", async () => {
    const file = join(root, "tui.db");
    // Tags each session with what `session.replay` says, to check that addons tell replays apart.
    const addon = join(root, "replay-tag.ts");
    writeFileSync(addon, `export default { onRequest(_r: unknown, ctx: any) { ctx.tag("replay", ctx.session.replay?.kind ?? "live"); } };\n`);
    tmux(
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "160",
      "-y",
      "40",
      `CI=true ${process.execPath} ${CLI} run -l 127.0.0.1:0 -w ${file} -s ${addon}; echo "exit=$?"; sleep 30`,
    );
    const first = await until("the listen address in the status bar", (t) => /127\.0\.0\.1:\d{2,5}/.test(t));
    const port = Number(/127\.0\.0\.1:(\d{2,5})/.exec(first)![1]);

    expect(await curl(port, "/alpha")).toBe("tui says hi to /alpha");
    await until("the session row", (t) => t.includes(`localhost:${httpPort}`) && /\bok\b/.test(t));
    expect(await curl(port, "/beta")).toBe("tui says hi to /beta");
    // Follow mode: the newest session gets selected once its row is on screen (the selection
    // may follow a frame after the row: under a loaded full suite Enter once opened /alpha).
    await until("the second row, selected", (t) => {
      const rows = t.split("\n").filter((l) => l.includes(`localhost:${httpPort}`) && /\bok\b/.test(l));
      const id = (l: string): number => Number(/\d+/.exec(l)![0]);
      return rows.length === 2 && rows.some((l) => l.startsWith(">") && id(l) === Math.max(...rows.map(id)));
    });

    tmux("send-keys", "-t", session, "Enter");
    const detail = await until("the stream of the session", (t) => t.includes("GET /beta HTTP/1.1"));
    expect(detail).toContain("tui says hi to /beta");

    tmux("send-keys", "-t", session, "q");
    await until("back to the list", (t) => !t.includes("GET /beta HTTP/1.1") && /ID\s+TIME/.test(t));
    tmux("send-keys", "-t", session, "/");
    tmux("send-keys", "-t", session, "-l", "host:nothing.example");
    tmux("send-keys", "-t", session, "Enter");
    await until("the filter in the status bar and no rows", (t) => t.includes("host:nothing.example") && !t.includes(`localhost:${httpPort}`));
    tmux("send-keys", "-t", session, "/");
    tmux("send-keys", "-t", session, "C-u");
    tmux("send-keys", "-t", session, "-l", "host:local*");
    tmux("send-keys", "-t", session, "Enter");
    await until("both sessions again", (t) => t.split("\n").filter((l) => l.includes(`localhost:${httpPort}`)).length === 2);

    // r replays the focused session through the running proxy and opens the new session.
    tmux("send-keys", "-t", session, "r");
    const replayed = await until("the replay's overview", (t) => /replay of:\s+session 2/.test(t));
    expect(replayed).toMatch(/answer:\s+(same as recorded|differs at byte \d+)/);
    expect(replayed).toMatch(/replayed #2 as #3/);

    tmux("send-keys", "-t", session, "q");
    tmux("send-keys", "-t", session, "Q");
    await until("the exit status", (t) => t.includes("exit=0"));
    const reader = new CaptureReader(file);
    try {
      expect(reader.sessions({ order: "oldest" }).map((s) => [s.id, s.replay_of, JSON.parse(s.tags).replay])).toEqual([
        [1, null, "live"],
        [2, null, "live"],
        [3, 2, "client"],
      ]);
    } finally {
      reader.close();
    }
  }, 30_000);

  it("socksmith tui FILE --follow shows sessions that another process is writing, read-only", async () => {
    const file = join(root, "follow.db");
    const proxy = spawn(process.execPath, [CLI, "run", "--headless", "-q", "-l", "127.0.0.1:0", "-w", file], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        proxy.stdout!.on("data", (d: Buffer) => {
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(d.toString());
          if (m) resolve(Number(m[1]));
        });
        proxy.once("exit", (code) => reject(new Error(`proxy exited ${code}`)));
      });
      expect(await curl(port, "/first")).toBe("tui says hi to /first");
      const viewer = `${session}-viewer`;
      tmux("new-session", "-d", "-s", viewer, "-x", "160", "-y", "30", `CI=true ${process.execPath} ${CLI} tui ${file} --follow; echo "exit=$?"; sleep 30`);
      const shot = () => tmux("capture-pane", "-p", "-t", viewer);
      const wait = async (what: string, check: (t: string) => boolean) => {
        const deadline = Date.now() + 8000;
        while (Date.now() < deadline) {
          if (check(shot())) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`${what}:\n${shot()}`);
      };
      await wait("the browsing status and the first session", (t) => t.includes("browsing") && t.includes(`localhost:${httpPort}`));
      expect(await curl(port, "/second")).toBe("tui says hi to /second");
      await wait("the second session, written by the other process", (t) => t.split("\n").filter((l) => l.includes(`localhost:${httpPort}`)).length === 2);
      tmux("send-keys", "-t", viewer, "q");
      await wait("the exit status", (t) => t.includes("exit=0"));
    } finally {
      proxy.kill("SIGINT");
      await once(proxy, "exit");
    }
  }, 30_000);
});
