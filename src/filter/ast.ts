/**
 * The filter language's syntax tree: what `parseFilter` returns, `formatFilter` prints and both
 * compilers (`toSql`, `toPredicate`) take. The language itself is described in `parse.ts`.
 *
 * A tree is plain, JSON-safe data: two trees that mean the same thing written the same way are
 * deep-equal. The parser keeps the shapes few:
 * - alternatives in a value (`cmd:connect|bind`) become an `or` of single-valued terms;
 * - a bare word becomes the `host` glob `*word*`;
 * - a `host:` value that is an IP or CIDR becomes a `cidr` term, anything else a `glob` term;
 * - parentheses leave no node of their own (`(a b)` is the `and`), and nothing is flattened
 *   across them, so `formatFilter` can print any tree and parse it back unchanged.
 *
 * Which columns of `sessions` each term reads is in `columns.ts`, the one table both compilers
 * use. `stage:` terms belong to intercept filters only (`parseInterceptFilter`,
 * `compileInterceptFilter`): the stored-session compilers refuse them.
 */
import type { SessionStatus } from "../model/capture-rows.js";

/** A parsed filter. */
export type Filter = MatchAll | And | Or | Not | Term;

/** A single condition on a session. */
export type Term = GlobTerm | CidrTerm | RangeTerm | EnumTerm | TagTerm | CompareTerm | PayloadTerm | TlsTerm | AlpnTerm | ViaTerm | StageTerm;

/** The empty filter: every session. Only ever the whole tree, never an operand. */
export interface MatchAll {
  readonly kind: "all";
}

/** Every operand holds (space or `&`). Two or more operands. */
export interface And {
  readonly kind: "and";
  readonly operands: readonly Filter[];
}

/** Some operand holds (`|`, or alternatives in a value). Two or more operands. */
export interface Or {
  readonly kind: "or";
  readonly operands: readonly Filter[];
}

/** The operand does not hold (`!`). */
export interface Not {
  readonly kind: "not";
  readonly operand: Filter;
}

/** Fields matched by glob: `*` any run, `?` one character, whole text, case-insensitive. */
export type GlobField = "host" | "user" | "sni" | "reason";

/**
 * `host:GLOB` (and bare words), `user:GLOB`, `sni:GLOB`, `reason:GLOB`. A null column never matches.
 * `sni:` also matches the SNI of the session's `tls` row (TLS interception): an intercepted
 * session's `sessions.sni` is what the sniffer found in the plaintext (an HTTP Host, or nothing).
 */
export interface GlobTerm {
  readonly kind: "glob";
  readonly field: GlobField;
  readonly pattern: string;
}

/** Fields matched by address range. */
export type CidrField = "host" | "client";

/**
 * `host:CIDR` / `host:IP`, `client:CIDR` / `client:IP`: a column holding an IP address inside
 * the range. Columns holding a name (or null) never match. IPv4-mapped IPv6 addresses
 * (`::ffff:a.b.c.d`) count as their IPv4 address, in the range and in the session.
 */
export interface CidrTerm {
  readonly kind: "cidr";
  readonly field: CidrField;
  /** Normalised `address/prefix` (`10.0.0.1` → `10.0.0.1/32`, IPv6 in RFC 5952 form). */
  readonly cidr: string;
}

/** Fields matched by an inclusive integer range. */
export type RangeField = "port" | "id" | "rep";

/** `port:N`, `port:N-M`, `id:…`, `rep:…`: a column inside [min, max]. A null column never matches. */
export interface RangeTerm {
  readonly kind: "range";
  readonly field: RangeField;
  readonly min: number;
  readonly max: number;
}

export const COMMANDS = ["connect", "bind", "udp"] as const;
export const VERSIONS = ["4", "4a", "5"] as const;
export const STATUSES = ["open", "ok", "denied", "failed", "interrupted"] as const satisfies readonly SessionStatus[];
export const PROTOCOLS = ["tls", "http", "http2", "ssh"] as const;

/** `cmd:`, `v:`, `status:`, `proto:`: the column equals the value exactly (`proto:none` → null). */
export type EnumTerm =
  | { readonly kind: "enum"; readonly field: "cmd"; readonly value: (typeof COMMANDS)[number] }
  | { readonly kind: "enum"; readonly field: "v"; readonly value: (typeof VERSIONS)[number] }
  | { readonly kind: "enum"; readonly field: "status"; readonly value: SessionStatus }
  | { readonly kind: "enum"; readonly field: "proto"; readonly value: (typeof PROTOCOLS)[number] | null };

/**
 * `tag:KEY` and `tag:KEY=VALUE`: some tag whose key matches the `key` glob and, unless `value` is
 * null, whose value matches the `value` glob. Tags that are not a JSON object count as none;
 * a value that is not a string is matched as its JSON text.
 */
