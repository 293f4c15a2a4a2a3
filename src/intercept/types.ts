/**
 * The vocabulary of interactive intercept (issue 15): what a person can hold (a paused item), what
 * decides whether something pauses (a predicate over an intercept subject) and what a person can
 * do with a paused item (an action). Types only; the queue (intercept-queue.ts) holds the items,
 * the runner (intercept-runner.ts) pauses the engine's hook calls on them.
 */
import type { Direction, ProtocolErrorCode, RequestInfo, SessionId, SocksAddress } from "../engine/index.js";

/**
 * Where intercept can stop a session: its request (before anything is dialled), a chunk going
 * "up" (client → target) or "down" (target → client), or a datagram of its UDP association.
 */
export type InterceptStage = "request" | "up" | "down" | "datagram";

/**
 * What the predicate is asked about. `request` is the session's request after the addons'
 * decision (a redirect's host and port); chunks and datagrams carry their bytes after the addons.
 */
export type InterceptSubject =
  | { readonly stage: "request"; readonly request: RequestInfo }
  | { readonly stage: "up" | "down"; readonly request: RequestInfo; readonly direction: Direction; readonly seq: number; readonly data: Buffer }
  | {
      readonly stage: "datagram";
      readonly request: RequestInfo;
      readonly direction: Direction;
      readonly seq: number;
      readonly peer: SocksAddress;
      readonly data: Buffer;
    };

/**
 * Whether a subject pauses. Any function will do; the filter language compiles one. A predicate
 * that throws counts as "does not match" (the traffic flows on).
 */
export type InterceptPredicate = (subject: InterceptSubject) => boolean;

interface PausedBase {
  /** Unique among every item one queue ever held. */
  readonly key: string;
  readonly session: SessionId;
  /** The session's request after the addons' decision (redirected host and port). */
  readonly request: RequestInfo;
  /** When it paused (epoch ms, from the queue's clock). */
  readonly since: number;
}

/** A request held before anything is dialled: `request.destination` is where it would go now. */
export interface PausedRequest extends PausedBase {
  readonly kind: "request";
}

/** A chunk held before it is written: its bytes as the addons left them (after a replace). */
export interface PausedChunk extends PausedBase {
  readonly kind: "chunk";
  readonly direction: Direction;
  readonly seq: number;
  readonly data: Buffer;
}

/**
 * A datagram held before it is sent: `peer` is where an "up" one goes (after an addon's
 * redirect) or where a "down" one came from; bytes as the addons left them.
 */
export interface PausedDatagram extends PausedBase {
  readonly kind: "datagram";
  readonly direction: Direction;
  readonly seq: number;
  readonly peer: SocksAddress;
  readonly data: Buffer;
}

export type PausedItem = PausedRequest | PausedChunk | PausedDatagram;

/** Lets a request go (to another host and/or port when given), or answers it with a failure reply. */
export type RequestAction =
  | { readonly resume: true; readonly host?: string; readonly port?: number }
  /** A ProtocolErrorCode or a raw SOCKS5 REP (1-255; SOCKS4 clients get 91). */
  | { readonly deny: ProtocolErrorCode | number };

/**
 * Lets a chunk go (these bytes instead when given: empty sends nothing), drops it, ends the session
 * with FIN both ways (`close`) or with RST both ways (`reset`); a chunk held is never partly sent.
 */
export type ChunkAction = { readonly resume: true; readonly data?: Uint8Array } | { readonly drop: true } | { readonly close: true } | { readonly reset: true };

/**
 * Lets a datagram go (other bytes and, "up" only, another destination when given), or drops it.
 * A redirect keeps what it does not name (host or port) from the datagram's peer.
 */
export type DatagramAction =
  | { readonly resume: true; readonly data?: Uint8Array; readonly redirect?: { readonly host?: string; readonly port?: number } }
  | { readonly drop: true };

export type InterceptAction = RequestAction | ChunkAction | DatagramAction;

/** The action type that fits an item of kind `K`. */
export type ActionFor<K extends PausedItem["kind"]> = { request: RequestAction; chunk: ChunkAction; datagram: DatagramAction }[K];

/** Resumes any item as it was paused. */
export const RESUME: { readonly resume: true } = { resume: true };

/** What the queue tells its listeners (a UI). */
export type InterceptEvent =
  | { readonly type: "paused"; readonly item: PausedItem }
  /**
   * An item let go: `by` a person (`resolve`), by `resumeAll`, by `releaseAll`, or because its
   * session ended while it was held (nothing is answered then; `action` is a plain resume).
   */
  | { readonly type: "resolved"; readonly item: PausedItem; readonly action: InterceptAction; readonly by: "person" | "resume-all" | "release" | "ended" }
  /** The filter or the switch changed. */
  | { readonly type: "settings"; readonly active: boolean; readonly configured: boolean };

export type InterceptListener = (event: InterceptEvent) => void;

/** A person changed what a session sent or did (for the capture's events). */
export interface InterceptEdit {
  readonly stage: InterceptStage;
  /** The chunk's or datagram's sequence number. */
  readonly seq?: number;
  readonly action: "edit" | "redirect" | "deny" | "drop" | "close" | "reset";
  /** One line for a person, e.g. "down chunk 3 edited: 120 → 124 bytes" (wire text not sanitised: callers sanitise). */
  readonly detail: string;
}
