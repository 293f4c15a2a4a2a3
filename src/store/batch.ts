/**
 * What the recorder (main thread) sends the writer (worker thread): batches of operations, in
 * the order the engine reported the facts, applied by the writer in one transaction each.
 *
 * Payload bytes do not travel inside the operations: the recorder copies them into the batch's
 * arena, one ArrayBuffer that is transferred (not cloned) with the batch, and operations point
 * into it by offset and length.
 *
 * The operations there are many of (chunks, datagrams, and each session's open, auth, request,
 * reply, progress and close) travel as records: fixed-size rows of numbers in a second
 * transferred buffer (RecordBuffer, layouts below), strings as indexes into the batch's string
 * table (each distinct string sent once per batch). Structured-cloning an object per datagram
 * cost about as much CPU as inserting its row (the main thread serialising ~18 named fields, the
 * writer deserialising them and collecting the garbage). A `records` operation stands for a run
 * of consecutive records, so the order of everything stays the order of the facts. The object
 * forms stay for the rare operations, and for writing a batch without a transport (tests,
 * replayed-session.ts).
 */
import type { TlsRow } from "../model/capture-rows.js";

/** A slice of the batch's arena. */
export interface Slice {
  readonly offset: number;
  readonly length: number;
}

export type Operation =
  | {
      readonly op: "open";
      readonly sid: number;
      readonly engineId: number;
      readonly at: number;
      readonly clientHost: string;
      readonly clientPort: number;
      readonly localHost: string;
      readonly localPort: number;
    }
  | {
      readonly op: "auth";
      readonly sid: number;
      readonly version: string;
      readonly method: string | null;
      readonly offered: readonly number[];
      readonly user: string | null;
    }
  | {
      readonly op: "request";
      readonly sid: number;
      readonly at: number;
      readonly version: string;
      readonly command: string;
      readonly type: string;
      readonly host: string;
      readonly port: number;
      readonly user: string | null;
    }
  | {
      readonly op: "reply";
      readonly sid: number;
      readonly at: number;
      readonly rep: number;
      readonly code: string | null;
      readonly errno: string | null;
      readonly boundHost: string;
      readonly boundPort: number;
      readonly targetHost: string | null;
      readonly targetPort: number | null;
      readonly remoteHost: string | null;
      readonly remotePort: number | null;
      readonly attempts: string | null;
      /** JSON array of the upstream hops, credentials stripped; null when direct. */
      readonly route: string | null;
    }
  | {
      readonly op: "chunk";
      readonly sid: number;
      readonly seq: number;
      readonly at: number;
      readonly direction: "up" | "down";
      readonly data: Slice;
      readonly size: number;
      readonly sent: Slice | null;
      readonly verdict: string | null;
    }
  | {
      readonly op: "datagram";
      readonly sid: number;
      readonly seq: number;
      readonly at: number;
      readonly direction: "up" | "down";
      readonly peerType: string | null;
      readonly peerHost: string | null;
      readonly peerPort: number | null;
      readonly fromHost: string;
      readonly fromPort: number;
      readonly toHost: string | null;
      readonly toPort: number | null;
      readonly data: Slice;
      readonly size: number;
      readonly sent: Slice | null;
      readonly verdict: string;
      readonly reason: string | null;
      readonly detail: string | null;
    }
  | {
      readonly op: "event";
      readonly sid: number | null;
      readonly at: number;
      readonly kind: string;
      readonly addon: string | null;
      readonly hook: string | null;
      readonly location: string | null;
      readonly code: string | null;
      readonly message: string;
    }
  /** What the session replays (client replay) or was served from (server replay). */
  | { readonly op: "links"; readonly sid: number; readonly replayOf: number | null; readonly servedFrom: number | null }
  /** The session's tags, whole (JSON object text). */
  | { readonly op: "tags"; readonly sid: number; readonly tags: string }
  | { readonly op: "detected"; readonly sid: number; readonly protocol: string; readonly sni: string | null; readonly info: string | null }
  /** The session's `tls` row, whole (one per session; a second replaces the first). */
  | { readonly op: "tls"; readonly sid: number; readonly row: Omit<TlsRow, "session_id"> }
  /** Records `from` to `from + count - 1` of the batch's RecordBuffer, in order. */
  | { readonly op: "records"; readonly from: number; count: number }
  /** Running byte counts of an open session, so live views and crash survivors have them. */
  | ({ readonly op: "progress"; readonly sid: number } & SessionCounts)
  /** The session's end, with its final counts. */
  | ({
      readonly op: "close";
      readonly sid: number;
      readonly at: number;
      readonly status: string;
      readonly reason: string;
      readonly errno: string | null;
    } & SessionCounts);

