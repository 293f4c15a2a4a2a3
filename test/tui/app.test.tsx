/**
 * The TUI's state and keys, rendered with ink-testing-library over a real capture file: moving,
 * opening a session, switching tabs and view modes, filtering (with an error at its column),
 * hiding, exporting, help, and quitting.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-app-"));
const file = join(root, "app.db");
let reader: CaptureReader;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const session = db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, reply, status, close_reason, bytes_up_received, bytes_down_received)
     VALUES (?, 1, ?, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', 'connect', 'domain', ?, 80, ?, 80, ?, ?, ?, 18, 11)`,
  );
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (?, ?, ?, ?, ?, ?)");
  const t = Date.UTC(2026, 10, 22, 8, 0, 0);
  session.run(1, 1, t, t + 20, "alpha.example", "alpha.example", 0, "ok", "completed");
  session.run(2, 2, t + 1000, t + 1020, "beta.example", "beta.example", 5, "failed", "request-failed");
  session.run(3, 3, t + 2000, t + 2020, "gamma.example", "gamma.example", 0, "ok", "completed");
  chunk.run(3, 0, t + 2001, "up", Buffer.from("GET /gamma HTTP/1.1\r\n"), 21);
  chunk.run(3, 1, t + 2002, "down", Buffer.from("HTTP/1.1 200 OK\r\n"), 17);
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

const tick = () => new Promise((r) => setTimeout(r, 60));
/** Loading (the detail window, exports) runs in steps: wait until the frame says what it should. */
const settled = (check: () => void) => vi.waitFor(check, { timeout: 15_000, interval: 20 });
async function press(stdin: { write(s: string): void }, ...keys: string[]) {
  for (const k of keys) {
    stdin.write(k);
    await tick();
  }
}

describe("App", () => {
  it("lists the sessions with the newest selected; enter opens its stream; tab and m switch views; q goes back", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    await settled(() => expect(ui.lastFrame()).toContain("gamma.example"));
    const list = ui.lastFrame()!;
    expect(list).toContain("alpha.example");
    expect(list).toContain("beta.example");
    expect(list).toContain("gamma.example");
    expect(list).toMatch(/05 refused/);

    await press(ui.stdin, "\r");
    await settled(() => expect(ui.lastFrame()).toContain("GET /gamma HTTP/1.1"));
    await press(ui.stdin, "m", "m");
    await settled(() => expect(ui.lastFrame()).toMatch(/47 45 54 20 2f 67 61 6d/));
    // tab from the stream goes to the overview: text only the overview shows, and the stream's gone.
    await press(ui.stdin, "\t");
    await settled(() => expect(ui.lastFrame()).toMatch(/protocol: +SOCKS5 CONNECT/));
    expect(ui.lastFrame()).toContain("[overview]");
    expect(ui.lastFrame()).not.toMatch(/47 45 54 20 2f 67 61 6d/);
    await press(ui.stdin, "q");
    await settled(() => expect(ui.lastFrame()).toContain("alpha.example"));
    ui.unmount();
  });

  it("k moves up, enter opens that one, e exports it, d hides it", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    await press(ui.stdin, "k", "e");
    await settled(() => expect(ui.lastFrame()).toContain("exported session 2"));
    expect(JSON.parse(readFileSync(join(root, "socksmith-2.json"), "utf8"))).toMatchObject({ id: 2, requested: { host: "beta.example" } });
    await press(ui.stdin, "d");
    await settled(() => expect(ui.lastFrame()).not.toContain("beta.example"));
    ui.unmount();
  });

  it("keys that arrive in one read act one after another (kk then enter opens the oldest)", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    await press(ui.stdin, "kk\r");
    await settled(() => expect(ui.lastFrame()).toMatch(/#1 alpha\.example/));
    ui.unmount();
  });

  it("/ filters; a bad filter shows its error and keeps the bar open; esc leaves it", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    await press(ui.stdin, "/", "h", "o", "t", "s", ":", "x", "\r");
    await settled(() => expect(ui.lastFrame()).toMatch(/unknown field 'hots'/));
    await press(ui.stdin, "\u0015", ...[..."host:beta*"], "\r");
    await settled(() => expect(ui.lastFrame()).not.toContain("alpha.example"));
    const filtered = ui.lastFrame()!;
    expect(filtered).toContain("beta.example");
    expect(filtered).not.toContain("alpha.example");
    expect(filtered).toContain("host:beta*");
    // q clears the filter first, then quits.
    await press(ui.stdin, "q");
    await settled(() => expect(ui.lastFrame()).toContain("alpha.example"));
    ui.unmount();
  });

  it("r replays the focused session and opens the new one", async () => {
    const asked: number[] = [];
    const replay = async (id: number) => {
      asked.push(id);
      return { message: `replayed #${id} as #1`, focus: 1 };
    };
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} replay={replay} />);
    await tick();
    await press(ui.stdin, "r");
    await tick();
    expect(asked).toEqual([3]);
    await settled(() => expect(ui.lastFrame()).toMatch(/\[overview\]/));
    const frame = ui.lastFrame()!;
    expect(frame).toContain("replayed #3 as #1");
    expect(frame).toMatch(/#1 alpha\.example/);
    expect(frame).toMatch(/\[overview\]/);
    ui.unmount();
  });

  it("? shows the key bindings; r without a replayer says so", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    await press(ui.stdin, "?");
    await settled(() => expect(ui.lastFrame()).toMatch(/follow/));
    await settled(() => expect(ui.lastFrame()).toMatch(/view: auto, text, hex/));
    await press(ui.stdin, "?", "r");
    await settled(() => expect(ui.lastFrame()).toMatch(/replay is not available here/));
    ui.unmount();
  });
});
