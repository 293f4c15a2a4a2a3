/**
 * The batch row format on its own: whatever datagram records the writer gives the batcher, the
 * rows it makes decode back to the same datagrams (property test), split at BATCH_ROWS and
 * BATCH_BYTES, and a datagram out of seq order is refused (it becomes a row).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KIND_DATAGRAM,
  R_AT,
  R_DATA_LENGTH,
  R_DATA_OFFSET,
  R_DETAIL,
  R_DIRECTION,
  R_FROM_HOST,
  R_FROM_PORT,
  R_KIND,
  R_PEER_HOST,
  R_PEER_PORT,
  R_PEER_TYPE,
  R_REASON,
  R_SENT_LENGTH,
  R_SENT_OFFSET,
  R_SEQ,
  R_SID,
  R_SIZE,
  R_TO_HOST,
  R_TO_PORT,
  R_VERDICT,
  RECORD_SLOTS,
} from "../../src/store/batch.js";
import { BATCH_BYTES, BATCH_ROWS, type BatchValues, DatagramBatcher, DecodedBatch } from "../../src/store/datagram-batches.js";
import type { DatagramRow } from "../../src/store/schema.js";

type Input = Omit<DatagramRow, "id">;

/** Records, strings and arena as the transport would send them. */
function encode(inputs: readonly Input[]): { records: Float64Array; strings: string[]; arena: Buffer } {
  const records = new Float64Array(inputs.length * RECORD_SLOTS);
  const strings: string[] = [];
  const index = (s: string | null) => {
    if (s === null) return -1;
    const i = strings.indexOf(s);
    return i >= 0 ? i : strings.push(s) - 1;
  };
  const arena = Buffer.concat(inputs.flatMap((d) => [d.data, d.sent ?? Buffer.alloc(0)]));
  let at = 0;
  inputs.forEach((d, r) => {
    const b = r * RECORD_SLOTS;
    records[b + R_KIND] = KIND_DATAGRAM;
    records[b + R_SID] = d.session_id;
    records[b + R_SEQ] = d.seq;
    records[b + R_AT] = d.at;
    records[b + R_DIRECTION] = d.direction === "up" ? 0 : 1;
    records[b + R_DATA_OFFSET] = at;
    records[b + R_DATA_LENGTH] = d.data.length;
    records[b + R_SIZE] = d.size;
    at += d.data.length;
    records[b + R_SENT_OFFSET] = d.sent === null ? -1 : at;
    records[b + R_SENT_LENGTH] = d.sent?.length ?? 0;
    at += d.sent?.length ?? 0;
    records[b + R_VERDICT] = index(d.verdict);
    records[b + R_PEER_TYPE] = index(d.peer_type);
    records[b + R_PEER_HOST] = index(d.peer_host);
    records[b + R_PEER_PORT] = d.peer_port ?? Number.NaN;
    records[b + R_FROM_HOST] = index(d.from_host);
    records[b + R_FROM_PORT] = d.from_port;
    records[b + R_TO_HOST] = index(d.to_host);
    records[b + R_TO_PORT] = d.to_port ?? Number.NaN;
    records[b + R_REASON] = index(d.reason);
    records[b + R_DETAIL] = index(d.detail);
  });
  return { records, strings, arena };
}

/** Runs `inputs` through a batcher; returns the rows it inserted and what `add` answered. */
function batch(inputs: readonly Input[]): { rows: BatchValues[]; added: boolean[] } {
  const rows: BatchValues[] = [];
  let nextId = 1;
  const batcher = new DatagramBatcher(
    (values) => rows.push(values),
    (count) => {
      const first = nextId;
      nextId += count;
      return first;
    },
  );
  const { records, strings, arena } = encode(inputs);
  batcher.begin(records, strings, arena);
  const added = inputs.map((_, r) => batcher.add(r * RECORD_SLOTS));
  batcher.finishAll();
  return { rows, added };
}

function decode(values: BatchValues): DecodedBatch {
  const [first_id, session_id, count, , , at, , shapes, items, payload] = values;
  return DecodedBatch.of({ first_id, session_id, count, at, shapes, items, payload }, "test");
}

