/**
 * The capture file's data model and its migrations.
 *
 * One SQLite file in WAL mode. The schema version is SQLite's `user_version`; `MIGRATIONS[n]`
 * takes a file from version n to n + 1, and a file is always brought to `SCHEMA_VERSION` in one
 * transaction when it is opened for writing. A file with a newer version than this build knows
 * is refused rather than guessed at.
 *
 * Conventions in every table:
 * - Times (`*_at`) are milliseconds since the Unix epoch, as REAL.
 * - Directions are 'up' (client → target) and 'down' (target → client).
 * - Payload is stored byte for byte as BLOB; nothing is decoded or re-encoded.
 * - Passwords are never stored: `sessions.user` is the RFC 1929 name or the SOCKS4 USERID only.
 */
import type Database from "better-sqlite3";

/** Session status, as the filter language's `status:` names it. */
export type SessionStatus =
  /** Still open (or the recorder has not seen it close yet). */
  | "open"
  /** The request succeeded (reply 0) and the session has ended, however it ended. */
  | "ok"
  /** Refused by policy: authentication, a rule or an addon (reply 2), onOpen, the session limit. */
  | "denied"
  /** Anything else that ended without a success reply: connect errors, protocol errors, timeouts. */
  | "failed"
  /** The process that recorded it stopped (crash, kill -9) while the session was open. */
  | "interrupted";

/** How a chunk or datagram was treated by the hooks; null means passed unchanged. */
export type StoredVerdict = "replace" | "drop" | "close" | "reset" | "inject";

/** One row of `sessions`, as the reader returns it. */
export interface SessionRow {
  /** Unique in the file (engine session ids restart with each run; this does not). */
  readonly id: number;
  /** The run (process) that recorded it: `runs.id`. */
  readonly run_id: number;
  /** The engine's session number in that run: the `#N` of the session log. */
  readonly engine_id: number;
  readonly opened_at: number;
  readonly client_host: string;
  readonly client_port: number;
  readonly local_host: string;
  readonly local_port: number;
  /** '4', '4a' or '5'; null until a request (or a greeting) was read. */
  readonly version: "4" | "4a" | "5" | null;
  /** 'connect', 'bind' or 'udp'; null until a request was read. */
  readonly command: "connect" | "bind" | "udp" | null;
  /** 'none', 'userpass', 'socks4' (USERID only), or 'no-acceptable' when no offered method fit. */
  readonly auth_method: string | null;
  /** The SOCKS5 methods the client offered, as a JSON array of numbers. */
  readonly auth_offered: string | null;
  readonly user: string | null;
  /** The destination as the client wrote it: 'ipv4' | 'ipv6' | 'domain'. */
  readonly requested_type: string | null;
  readonly requested_host: string | null;
  readonly requested_port: number | null;
  readonly requested_at: number | null;
  /** Where the proxy dialled, after addon redirects; null when it never dialled. */
  readonly target_host: string | null;
  readonly target_port: number | null;
  /** The resolved address the upstream socket connected to. */
  readonly remote_host: string | null;
  readonly remote_port: number | null;
  /** BND.ADDR / BND.PORT of the (last) reply. */
  readonly bound_host: string | null;
  readonly bound_port: number | null;
  /** SOCKS5 REP of the (last) reply; null before any reply. SOCKS4 replies are stored as their REP. */
  readonly reply: number | null;
  /** The engine's ProtocolErrorCode when the reply was a failure. */
  readonly reply_code: string | null;
  /** The OS error behind a connect failure (ECONNREFUSED, ENOTFOUND, …). */
  readonly errno: string | null;
  readonly replied_at: number | null;
  /** JSON array of the addresses tried by the dialler, when it tried several or failed. */
  readonly attempts: string | null;
  readonly status: SessionStatus;
  /** The engine's CloseReason ('completed', 'client-reset', …), or 'interrupted'. */
  readonly close_reason: string | null;
  readonly close_errno: string | null;
  readonly closed_at: number | null;
  /** Bytes per direction, exact: read from the source and written to the destination. */
  readonly bytes_up_received: number;
  readonly bytes_up_sent: number;
  readonly bytes_down_received: number;
  readonly bytes_down_sent: number;
  /** Payload bytes stored in `chunks` (as received); less than received when truncated. */
  readonly captured_bytes: number;
  /** 1 when `--capture-limit` cut the stored payload short. */
  readonly truncated: number;
  /**
   * UDP datagrams relayed (or dropped by the relay) whose record the capture left out because it
   * was behind (its queue full): datagrams cannot be paused like TCP, so their records are
   * dropped and counted instead (memory bounded: docs/architecture.md, "Trust rules"). 0 for TCP sessions.
   */
  readonly uncaptured_datagrams: number;
  /** 'tls', 'http', 'ssh' or null: detected from the first client bytes. */
  readonly protocol: string | null;
  /** TLS server name (SNI) or HTTP Host. */
  readonly sni: string | null;
  /** Protocol details as JSON: { alpn: string[] } for TLS, { method, host, path } for HTTP, { banner } for SSH. */
  readonly protocol_info: string | null;
  /** Tags set by addons, as a JSON object of strings. */
  readonly tags: string;
  /** The session this one replays (client replay), or null. */
  readonly replay_of: number | null;
  /** The recorded session a server replay answered this one from, or null. */
  readonly served_from: number | null;
}

