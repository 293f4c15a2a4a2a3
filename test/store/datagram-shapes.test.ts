/**
 * The writer's datagram shapes on their own (store/datagram-shapes.ts): a record's repeated
 * columns become one TEMP row, found again by slots within a batch and by value across batches,
 * and forgotten when a rolled-back transaction took the rows they point at.
 */
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import {
  R_DIRECTION,
  R_FROM_HOST,
  R_FROM_PORT,
  R_PEER_HOST,
  R_PEER_PORT,
  R_PEER_TYPE,
  R_TO_HOST,
  R_TO_PORT,
  R_VERDICT,
  RECORD_SLOTS,
} from "../../src/store/batch.js";
import { DatagramShapes, MAX_SHAPES } from "../../src/store/datagram-shapes.js";

let db: Database.Database;
afterEach(() => db?.close());

/** One datagram record's slots; `strings` indexes: 0 "ipv4", 1 "10.0.0.1", 2 "127.0.0.1", 3 "relayed", 4 "dropped". */
function record(down: boolean, fromPort: number, verdict: 3 | 4 = 3, peerPort = Number.NaN): Float64Array {
  const r = new Float64Array(RECORD_SLOTS).fill(-1);
  r[R_DIRECTION] = down ? 1 : 0;
  r[R_PEER_TYPE] = 0;
  r[R_PEER_HOST] = 1;
  r[R_PEER_PORT] = peerPort;
  r[R_FROM_HOST] = down ? 1 : 2;
  r[R_FROM_PORT] = fromPort;
  r[R_TO_HOST] = down ? 2 : 1;
  r[R_TO_PORT] = 53;
  r[R_VERDICT] = verdict;
  return r;
}
const STRINGS = ["ipv4", "10.0.0.1", "127.0.0.1", "relayed", "dropped"];

function shapeRow(id: number): unknown {
  return db
    .prepare("SELECT direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, verdict FROM temp.datagram_shapes WHERE id = ?")
    .get(id);
}

describe("DatagramShapes", () => {
  it("gives equal records one id and its row, and a record differing in any one column another", () => {
    db = new Database(":memory:");
    const shapes = new DatagramShapes(db);
    shapes.beginBatch();
    const up = shapes.idOf(record(false, 40000), 0, STRINGS);
    expect(shapes.idOf(record(false, 40000), 0, STRINGS)).toBe(up);
    expect(shapeRow(up)).toEqual({
      direction: "up",
      peer_type: "ipv4",
      peer_host: "10.0.0.1",
      peer_port: null,
      from_host: "127.0.0.1",
      from_port: 40000,
      to_host: "10.0.0.1",
      to_port: 53,
      verdict: "relayed",
    });
    const others = [record(true, 40000), record(false, 40001), record(false, 40000, 4), record(false, 40000, 3, 53)].map((r) => shapes.idOf(r, 0, STRINGS));
    expect(new Set([up, ...others]).size).toBe(5);
    expect(shapeRow(others[2]!)).toMatchObject({ verdict: "dropped" });
    expect(shapeRow(others[3]!)).toMatchObject({ peer_port: 53 });
    // More shapes than the slot comparison keeps: the first is found again by value.
    expect(shapes.idOf(record(false, 40000), 0, STRINGS)).toBe(up);
  });

  it("finds a shape again by its strings in a later batch, whose string indexes differ", () => {
    db = new Database(":memory:");
    const shapes = new DatagramShapes(db);
    shapes.beginBatch();
    const first = shapes.idOf(record(false, 40000), 0, STRINGS);
    shapes.beginBatch();
    // The same strings at other indexes, and index 1 now a different host.
    const strings = ["relayed", "192.0.2.9", "ipv4", "10.0.0.1", "127.0.0.1"];
    const r = record(false, 40000);
    r[R_PEER_TYPE] = 2;
    r[R_PEER_HOST] = 3;
    r[R_FROM_HOST] = 4;
    r[R_TO_HOST] = 3;
    r[R_VERDICT] = 0;
    expect(shapes.idOf(r, 0, strings)).toBe(first);
    // The slots of the first batch's record now name other strings: a new shape, not the cached one.
    const moved = shapes.idOf(record(false, 40000), 0, strings);
    expect(moved).not.toBe(first);
    expect(shapeRow(moved)).toMatchObject({ peer_type: "relayed", peer_host: "192.0.2.9", from_host: "ipv4", verdict: "10.0.0.1" });
  });

  it("after a rolled-back transaction, forget() makes the shapes it added be written again", () => {
    db = new Database(":memory:");
    const shapes = new DatagramShapes(db);
    db.exec("BEGIN");
    shapes.beginBatch();
    const id = shapes.idOf(record(false, 40000), 0, STRINGS);
    expect(shapeRow(id)).toBeDefined();
    db.exec("ROLLBACK");
    expect(shapeRow(id)).toBeUndefined();
    shapes.forget();
    shapes.beginBatch();
    const again = shapes.idOf(record(false, 40000), 0, STRINGS);
    expect(shapeRow(again)).toMatchObject({ direction: "up", from_port: 40000 });
  });

  it("makeRoom empties the table once it would pass MAX_SHAPES", () => {
    db = new Database(":memory:");
    const shapes = new DatagramShapes(db);
    shapes.beginBatch();
    for (let port = 0; port < MAX_SHAPES - 8; port++) shapes.idOf(record(false, port), 0, STRINGS);
    const count = (): unknown => db.prepare("SELECT count(*) AS n FROM temp.datagram_shapes").get();
    shapes.makeRoom(8);
    expect(count()).toEqual({ n: MAX_SHAPES - 8 });
    shapes.makeRoom(16);
    expect(count()).toEqual({ n: 0 });
    const id = shapes.idOf(record(false, 1), 0, STRINGS);
    expect(shapeRow(id)).toMatchObject({ from_port: 1 });
  });
});
