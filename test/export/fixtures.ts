/** Rows as the capture reader returns them, for the export tests. */
import type { ChunkRow, DatagramRow, SessionRow } from "../../src/store/schema.js";
import { type PcapngOptions, type PcapngSession, pcapngBlocks } from "../../src/export/pcapng.js";
import { type PcapngFile, readPcapng } from "./pcapng-reader.js";
import { blankSession } from "../support/rows.js";

export const T0 = 1_700_000_000_000;

export function sessionRow(fields: Partial<SessionRow> = {}): SessionRow {
  return {
    ...blankSession(T0),
    requested_type: "ipv4",
    requested_host: "10.1.2.3",
    requested_port: 80,
    requested_at: T0 + 1,
    target_host: "10.1.2.3",
    target_port: 80,
    remote_host: "10.1.2.3",
    remote_port: 80,
    bound_host: "10.0.0.1",
    bound_port: 40000,
    replied_at: T0 + 5,
    closed_at: T0 + 100,
    ...fields,
  };
}

/** A session to a domain name the proxy resolved (or, with remote null, never dialled). */
export function domainSession(host: string, fields: Partial<SessionRow> = {}): SessionRow {
  return sessionRow({ requested_type: "domain", requested_host: host, target_host: host, ...fields });
}

let chunkIds = 0;

export function chunkRow(
  sessionId: number,
  seq: number,
  direction: "up" | "down",
  data: Buffer | string,
  at: number,
  fields: Partial<ChunkRow> = {},
): ChunkRow {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  return { id: ++chunkIds, session_id: sessionId, seq, at, direction, data: bytes, size: bytes.length, sent: null, verdict: null, ...fields };
}

export function datagramRow(
  sessionId: number,
  seq: number,
  fields: Partial<DatagramRow> & Pick<DatagramRow, "direction" | "from_host" | "from_port">,
): DatagramRow {
  const data = fields.data ?? Buffer.from(`datagram ${seq}`);
  return {
    id: ++chunkIds,
    session_id: sessionId,
    seq,
    at: T0 + 10 + seq,
    peer_type: null,
    peer_host: null,
    peer_port: null,
    to_host: null,
    to_port: null,
    size: data.length,
    sent: null,
    verdict: "relayed",
    reason: null,
    detail: null,
    ...fields,
    data,
  };
}

export function tcp(session: SessionRow, chunks: ChunkRow[] = []): PcapngSession {
  return { session, chunks, datagrams: [] };
}

export function udp(session: SessionRow, datagrams: DatagramRow[]): PcapngSession {
  return { session: { ...session, command: "udp" }, chunks: [], datagrams };
}

export function exportFile(sessions: PcapngSession[], options?: PcapngOptions): Buffer {
  return Buffer.concat([...pcapngBlocks(sessions, options)]);
}

export function roundTrip(sessions: PcapngSession[], options?: PcapngOptions): PcapngFile {
  return readPcapng(exportFile(sessions, options));
}

export const HTTP_REQUEST = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: socksmith-test\r\nAccept: */*\r\n\r\n";
const BODY = "<html><body>hello from socksmith</body></html>\n";
export const HTTP_RESPONSE = `HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`;