const host = fc.constantFrom("127.0.0.1", "::1", "10.0.0.7", "dns.test", "ü.example");
const port = fc.integer({ min: 1, max: 65535 });
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
/** A datagram of session `sid` at `seq`, with time `at` (integer ms, or any finite double). */
const datagram = (sid: number, seq: number, base: number) =>
  fc
    .record({
      direction: fc.constantFrom("up" as const, "down" as const),
      at: fc.oneof(fc.integer({ min: -5000, max: 5_000_000 }), fc.double({ min: -1e6, max: 1e9, noNaN: true })),
      peer_type: fc.constantFrom(null, "ipv4", "ipv6", "domain"),
      peer_host: fc.option(host),
      peer_port: fc.option(port),
      from_host: host,
      from_port: port,
      to_host: fc.option(host),
      to_port: fc.option(port),
      data: bytes(200),
      extra: fc.nat({ max: 50 }),
      sent: fc.option(bytes(80)),
      verdict: fc.constantFrom("relayed", "dropped", "injected"),
      reason: fc.option(fc.constantFrom("hook", "backlog", "unsolicited")),
      detail: fc.option(fc.string({ maxLength: 20 })),
    })
    .map(
      ({ extra, at, ...d }): Input => ({
        ...d,
        session_id: sid,
        seq,
        at: base + at,
        size: d.data.length + extra,
      }),
    );

describe("datagram batch rows", () => {
  it("decode back to the datagrams recorded, in order, with their ids, whatever the values", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 60 }).chain((gaps) => {
          let seq = -1;
          return fc.tuple(...gaps.map((gap) => datagram(7, (seq += gap + 1), 1_764_770_000_000)));
        }),
        (inputs) => {
          const { rows, added } = batch(inputs);
          expect(added.every(Boolean)).toBe(true);
          const out: DatagramRow[] = [];
          let expectedId = 1;
          for (const values of rows) {
            const decoded = decode(values);
            expect(decoded.firstId).toBe(expectedId);
            for (let i = 0; i < decoded.count; i++) out.push(decoded.row(i));
            expectedId += decoded.count;
          }
          expect(out.map((r) => r.id)).toEqual(inputs.map((_, i) => i + 1));
          out.forEach((row, i) => {
            const { id: _id, at, ...rest } = row;
            const { at: wanted, ...input } = inputs[i]!;
            expect(rest).toEqual(input);
            // The batch keeps its first time and each one's offset from it: exact for whole
            // milliseconds (what the engine's clock gives), within a rounding step otherwise.
            if (Number.isInteger(wanted) && Number.isInteger(inputs[0]!.at)) expect(at).toBe(wanted);
            else expect(Math.abs(at - wanted)).toBeLessThanOrEqual(Math.abs(wanted) * Number.EPSILON * 4);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("end at BATCH_ROWS datagrams and BATCH_BYTES of payload; a datagram alone over BATCH_BYTES has a batch of its own", () => {
    const base: Input = {
      session_id: 1,
      seq: 0,
      at: 1000,
      direction: "up",
      peer_type: "ipv4",
      peer_host: "127.0.0.1",
      peer_port: 53,
      from_host: "127.0.0.1",
      from_port: 40000,
      to_host: "127.0.0.1",
      to_port: 53,
      data: Buffer.from("x"),
      size: 1,
      sent: null,
      verdict: "relayed",
      reason: null,
      detail: null,
    };
    const small = Array.from({ length: BATCH_ROWS * 2 + 1 }, (_, seq) => ({ ...base, seq }));
    expect(batch(small).rows.map((r) => r[2])).toEqual([BATCH_ROWS, BATCH_ROWS, 1]);
    const third = Buffer.alloc(Math.floor(BATCH_BYTES / 3) + 1, 7);
    const big = Buffer.alloc(BATCH_BYTES + 100, 8);
    const sized = [third, third, third, big, third].map((data, seq) => ({ ...base, seq, data, size: data.length }));
    const { rows } = batch(sized);
    expect(rows.map((r) => r[2])).toEqual([2, 1, 1, 1]);
    expect(rows.map((r) => r[9].length)).toEqual([third.length * 2, third.length, big.length, third.length]);
  });

  it("refuses a datagram whose seq is not after the session's last batched one (it becomes a row), per session", () => {
    const d = (sid: number, seq: number): Input => ({
      session_id: sid,
      seq,
      at: 1000 + seq,
      direction: "down",
      peer_type: null,
      peer_host: null,
      peer_port: null,
      from_host: "127.0.0.1",
      from_port: 53,
      to_host: null,
      to_port: null,
      data: Buffer.from([seq]),
      size: 1,
      sent: null,
      verdict: "relayed",
      reason: null,
      detail: null,
    });
    const { rows, added } = batch([d(1, 5), d(2, 1), d(1, 3), d(1, 5), d(1, 6), d(2, 0), d(2, 2)]);
    expect(added).toEqual([true, true, false, false, true, false, true]);
    expect(rows.map((r) => [r[1], r[2], r[3], r[4]])).toEqual([
      [1, 2, 5, 6],
      [2, 2, 1, 2],
    ]);
  });
});
