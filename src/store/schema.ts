/**
 * The capture file's data model and its migrations.
 *
 * One SQLite file in WAL mode, and beside it `<file>-payload`, the payload of large rows (payload-file.ts). The schema version is SQLite's `user_version`; `MIGRATIONS[n]`
 * takes a file from version n to n + 1, and a file is always brought to `SCHEMA_VERSION` in one
 * transaction when it is opened for writing. A file with a newer version than this build knows
 * is refused rather than guessed at.
 *
 * Conventions in every table:
 * - Times (`*_at`) are milliseconds since the Unix epoch, as REAL.
 * - Directions are 'up' (client → target) and 'down' (target → client).
 * - Payload is stored byte for byte, nothing decoded or re-encoded: as a BLOB in the row, or (rows
 *   with more than INLINE_MAX bytes, schema 5) in the payload file beside the capture file, or
 *   (datagrams, schema 6) in the BLOB of a batch row (datagram-batches.ts).
 * - Passwords are never stored: `sessions.user` is the RFC 1929 name or the SOCKS4 USERID only,
 *   and `sessions.route` holds upstream hops as `scheme://host:port`, without their credentials.
 */
import type Database from "better-sqlite3";

/** The row types live in model/capture-rows.ts (imported from below by every part that handles rows). */
export type {
  SessionStatus,
  StoredVerdict,
  SessionRow,
  ChunkRow,
  DatagramRow,
  EventKind,
  EventRow,
  RunRow,
  TlsDecision,
  TlsRow,
} from "../model/capture-rows.js";

/**
 * SQL for the last time known of a session row (`sessions.*` in scope): its last chunk or
 * datagram, request or reply, else when it opened. What an interrupted session's closed_at is.
 */
export const LAST_KNOWN_TIME = `max(
  sessions.opened_at,
  coalesce(sessions.requested_at, 0),
  coalesce(sessions.replied_at, 0),
  coalesce((SELECT max(at) FROM chunks WHERE session_id = sessions.id), 0),
  coalesce((SELECT max(at) FROM datagram_rows WHERE session_id = sessions.id), 0),
  coalesce((SELECT max(last_at) FROM datagram_batches WHERE session_id = sessions.id), 0))`;

/** LAST_KNOWN_TIME as schema 1 → 2 had it (datagrams was a table then). */
const LAST_KNOWN_TIME_2 = `max(
  sessions.opened_at,
  coalesce(sessions.requested_at, 0),
  coalesce(sessions.replied_at, 0),
  coalesce((SELECT max(at) FROM chunks WHERE session_id = sessions.id), 0),
  coalesce((SELECT max(at) FROM datagrams WHERE session_id = sessions.id), 0))`;

/** The columns of `datagrams` (the view) and `datagram_rows`, in order, as schema 6 made them (step 5 → 6 uses it: never edit). */
const DATAGRAM_COLUMNS_6 =
  "id, session_id, seq, at, direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, data, size, sent, verdict, reason, detail, payload_at, payload_data, payload_sent";

/**
 * Column `k` of a batch's datagram's shape, in the `datagrams` view (schema 6: never edit): a
 * path into `shapes` (2-3x faster than joining json_each over them; no `->>`, which sqlite3
 * before 3.38 lacks).
 */
function shapeColumn(k: number): string {
  return `json_extract(b.shapes, '$[' || json_extract(i.value, '$[2]') || '][${k}]')`;
}

/** The columns of `datagrams` (the view) and `datagram_rows`, in order. */
export const DATAGRAM_COLUMNS = DATAGRAM_COLUMNS_6;

