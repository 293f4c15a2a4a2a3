/**
 * `socksmith replay` on a capture file another socksmith is writing: the replay runs, is not
 * recorded, and the message names options `replay` has (--no-record, --via), not `run`'s
 * (-w, --no-capture).
 */
import { execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CLI, runProxy } from "../support/cli.js";
import { openTunnel, startEchoServer } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-replay-busy-"));
const children: ChildProcess[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

describe("replay: not recorded because another socksmith writes the file", () => {
  it("says so with replay's own options", async () => {
    const echo = await startEchoServer();
    try {
      const first = await runProxy(["-w", "cap.db"], dir, children);
      const tunnel = await openTunnel(first.port, echo.port);
      tunnel.write(Buffer.from("hello"));
      expect((await tunnel.read(5)).toString()).toBe("hello");
      tunnel.end();
      await tunnel.readToEnd();
      expect(await first.stop()).toBe(0);

      // A second run now writes the file while the replay runs.
      const writer = await runProxy(["-w", "cap.db"], dir, children);
      const replay = await cli(["replay", "1", "cap.db"]);
      expect(replay.code, replay.stderr).toBe(0);
      const line = replay.stdout.split("\n").find((l) => l.includes("not recorded"));
      expect(line, replay.stdout).toMatch(/^ {2}not recorded: cap\.db is being written by another socksmith \(pid \d+\); /);
      expect(line).toMatch(/; stop it, replay --via it \(it captures the replay\), or use --no-record$/);
      expect(line).not.toMatch(/--no-capture|-w\b/);

      const unrecorded = await cli(["replay", "1", "cap.db", "--no-record"]);
      expect(unrecorded.code, unrecorded.stderr).toBe(0);
      expect(unrecorded.stdout).toMatch(/same as recorded/);
      expect(unrecorded.stdout).not.toContain("not recorded");
      expect(await writer.stop()).toBe(0);
    } finally {
      await echo.close();
    }
  });
});
