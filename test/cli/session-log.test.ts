/**
 * The per-session log line (cli/session-log.ts): sessions that end in the same turn of the event
 * loop are written with one `write` (their lines joined by newlines, so the bytes are those of one
 * line per session), at the end of that turn, in the order the sessions ended; a session that
 * ends in a later turn gets a write of its own. Nothing is written for a session still open.
 */
import { describe, expect, it } from "vitest";
import { SessionLog } from "../../src/cli/session-log.js";
import type { SessionClosedFact } from "../../src/engine/index.js";

const T0 = Date.UTC(2024, 0, 1);

function opened(log: SessionLog, id: number): void {
  log.sessionOpened({ id, at: T0, client: { host: "127.0.0.1", port: 40000 + id }, local: { host: "127.0.0.1", port: 1080 } });
}

function closed(id: number): SessionClosedFact {
  return { id, at: T0 + 5, reason: "completed", bytesUpReceived: id, bytesUpSent: id, bytesDownReceived: 0, bytesDownSent: 0 };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("SessionLog", () => {
  it("writes the lines of sessions that end in one turn together, at the end of the turn, in order", async () => {
    const writes: string[] = [];
    const log = new SessionLog("json", (text) => writes.push(text));
    for (const id of [1, 2, 3, 4]) opened(log, id);
    log.sessionClosed(closed(2));
    log.sessionClosed(closed(1));
    log.sessionClosed(closed(3));
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toHaveLength(1);
    const lines = writes[0]!.split("\n").map((l) => JSON.parse(l) as { id: number; bytesUp: number; client: { port: number } });
    expect(lines.map((l) => l.id)).toEqual([2, 1, 3]);
    expect(lines.map((l) => l.client.port)).toEqual([40002, 40001, 40003]);
    // A later turn: its own write; nothing for the session still open, nothing twice.
    log.sessionClosed(closed(4));
    log.sessionClosed(closed(4));
    await nextTurn();
    expect(writes).toHaveLength(2);
    expect((JSON.parse(writes[1]!) as { id: number }).id).toBe(4);
    await nextTurn();
    expect(writes).toHaveLength(2);
  });

  it("text lines join the same way, each line whole", async () => {
    const writes: string[] = [];
    const log = new SessionLog(
      "text",
      (text) => writes.push(text),
      (id) => 100 + id,
    );
    opened(log, 1);
    opened(log, 2);
    log.sessionClosed(closed(1));
    log.sessionClosed(closed(2));
    await nextTurn();
    expect(writes).toHaveLength(1);
    const lines = writes[0]!.split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^2024-01-01T00:00:00\.000Z #101 127\.0\.0\.1:40001 .* completed$/);
    expect(lines[1]).toMatch(/^2024-01-01T00:00:00\.000Z #102 127\.0\.0\.1:40002 .* completed$/);
  });
});