/** Each step takes the file from version `index` to `index + 1`. Never edit a shipped step. */
export const MIGRATIONS: readonly ((db: Database.Database) => void)[] = [
  // 0 → 1: the first schema.
  (db) => {
    db.exec(`
      CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        pid INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        listen TEXT NOT NULL,
        socksmith_version TEXT NOT NULL
      );
      CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        engine_id INTEGER NOT NULL,
        opened_at REAL NOT NULL,
        client_host TEXT NOT NULL,
        client_port INTEGER NOT NULL,
        local_host TEXT NOT NULL,
        local_port INTEGER NOT NULL,
        version TEXT,
        command TEXT,
        auth_method TEXT,
        auth_offered TEXT,
        user TEXT,
        requested_type TEXT,
        requested_host TEXT,
        requested_port INTEGER,
        requested_at REAL,
        target_host TEXT,
        target_port INTEGER,
        remote_host TEXT,
        remote_port INTEGER,
        bound_host TEXT,
        bound_port INTEGER,
        reply INTEGER,
        reply_code TEXT,
        errno TEXT,
        replied_at REAL,
        attempts TEXT,
        status TEXT NOT NULL DEFAULT 'open',
        close_reason TEXT,
        close_errno TEXT,
        closed_at REAL,
        bytes_up_received INTEGER NOT NULL DEFAULT 0,
        bytes_up_sent INTEGER NOT NULL DEFAULT 0,
        bytes_down_received INTEGER NOT NULL DEFAULT 0,
        bytes_down_sent INTEGER NOT NULL DEFAULT 0,
        captured_bytes INTEGER NOT NULL DEFAULT 0,
        truncated INTEGER NOT NULL DEFAULT 0,
        protocol TEXT,
        sni TEXT,
        protocol_info TEXT,
        tags TEXT NOT NULL DEFAULT '{}',
        replay_of INTEGER REFERENCES sessions(id),
        served_from INTEGER REFERENCES sessions(id)
      );
      CREATE INDEX sessions_status ON sessions(status);
      CREATE INDEX sessions_run ON sessions(run_id, engine_id);
      CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        direction TEXT NOT NULL,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        sent BLOB,
        verdict TEXT
      );
      CREATE INDEX chunks_session ON chunks(session_id, seq);
      CREATE TABLE datagrams (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        direction TEXT NOT NULL,
        peer_type TEXT,
        peer_host TEXT,
        peer_port INTEGER,
        from_host TEXT NOT NULL,
        from_port INTEGER NOT NULL,
        to_host TEXT,
        to_port INTEGER,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        sent BLOB,
        verdict TEXT NOT NULL,
        reason TEXT,
        detail TEXT
      );
      CREATE INDEX datagrams_session ON datagrams(session_id, seq);
      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        session_id INTEGER REFERENCES sessions(id),
        run_id INTEGER NOT NULL REFERENCES runs(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        addon TEXT,
        hook TEXT,
        location TEXT,
        code TEXT,
        message TEXT NOT NULL
      );
      CREATE INDEX events_session ON events(session_id, id);
    `);
  },
  // 1 → 2: datagram records the capture left out (issue 11); interrupted sessions get a closed_at;
  // a session's chunks and datagrams in order (`WHERE session_id = ? [AND id > ?] ORDER BY id`)
  // straight from an index: with only (session_id, seq), SQLite sorted all of a session's rows,
  // payload included, in a temporary B-tree before returning the first one.
  (db) => {
    db.exec(`
      ALTER TABLE sessions ADD COLUMN uncaptured_datagrams INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX chunks_session_order ON chunks(session_id);
      CREATE INDEX datagrams_session_order ON datagrams(session_id);
      UPDATE sessions SET closed_at = ${LAST_KNOWN_TIME_2} WHERE status = 'interrupted' AND closed_at IS NULL;
    `);
  },
  // 2 → 3: TLS interception (issue 13): one row per session whose CONNECT tunnel began with a
  // ClientHello while `run --tls` was on. session_id is the rowid, so a session's row is one lookup
  // and the filter's EXISTS subqueries need no index of their own.
  (db) => {
    db.exec(`
      CREATE TABLE tls (
        session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
        at REAL NOT NULL,
        intercepted INTEGER NOT NULL,
        decided_by TEXT NOT NULL,
        sni TEXT,
        alpn_offered TEXT NOT NULL DEFAULT '[]',
        versions_offered TEXT NOT NULL DEFAULT '[]',
        client_version TEXT,
        client_cipher TEXT,
        client_alpn TEXT,
        upstream_version TEXT,
        upstream_cipher TEXT,
        upstream_alpn TEXT,
        cert_subject TEXT,
        cert_issuer TEXT,
        cert_sans TEXT,
        cert_valid_from TEXT,
        cert_valid_to TEXT,
        cert_fingerprint TEXT,
        verification TEXT,
        failure_side TEXT,
        failure_code TEXT,
        failure_message TEXT
      );
    `);
  },
  // 3 → 4: upstream proxies (issue 14): the hops a session went through, as a JSON array of
  // `scheme://host:port` (no credentials); NULL for a session that went direct.
  (db) => {
    db.exec("ALTER TABLE sessions ADD COLUMN route TEXT;");
  },
  // 4 → 5: payload written once (issue 16): a chunk or datagram with more than INLINE_MAX bytes
  // of payload keeps it in the payload file beside the capture (store/payload-file.ts) at
  // `payload_at`: `payload_data` bytes as received, then `payload_sent` bytes as sent (NULL when
  // unchanged); its `data` is then x'' and its `sent` NULL or x''. NULL `payload_at`: inline, as
  // before. `payload_file.bytes` is how much of the payload file committed rows refer to;
  // `payload_file.name` is NULL except while `prune` swaps in a compacted file (prune.ts).
  (db) => {
    db.exec(`
      ALTER TABLE chunks ADD COLUMN payload_at INTEGER;
      ALTER TABLE chunks ADD COLUMN payload_data INTEGER;
      ALTER TABLE chunks ADD COLUMN payload_sent INTEGER;
      ALTER TABLE datagrams ADD COLUMN payload_at INTEGER;
      ALTER TABLE datagrams ADD COLUMN payload_data INTEGER;
      ALTER TABLE datagrams ADD COLUMN payload_sent INTEGER;
      CREATE TABLE payload_file (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL, name TEXT);
      INSERT INTO payload_file (id, bytes) VALUES (1, 0);
    `);
  },
  // 5 → 6: datagram batches (issue 16, store/datagram-batches.ts): the datagrams of an
  // association as one row per session per flush. The table of one row per datagram becomes
  // `datagram_rows` (datagrams recorded out of seq order, or with their payload in the payload
  // file) and `datagrams` is a view of both, with the columns the table had: queries written for
  // older files keep working. Inserting into the view inserts a row (ids continue after both
  // tables'); the writer and prune use the tables.
  (db) => {
    db.exec(`
      ALTER TABLE datagrams RENAME TO datagram_rows;
      CREATE TABLE datagram_batches (
        first_id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        count INTEGER NOT NULL,
        min_seq INTEGER NOT NULL,
        max_seq INTEGER NOT NULL,
        at REAL NOT NULL,
        last_at REAL NOT NULL,
        shapes TEXT NOT NULL,
        items TEXT NOT NULL,
        payload BLOB NOT NULL
      );
      CREATE INDEX datagram_batches_session ON datagram_batches(session_id, max_seq);
      CREATE VIEW datagrams AS
        SELECT ${DATAGRAM_COLUMNS_6} FROM datagram_rows
        UNION ALL
        SELECT b.first_id + i.key, b.session_id,
          json_extract(i.value, '$[0]'),
          b.at + json_extract(i.value, '$[1]'),
          ${[0, 1, 2, 3, 4, 5, 6, 7].map((k) => shapeColumn(k)).join(",\n          ")},
          substr(b.payload, json_extract(i.value, '$[4]') + 1, json_extract(i.value, '$[5]')),
          json_extract(i.value, '$[3]'),
          CASE WHEN json_array_length(i.value) > 6 THEN substr(b.payload, json_extract(i.value, '$[6]') + 1, json_extract(i.value, '$[7]')) END,
          ${[8, 9, 10].map((k) => shapeColumn(k)).join(",\n          ")},
          NULL, NULL, NULL
        FROM datagram_batches AS b, json_each(b.items) AS i;
      CREATE TRIGGER datagrams_insert INSTEAD OF INSERT ON datagrams BEGIN
        INSERT INTO datagram_rows (${DATAGRAM_COLUMNS_6}) VALUES (
          coalesce(NEW.id, 1 + max(
            coalesce((SELECT max(id) FROM datagram_rows), 0),
            coalesce((SELECT first_id + count - 1 FROM datagram_batches ORDER BY first_id DESC LIMIT 1), 0))),
          NEW.session_id, NEW.seq, NEW.at, NEW.direction, NEW.peer_type, NEW.peer_host, NEW.peer_port, NEW.from_host, NEW.from_port,
          NEW.to_host, NEW.to_port, NEW.data, NEW.size, NEW.sent, NEW.verdict, NEW.reason, NEW.detail, NEW.payload_at, NEW.payload_data,
          NEW.payload_sent);
      END;
    `);
  },
];

/** The version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;