/** One row of `chunks`: bytes of a TCP session in one direction, as one read delivered them. */
export interface ChunkRow {
  readonly id: number;
  readonly session_id: number;
  /** Per-session sequence number across both directions, from 0 (the engine's). */
  readonly seq: number;
  readonly at: number;
  readonly direction: "up" | "down";
  /** Bytes as received from the source (cut short when the session hit the capture limit). */
  readonly data: Buffer;
  /** The full length received, even when `data` was cut short. */
  readonly size: number;
  /** Bytes as sent, when a hook changed them (empty for drop/close/reset); null when unchanged. */
  readonly sent: Buffer | null;
  readonly verdict: StoredVerdict | null;
}

/** One row of `datagrams`: one UDP datagram of an association, relayed or dropped. */
export interface DatagramRow {
  readonly id: number;
  /** The UDP ASSOCIATE session that owns the association. */
  readonly session_id: number;
  readonly seq: number;
  readonly at: number;
  readonly direction: "up" | "down";
  /** The remote peer (where 'up' went as the client wrote it, where 'down' came from). */
  readonly peer_type: string | null;
  readonly peer_host: string | null;
  readonly peer_port: number | null;
  /** The wire source of the datagram (client or remote). */
  readonly from_host: string;
  readonly from_port: number;
  /** Where it went after resolution and redirects; null when dropped. */
  readonly to_host: string | null;
  readonly to_port: number | null;
  /** Payload as received, without the SOCKS header. */
  readonly data: Buffer;
  readonly size: number;
  readonly sent: Buffer | null;
  /** "injected": an addon (or a server replay) sent it to the client; `from` is the peer it claims. */
  readonly verdict: "relayed" | "dropped" | "injected";
  /** Why it was dropped (the engine's DatagramDropReason). */
  readonly reason: string | null;
  readonly detail: string | null;
}

/** What an event row records. */
export type EventKind =
  /** An addon hook threw, rejected or timed out (addon, hook, location, message). */
  | "hook-error"
  /** An addon called ctx.log(). */
  | "addon-log"
  /** An addon called ctx.tag(); message is `key=value`. */
  | "tag"
  /** Something out of spec the engine tolerated or rejected (code, message). */
  | "anomaly"
  /**
   * Capture itself: truncation started (code 'truncated'), datagram records left out while the
   * capture was behind (code 'datagrams-not-captured', one per burst, with the count), capture
   * stopped after an error.
   */
  | "capture";

/** One row of `events`: things that happened to a session (or to the run, with session_id null). */
export interface EventRow {
  readonly id: number;
  readonly session_id: number | null;
  readonly run_id: number;
  readonly at: number;
  readonly kind: EventKind;
  readonly addon: string | null;
  readonly hook: string | null;
  /** The addon's own file:line:column, for hook errors. */
  readonly location: string | null;
  /** A stable code: the anomaly code, the hook failure kind ('threw', 'rejected', 'timed-out'). */
  readonly code: string | null;
  readonly message: string;
}

/** One row of `runs`: one process that wrote to the file. */
export interface RunRow {
  readonly id: number;
  readonly started_at: number;
  /** null while the run is going (or if it died without closing the file). */
  readonly ended_at: number | null;
  readonly pid: number;
  readonly hostname: string;
  /** JSON array of the listen addresses. */
  readonly listen: string;
  readonly socksmith_version: string;
}

/**
 * SQL for the last time known of a session row (`sessions.*` in scope): its last chunk or
 * datagram, request or reply, else when it opened. What an interrupted session's closed_at is.
 */
export const LAST_KNOWN_TIME = `max(
  sessions.opened_at,
  coalesce(sessions.requested_at, 0),
  coalesce(sessions.replied_at, 0),
  coalesce((SELECT max(at) FROM chunks WHERE session_id = sessions.id), 0),
  coalesce((SELECT max(at) FROM datagrams WHERE session_id = sessions.id), 0))`;

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
      UPDATE sessions SET closed_at = ${LAST_KNOWN_TIME} WHERE status = 'interrupted' AND closed_at IS NULL;
    `);
  },
];

/** The version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;
