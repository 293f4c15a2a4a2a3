/** CaptureReader.tlsFor: the tls rows of several sessions in one query, as the TUI's list reads its window. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-tls-for-"));
const file = join(root, "tls-for.db");
let reader: CaptureReader;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const session = db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (?, 1, ?, 0, '127.0.0.1', 5, '127.0.0.1', 1080, 'ok')",
  );
  const tls = db.prepare("INSERT INTO tls (session_id, at, intercepted, decided_by, sni, failure_code) VALUES (?, 1, ?, 'default', ?, ?)");
  for (let id = 1; id <= 6; id++) session.run(id, id);
  tls.run(2, 1, "two.example", null);
  tls.run(3, 0, "three.example", null);
  tls.run(5, 1, "five.example", "client-rejected");
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

describe("CaptureReader.tlsFor", () => {
  it("maps each asked session that has a tls row to it, and leaves out the others", () => {
    const rows = reader.tlsFor([1, 2, 3, 4, 5, 6, 99]);
    expect([...rows.keys()].sort()).toEqual([2, 3, 5]);
    expect(rows.get(2)).toMatchObject({ session_id: 2, intercepted: 1, sni: "two.example", failure_code: null });
    expect(rows.get(3)).toMatchObject({ intercepted: 0, sni: "three.example" });
    expect(rows.get(5)).toMatchObject({ failure_code: "client-rejected" });
    // The same rows as one lookup at a time.
    for (const [id, row] of rows) expect(row).toEqual(reader.tls(id));
  });

  it("reads only the sessions asked for", () => {
    expect([...reader.tlsFor([3]).keys()]).toEqual([3]);
    expect(reader.tlsFor([1, 4, 6]).size).toBe(0);
    expect(reader.tlsFor([]).size).toBe(0);
  });
});
