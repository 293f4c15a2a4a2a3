/**
 * A payload filter (`~"needle"`) in the live TUI, which shares the relay's thread: over a capture
 * of 128 MiB of payload in 512 sessions, the list's polls must not block the event loop (the SQL
 * path read every payload on each poll), and the one matching session must appear.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";
import { plain } from "./views/fixtures.js";
import { blockMeter } from "../support/block-meter.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-payload-filter-"));
const file = join(root, "many.db");
const SESSIONS = 512;
const CHUNKS = 16;
const CHUNK = 16 * 1024;
/** The one session whose payload holds the needle (in its 10th chunk), far below the newest (SQL read 492 sessions to find it). */
const MATCH = 20;
/** As in big-session.test.tsx: generous; the SQL path blocked for much longer here. */
const MAX_BLOCK_MS = 250;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const t = Date.UTC(2026, 0, 1);
  const session = db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, reply, status, close_reason, bytes_up_received, bytes_down_received)
     VALUES (?, 1, ?, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', 'connect', 'domain', ?, 80, ?, 80, 0, 'ok', 'completed', 0, ?)`,
  );
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (?, ?, ?, 'down', ?, ?)");
  db.transaction(() => {
    for (let id = 1; id <= SESSIONS; id++) {
      const host = id === MATCH ? "needle.example" : `hay-${id}.example`;
      session.run(id, id, t + id * 1000, t + id * 1000 + 500, host, host, CHUNKS * CHUNK);
      for (let seq = 0; seq < CHUNKS; seq++) {
        const body = Buffer.alloc(CHUNK, 0x61 + (seq % 26));
        if (id === MATCH && seq === 9) body.write("a needle in the hay", 1000, "latin1");
        chunk.run(id, seq, t + id * 1000 + seq, body, CHUNK);
      }
    }
  })();
  db.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const frameOf = (ui: { lastFrame(): string | undefined }) => plain(ui.lastFrame());

describe("a payload filter in the live TUI", () => {
  it('~"needle" over 128 MiB in 512 sessions: polls never block the event loop long, and the matching session appears', { timeout: 120_000 }, async () => {
    const reader = new CaptureReader(file);
    const meter = blockMeter();
    // A short name for the status bar, so the filter and its counts fit its 100 columns.
    const source = Object.create(reader, { file: { value: "many.db" } }) as CaptureReader;
    const ui = render(<App source={source} follow pollMs={20} />);
    let blocked = 0;
    try {
      await vi.waitFor(() => expect(frameOf(ui)).toContain("hay-512.example"), { timeout: 20_000, interval: 25 });
      // Not counted: the first frames and the first filter (one without payload) load and compile code once.
      ui.stdin.write("/hay-25\r");
      await vi.waitFor(() => expect(frameOf(ui)).toMatch(/filter hay-25 \(11 shown\)/), { timeout: 20_000, interval: 25 });
      await new Promise((r) => setTimeout(r, 100));
      meter.take();
      // ctrl-U clears the filter bar's text.
      ui.stdin.write('/\x15~"needle"\r');
      await vi.waitFor(() => expect(frameOf(ui)).toContain("needle.example"), { timeout: 60_000, interval: 25 });
      // Searched to the end: the count is exact and the list holds the match alone.
      await vi.waitFor(() => expect(frameOf(ui)).toMatch(/filter ~"needle" \(1 shown\)/), { timeout: 60_000, interval: 25 });
      blocked = meter.take();
      expect(frameOf(ui)).not.toContain("hay-");
      // While it searched, the status bar said how far it had got.
      // While it searched, the status bar said how far it had got.
      expect(ui.frames.some((f) => /filter ~"needle" \(0 shown, searching… \d+ of 512 s/.test(plain(f)))).toBe(true);
      // An empty list while it searched was not "no sessions match".
      expect(ui.frames.some((f) => plain(f).includes("no sessions match"))).toBe(false);
    } finally {
      meter.stop();
      ui.unmount();
      reader.close();
    }
    expect(blocked, "the longest block of the event loop while the filter was searched (ms)").toBeLessThan(MAX_BLOCK_MS);
  });
});
