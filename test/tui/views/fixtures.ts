/** Rows for view tests, every field filled, overridable per test. */
import type { ChunkRow, DatagramRow, EventRow, SessionRow } from "../../../src/tui/types.js";
import { blankDatagram, blankSession } from "../../support/rows.js";

/** 2024-05-01T12:00:00.000Z: a fixed clock, so times and durations are known. */
export const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

export function session(overrides: Partial<SessionRow> = {}): SessionRow {
  return {
    ...blankSession(T0),
    requested_type: "domain",
    requested_host: "example.com",
    requested_port: 80,
    requested_at: T0 + 2,
    target_host: "example.com",
    target_port: 80,
    remote_host: "93.184.216.34",
    remote_port: 80,
    replied_at: T0 + 12,
    closed_at: T0 + 1230,
    bytes_up_received: 100,
    bytes_up_sent: 100,
    bytes_down_received: 2048,
    bytes_down_sent: 2048,
    captured_bytes: 2148,
    protocol: "http",
    sni: "example.com",
    protocol_info: '{"method":"GET","host":"example.com","path":"/"}',
    ...overrides,
  };
}

export function chunk(overrides: Partial<ChunkRow> & { text?: string } = {}): ChunkRow {
  const { text, ...rest } = overrides;
  const data = rest.data ?? Buffer.from(text ?? "hello\n");
  return {
    id: 1,
    session_id: 1,
    seq: 0,
    at: T0 + 20,
    direction: "up",
    data,
    size: data.length,
    sent: null,
    verdict: null,
    ...rest,
  };
}

export function datagram(overrides: Partial<DatagramRow> = {}): DatagramRow {
  return blankDatagram(T0 + 30, overrides);
}

export function event(overrides: Partial<EventRow> = {}): EventRow {
  return {
    id: 1,
    session_id: 1,
    run_id: 1,
    at: T0 + 40,
    kind: "hook-error",
    addon: "thrower.ts",
    hook: "onData",
    location: "thrower.ts:5:3",
    code: "threw",
    message: "boom",
    ...overrides,
  };
}

/** SGR colour sequences removed: what a reader sees. */
export function plain(frame: string | undefined): string {
  return (frame ?? "").replace(/\x1b\[[0-9;]*m/g, "");
}

/** True when the text holds a control character other than a line feed (after SGR is removed). */
export function hasRawControl(text: string): boolean {
  return /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/.test(text);
}