/** A session's byte counts, running (`progress`) or final (`close`). */
export interface SessionCounts {
  readonly upReceived: number;
  readonly upSent: number;
  readonly downReceived: number;
  readonly downSent: number;
  readonly captured: number;
  readonly truncated: boolean;
  /** Datagram records left out so far (the capture was behind); absent = 0. */
  readonly uncaptured?: number;
}

/**
 * Record layout: RECORD_SLOTS float64 slots each. Strings (and their nulls) are indexes into the
 * batch's `strings`, -1 for null; numbers that may be null are NaN for null; a null `sent` has
 * offset -1.
 */
export const RECORD_SLOTS = 20;
export const R_KIND = 0;
export const R_SID = 1;
export const R_SEQ = 2;
export const R_AT = 3;
/** 0 up, 1 down. */
export const R_DIRECTION = 4;
export const R_DATA_OFFSET = 5;
export const R_DATA_LENGTH = 6;
export const R_SIZE = 7;
export const R_SENT_OFFSET = 8;
export const R_SENT_LENGTH = 9;
export const R_VERDICT = 10;
// Datagrams only.
export const R_PEER_TYPE = 11;
export const R_PEER_HOST = 12;
export const R_PEER_PORT = 13;
export const R_FROM_HOST = 14;
export const R_FROM_PORT = 15;
export const R_TO_HOST = 16;
export const R_TO_PORT = 17;
export const R_REASON = 18;
export const R_DETAIL = 19;
/** R_KIND values. */
export const KIND_CHUNK = 1;
export const KIND_DATAGRAM = 2;
export const KIND_OPEN = 3;
export const KIND_AUTH = 4;
export const KIND_REQUEST = 5;
export const KIND_REPLY = 6;
export const KIND_PROGRESS = 7;
export const KIND_CLOSE = 8;

/**
 * Slots of the session records after R_KIND and R_SID: the fields of the operation of the same
 * name. `truncated` is 0 or 1; auth's `offered` is its JSON text.
 */
export const OPEN_SLOTS = { engineId: 2, at: 3, clientHost: 4, clientPort: 5, localHost: 6, localPort: 7 } as const;
export const AUTH_SLOTS = { version: 2, method: 3, offered: 4, user: 5 } as const;
export const REQUEST_SLOTS = { at: 2, version: 3, command: 4, type: 5, host: 6, port: 7, user: 8 } as const;
export const REPLY_SLOTS = {
  at: 2,
  rep: 3,
  code: 4,
  errno: 5,
  boundHost: 6,
  boundPort: 7,
  targetHost: 8,
  targetPort: 9,
  remoteHost: 10,
  remotePort: 11,
  attempts: 12,
  route: 13,
} as const;
/** The counts of progress and close records, from `first`. */
export const COUNT_SLOTS = { upReceived: 0, upSent: 1, downReceived: 2, downSent: 3, captured: 4, truncated: 5, uncaptured: 6 } as const;
export const PROGRESS_FIRST_COUNT = 2;
export const CLOSE_SLOTS = { at: 2, status: 3, reason: 4, errno: 5 } as const;
export const CLOSE_FIRST_COUNT = 6;

/** The records of a batch. */
export interface RecordBuffer {
  /** `count` records of RECORD_SLOTS float64s each (transferred, and sent back with the ack for reuse). */
  readonly buffer: ArrayBuffer;
  readonly count: number;
  /** What the records' string slots index. */
  readonly strings: readonly string[];
}

export interface Batch {
  /** Increasing from 1; the writer acknowledges each one. */
  readonly seq: number;
  readonly ops: readonly Operation[];
  /** The records that `records` operations refer to. */
  readonly records?: RecordBuffer;
  /** Payload bytes the operations' slices point into (absent when the batch has none). */
  readonly arena?: ArrayBuffer;
  /** Payload bytes in the arena: what the acknowledgement frees. */
  readonly bytes: number;
}

/** Main thread → worker. */
export type WriterRequest =
  | { readonly type: "start"; readonly file: string; readonly runId: number; readonly maxPageCount?: number }
  | { readonly type: "batch"; readonly batch: Batch }
  | { readonly type: "stop"; readonly at: number };

/** Worker → main thread. */
export type WriterReply =
  /** A batch is written; its arena and record buffer come back (transferred) to be filled again. `ops`: how many it had, records included. */
  | { readonly type: "ack"; readonly seq: number; readonly bytes: number; readonly ops: number; readonly arena?: ArrayBuffer; readonly records?: ArrayBuffer }
  | { readonly type: "failed"; readonly message: string; readonly code?: string }
  | { readonly type: "stopped" };
