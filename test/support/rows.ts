/** A capture row with every column filled, for tests that build rows by hand (each suite sets its own defaults on top). */
import type { DatagramRow, SessionRow } from "../../src/store/schema.js";

/** A closed, successful SOCKS5 CONNECT from 127.0.0.1:50000 with no target, timings or bytes yet. */
export function blankSession(openedAt: number): SessionRow {
  return {
    id: 1,
    run_id: 1,
    engine_id: 1,
    opened_at: openedAt,
    client_host: "127.0.0.1",
    client_port: 50000,
    local_host: "127.0.0.1",
    local_port: 1080,
    version: "5",
    command: "connect",
    auth_method: "none",
    auth_offered: "[0]",
    user: null,
    requested_type: null,
    requested_host: null,
    requested_port: null,
    requested_at: null,
    target_host: null,
    target_port: null,
    remote_host: null,
    remote_port: null,
    bound_host: "0.0.0.0",
    bound_port: 0,
    reply: 0,
    reply_code: null,
    errno: null,
    replied_at: null,
    attempts: null,
    status: "ok",
    close_reason: "completed",
    close_errno: null,
    closed_at: null,
    uncaptured_datagrams: 0,
    bytes_up_received: 0,
    bytes_up_sent: 0,
    bytes_down_received: 0,
    bytes_down_sent: 0,
    captured_bytes: 0,
    truncated: 0,
    protocol: null,
    sni: null,
    protocol_info: null,
    tags: "{}",
    replay_of: null,
    served_from: null,
  };
}

/** A relayed "up" datagram of session 1 (ping to 8.8.8.8:53 from 127.0.0.1:40000) at `at`. */
export function blankDatagram(at: number, overrides: Partial<DatagramRow> = {}): DatagramRow {
  const data = overrides.data ?? Buffer.from("ping");
  return {
    id: 1,
    session_id: 1,
    seq: 0,
    at,
    direction: "up",
    peer_type: "ipv4",
    peer_host: "8.8.8.8",
    peer_port: 53,
    from_host: "127.0.0.1",
    from_port: 40000,
    to_host: "8.8.8.8",
    to_port: 53,
    data,
    size: data.length,
    sent: null,
    verdict: "relayed",
    reason: null,
    detail: null,
    ...overrides,
  };
}
