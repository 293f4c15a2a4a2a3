/**
 * What the recorder (main thread) sends the writer (worker thread): batches of operations, in
 * the order the engine reported the facts, applied by the writer in one transaction each.
 *
 * Payload bytes do not travel inside the operations: the recorder copies them into the batch's
 * arena, one ArrayBuffer that is transferred (not cloned) with the batch, and operations point
 * into it by offset and length.
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

export interface Batch {
  /** Increasing from 1; the writer acknowledges each one. */
  readonly seq: number;
  readonly ops: readonly Operation[];
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
  /** A batch is written; its arena comes back (transferred) to be filled again. `ops`: how many it had. */
  | { readonly type: "ack"; readonly seq: number; readonly bytes: number; readonly ops: number; readonly arena?: ArrayBuffer }
  | { readonly type: "failed"; readonly message: string; readonly code?: string }
  | { readonly type: "stopped" };
