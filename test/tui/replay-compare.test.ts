/**
 * A replay's answer against its original, compared in bounded steps: the same result as
 * `replay` computes over whole sessions (firstDifference / firstDifferingAnswer), for equal,
 * differing, shorter and longer answers, TCP and UDP, and across many steps.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { firstDifference } from "../../src/replay/turns.js";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { ReplayComparer } from "../../src/tui/replay-compare.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-compare-"));
const file = join(root, "c.db");
let reader: CaptureReader;
const BIG = Buffer.alloc(3000 * 1024);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7) & 0xff;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const s = db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, command, status) VALUES (?, 1, ?, 0, 'a', 1, 'b', 2, ?, 'ok')",
  );
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent, verdict) VALUES (?, ?, 0, ?, ?, ?, ?, ?)");
  const tcp = (id: number, parts: (string | Buffer)[], inject?: string) => {
    s.run(id, id, "connect");
    chunk.run(id, 0, "up", Buffer.from("GET /"), 5, null, null);
    parts.forEach((p, i) => chunk.run(id, i + 1, "down", Buffer.from(p), Buffer.from(p).length, null, null));
    if (inject !== undefined) chunk.run(id, parts.length + 1, "down", Buffer.alloc(0), 0, Buffer.from(inject), "inject");
  };
  tcp(1, ["hello", " wor", "ld"]);
  tcp(2, ["hel", "lo world"]);
  tcp(3, ["hello", " WORLD"]);
  tcp(4, ["hello"]);
  tcp(5, ["hello wor"], "ld!");
  const datagram = db.prepare(
    "INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, verdict) VALUES (?, ?, 0, ?, 'x', 1, ?, ?, ?)",
  );
  const udp = (id: number, answers: string[]) => {
    s.run(id, id, "udp");
    datagram.run(id, 0, "up", Buffer.from("q"), 1, "relayed");
    datagram.run(id, 1, "down", Buffer.from("dropped"), 7, "dropped");
    answers.forEach((a, i) => datagram.run(id, i + 2, "down", Buffer.from(a), a.length, "relayed"));
  };
  udp(11, ["a", "bb"]);
  udp(12, ["a", "bb"]);
  udp(13, ["a", "bc"]);
  udp(14, ["a"]);
  // Big: 3000 reads of 1 KiB; the replay differs at byte 2,000,000.
  const changed = Buffer.from(BIG);
  changed[2_000_000] = changed[2_000_000]! ^ 0xff;
  for (const [id, body] of [
    [21, BIG],
    [22, changed],
  ] as const) {
    s.run(id, id, "connect");
    for (let i = 0; i < 3000; i++) chunk.run(id, i, "down", body.subarray(i * 1024, (i + 1) * 1024), 1024, null, null);
  }
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

function compare(original: number, replay: number, udp = false) {
  const comparer = new ReplayComparer(reader, original, replay, udp);
  let steps = 1;
  while (!comparer.step()) steps++;
  return { ...comparer.result(), steps };
}

describe("ReplayComparer", () => {
  it("TCP: same bytes in other reads are the same answer; a difference, a shorter and a longer answer are found where replay finds them", () => {
    expect(compare(1, 2)).toMatchObject({ expected: 11, received: 11 });
    expect(compare(1, 2).difference).toBeUndefined();
    expect(compare(1, 2).pending).toBeUndefined();
    const whole = (s: string) => Buffer.from(s);
    expect(compare(1, 3).difference).toEqual(firstDifference(whole("hello world"), whole("hello WORLD")));
    expect(compare(1, 4)).toMatchObject({ expected: 11, received: 5, difference: firstDifference(whole("hello world"), whole("hello")) });
    // Injected bytes are the server's answer too.
    expect(compare(1, 5)).toMatchObject({ expected: 11, received: 12, difference: firstDifference(whole("hello world"), whole("hello world!")) });
  });

  it("UDP: compares answers one by one (dropped ones left out), counting a missing one", () => {
    expect(compare(11, 12, true)).toMatchObject({ expected: 3, received: 3, datagrams: { expected: 2, received: 2 } });
    expect(compare(11, 12, true).difference).toBeUndefined();
    expect(compare(11, 13, true)).toMatchObject({
      datagrams: { expected: 2, received: 2, answer: 1 },
      difference: firstDifference(Buffer.from("bb"), Buffer.from("bc")),
    });
    expect(compare(11, 14, true)).toMatchObject({ datagrams: { expected: 2, received: 1, answer: 1 } });
  });

  it("compares 3 MB in several bounded steps and finds the byte that differs", () => {
    const changed = Buffer.from(BIG);
    changed[2_000_000] = changed[2_000_000]! ^ 0xff;
    const result = compare(21, 22);
    expect(result.steps).toBeGreaterThan(2);
    expect(result).toMatchObject({ expected: BIG.length, received: BIG.length, difference: firstDifference(BIG, changed) });
  });
});