export interface TagTerm {
  readonly kind: "tag";
  readonly key: string;
  readonly value: string | null;
}

export type Measure =
  /** bytes_up_received + bytes_down_received. */
  | "bytes"
  /** bytes_up_received. */
  | "up"
  /** bytes_down_received. */
  | "down"
  /** closed_at − opened_at, in ms; `now` − opened_at while closed_at is null. */
  | "dur";

export type ComparisonOperator = ">" | ">=" | "<" | "<=" | "=";

/** `bytes>10k`, `dur<=2s`, …: the measure compared with `amount` (bytes, or ms for `dur`). */
export interface CompareTerm {
  readonly kind: "compare";
  readonly measure: Measure;
  readonly op: ComparisonOperator;
  readonly amount: number;
}

/**
 * `~regex`: some stored payload of the session, decoded as latin1, matches the JavaScript
 * regular expression. A payload is one chunk's `data` or `sent`, or one datagram's `data` or
 * `sent`; a match that would span two of them is not found.
 */
export interface PayloadTerm {
  readonly kind: "payload";
  readonly pattern: string;
  /** Some of `i`, `m`, `s`, as written. */
  readonly flags: string;
}

export const TLS_STATES = ["intercepted", "passthrough", "failed"] as const;

/**
 * `tls` (bare): the session has a `tls` row (`run --tls` saw a ClientHello). `tls:intercepted`: the
 * relay saw the plaintext; `tls:passthrough`: passed through untouched; `tls:failed`: a handshake
 * failed. The three states are disjoint: intercepted and passthrough mean no failure was recorded.
 */
export interface TlsTerm {
  readonly kind: "tls";
  /** null: any tls row. */
  readonly state: (typeof TLS_STATES)[number] | null;
}

/**
 * `alpn:GLOB`: the session's application protocol (`alpn:h2`, `alpn:http/1.*`). With a `tls` row:
 * the ALPN negotiated with the client or with the target once a handshake finished (no match when
 * neither negotiated one), else (passthrough, a failure before either finished) a protocol the
 * client offered. Without one: a protocol offered in a ClientHello the sniffer read
 * (`proto:tls` sessions, `protocol_info.alpn`).
 */
export interface AlpnTerm {
  readonly kind: "alpn";
  readonly pattern: string;
}

/**
 * `via:GLOB`: some upstream hop of the session's route matches the glob, as its whole
 * `scheme://host:port`, as `host:port` or as its host alone (`via:socks5h://*`, `via:10.0.0.2:1080`,
 * `via:*corp*`; an IPv6 hop is `[addr]:port`, its host `addr`). `via:direct`: the session had no
 * upstream (`sessions.route` null), so `!via:direct` is "went through one".
 */
export interface ViaTerm {
  readonly kind: "via";
  /** null: `via:direct`. */
  readonly pattern: string | null;
}

export const STAGES = ["request", "up", "down", "datagram"] as const;
/** Where a session in progress can be held by `run --intercept`. */
export type Stage = (typeof STAGES)[number];

/**
 * `stage:request|up|down|datagram`, in intercept filters only: the item being considered is at
 * that stage: a request (CONNECT, BIND, UDP ASSOCIATE) before anything is dialled, a chunk going
 * up (client → target) or down (target → client), a datagram (either way). An item is at exactly
 * one stage. A stored session is at none, so `parseFilter`, `toSql` and `toPredicate` refuse the term.
 */
export interface StageTerm {
  readonly kind: "stage";
  readonly stage: Stage;
}

/** Whether evaluating the filter needs the sessions' payloads (it has a `~` term). */
export function usesPayload(filter: Filter): boolean {
  return payloadTerms(filter).length > 0;
}

/** The filter's `stage:` terms, in the order they are written. */
export function stageTerms(filter: Filter): StageTerm[] {
  return termsOf(filter, "stage");
}

/**
 * The filter's `~` terms, in the order they are written, repeats included (what `usesPayload` here
 * and the TUI's payload search read).
 */
export function payloadTerms(filter: Filter): PayloadTerm[] {
  return termsOf(filter, "payload");
}

/** The filter's terms of one kind, in the order they are written, repeats included. */
function termsOf<K extends Term["kind"]>(filter: Filter, kind: K): Extract<Term, { kind: K }>[] {
  const found: Extract<Term, { kind: K }>[] = [];
  const walk = (f: Filter): void => {
    switch (f.kind) {
      case "and":
      case "or":
        return f.operands.forEach(walk);
      case "not":
        return walk(f.operand);
      case "all":
        return;
      default:
        if (f.kind === kind) found.push(f as Extract<Term, { kind: K }>);
    }
  };
  walk(filter);
  return found;
}
