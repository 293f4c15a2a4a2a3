/** Sessions in an in-memory capture database, and the same sessions as rows for the predicate. */
import Database from "better-sqlite3";
import { registerFilterFunctions, toPredicate, toSql, type Filter } from "../../src/filter/index.js";
import { MIGRATIONS, type SessionRow, type TlsRow } from "../../src/store/schema.js";
import { tlsRowOf } from "../../src/filter/session-row-of.js";
import { blankSession } from "../support/rows.js";

export const BASE = 1_700_000_000_000;
/** The `now` every comparison in these tests runs at. */
export const NOW = BASE + 20_000;

/** One stored payload: a chunk's or datagram's data, and what was sent instead (or null). */
export interface Payload {
  readonly data: Uint8Array;
  readonly sent: Uint8Array | null;
}

export interface Session {
  readonly row: SessionRow;
  readonly chunks: readonly Payload[];
  readonly datagrams: readonly Payload[];
  /** The session's `tls` row (its session_id is the row's id). */
  readonly tls?: TlsRow;
}

/** An intercepted TLS 1.3 session's row, no ALPN, nothing failed; `overrides` change any column. */
export function tlsRow(sessionId: number, overrides: Partial<TlsRow> = {}): TlsRow {
  return tlsRowOf({
    session_id: sessionId,
    at: BASE,
    intercepted: 1,
    versions_offered: '["TLSv1.3"]',
    client_version: "TLSv1.3",
    client_cipher: "TLS_AES_128_GCM_SHA256",
    upstream_version: "TLSv1.3",
    upstream_cipher: "TLS_AES_128_GCM_SHA256",
    ...overrides,
  });
}

/** A closed, successful CONNECT session with no payload; `overrides` change any column. */
export function sessionRow(id: number, overrides: Partial<SessionRow> = {}): SessionRow {
  return {
    ...blankSession(BASE),
    id,
    engine_id: id,
    client_port: 50000 + id,
    requested_type: "domain",
    requested_host: "example.com",
    requested_port: 443,
    requested_at: BASE,
    target_host: "example.com",
    target_port: 443,
    remote_host: "93.184.216.34",
    remote_port: 443,
    replied_at: BASE,
    closed_at: BASE + 1000,
    ...overrides,
  };
}

export const bytes = (text: string): Uint8Array => Buffer.from(text, "latin1");

/** A capture database holding the sessions, with the filter functions registered. */
export function captureDb(sessions: readonly Session[]): Database.Database {
  const db = new Database(":memory:");
  for (const migrate of MIGRATIONS) migrate(db);
  registerFilterFunctions(db);
  db.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, ?, 1, 'test', '[]', '0')").run(BASE);
  const first = sessions[0];
  if (first === undefined) return db;
  const columns = Object.keys(first.row);
  const insertSession = db.prepare(`INSERT INTO sessions (${columns.join(", ")}) VALUES (${columns.map((c) => `@${c}`).join(", ")})`);
  const insertChunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent) VALUES (?, ?, ?, 'up', ?, ?, ?)");
  const insertDatagram = db.prepare(
    "INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, sent, verdict) VALUES (?, ?, ?, 'up', '127.0.0.1', 1, ?, ?, ?, 'relayed')",
  );
  const tlsColumns = Object.keys(tlsRow(0));
  const insertTls = db.prepare(`INSERT INTO tls (${tlsColumns.join(", ")}) VALUES (${tlsColumns.map((c) => `@${c}`).join(", ")})`);
  const blob = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b));
  for (const { row, chunks, datagrams, tls } of sessions) {
    insertSession.run(row);
    if (tls !== undefined) insertTls.run(tls);
    chunks.forEach((c, seq) => insertChunk.run(row.id, seq, BASE, blob(c.data), c.data.length, blob(c.sent)));
    datagrams.forEach((d, seq) => insertDatagram.run(row.id, seq, BASE, blob(d.data), d.data.length, blob(d.sent)));
  }
  return db;
}

/** Ids the SQL compilation selects, ascending. */
export function sqlIds(db: Database.Database, filter: Filter, table?: string): number[] {
  const { where, params } = toSql(filter, table === undefined ? { now: NOW } : { now: NOW, table });
  const from = table === undefined ? "sessions" : `sessions AS ${table}`;
  return (db.prepare(`SELECT id FROM ${from} WHERE ${where} ORDER BY id`).all(...params) as { id: number }[]).map((r) => r.id);
}

/** Ids the predicate accepts, ascending. */
export function predicateIds(sessions: readonly Session[], filter: Filter): number[] {
  const matches = toPredicate(filter);
  const byId = new Map(sessions.map((s) => [s.row.id, s]));
  const payloads = function* (row: SessionRow) {
    const session = byId.get(row.id)!;
    for (const p of [...session.chunks, ...session.datagrams]) {
      yield p.data;
      if (p.sent !== null) yield p.sent;
    }
  };
  const tls = (row: SessionRow) => byId.get(row.id)!.tls;
  return sessions.filter((s) => matches(s.row, { now: NOW, payloads, tls })).map((s) => s.row.id);
}
