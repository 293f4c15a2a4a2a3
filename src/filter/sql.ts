/**
 * A filter as SQL over `sessions`, and the SQL functions that SQL calls.
 *
 *     registerFilterFunctions(db);                     // once per connection
 *     const { where, params } = toSql(parseFilter(text), { now: Date.now() });
 *     db.prepare(`SELECT * FROM sessions WHERE ${where} ORDER BY id`).all(...params);
 *
 * - `where` is one boolean expression, parenthesised unless it is a single call or `1`, so it
 *   can be ANDed with the caller's own conditions as is. Its only parameters are `?`
 *   placeholders, bound in the order of `params`.
 * - Every term is 0 or 1, never NULL, so `NOT` treats null columns as the predicate's `!` does.
 * - `dur` on sessions still open measures up to `options.now`, which goes into `params`: the SQL
 *   text never depends on it, and a fresh `toSql` gives the params for another `now`.
 * - Globs, address ranges, tags and payload expressions call the functions that
 *   `registerFilterFunctions` installs, which run the same code as `toPredicate`. Without them
 *   SQLite fails with "no such function: filter_glob" (or another `filter_` name).
 * - `~` terms are EXISTS subqueries over `chunks`, `datagram_rows` and `datagram_batches` on
 *   `session_id = <table>.id`, served by their session indexes; a batch row is one call
 *   (`filter_batch_payload`) that tries each of its datagrams, not one call per datagram through
 *   the `datagrams` view (which would read the batch's payload once per datagram).
 * - `tls`, `alpn:` and the `tls` half of `sni:` are subqueries over `tls` by its key, session_id.
 * - `via:` reads `route` through `filter_via` (`via:direct` too, so a crafted `[]` is direct in both).
 */
import type Database from "better-sqlite3";
import { assertNever } from "../lang/assert-never.js";
import type { Filter } from "./ast.js";
import { CIDR_COLUMNS, ENUM_COLUMNS, GLOB_COLUMNS, NOT_NULL, RANGE_COLUMNS, TLS_GLOB_COLUMNS, VIA_COLUMN } from "./columns.js";
import { compileRegExp, inCidr, matchAlpnHello, matchAlpnTls, matchGlob, matchPayload, matchTag, matchVia } from "./match.js";
import { rejectStages } from "./stored-only.js";

export interface SqlOptions {
  /** The name or alias `sessions` has in the caller's query: letters, digits, `_`. Default `sessions`. */
  readonly table?: string;
  /** The time (ms since the epoch) `dur` measures open sessions to. Default: Date.now() at this call. */
  readonly now?: number;
}

export interface SqlFilter {
  /** A boolean expression for WHERE, with `?` placeholders. */
  readonly where: string;
  /** Values for the placeholders, in order: strings, numbers and nulls. */
  readonly params: unknown[];
}

/**
 * Compiles a filter to a WHERE expression over `sessions`. Throws TypeError for a bad `table`, and
 * SyntaxError for a hand-built tree whose `~` pattern JavaScript rejects (parsed trees have none),
 * FilterError `INTERCEPT_ONLY` for a tree with a `stage:` term (`stored-only.ts`).
 */
export function toSql(filter: Filter, options: SqlOptions = {}): SqlFilter {
  const table = options.table ?? "sessions";
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new TypeError(`table must be a plain SQL name, not ${JSON.stringify(table)}`);
  rejectStages(filter);
  const params: unknown[] = [];
  const where = compile(filter, table, params, options.now ?? Date.now());
  return { where, params };
}

function compile(filter: Filter, t: string, params: unknown[], now: number): string {
  const any = (parts: readonly string[]) => balanced(parts, "OR");
  switch (filter.kind) {
    case "all":
      return "1";
    case "and":
      return balanced(
        filter.operands.map((o) => compile(o, t, params, now)),
        "AND",
      );
    case "or":
      return any(filter.operands.map((o) => compile(o, t, params, now)));
    case "not":
      return `(NOT ${compile(filter.operand, t, params, now)})`;
    case "glob": {
      const parts = GLOB_COLUMNS[filter.field].map((column) => {
        params.push(filter.pattern);
        return `filter_glob(?, ${t}.${column})`;
      });
      const tlsColumn = TLS_GLOB_COLUMNS[filter.field];
      if (tlsColumn !== undefined) {
        params.push(filter.pattern);
        parts.push(`filter_glob(?, (SELECT filter_t.${tlsColumn} FROM tls AS filter_t WHERE filter_t.session_id = ${t}.id))`);
      }
      return any(parts);
    }
    case "cidr":
      return any(
        CIDR_COLUMNS[filter.field].map((column) => {
          params.push(filter.cidr);
          return `filter_cidr(?, ${t}.${column})`;
        }),
      );
    case "range":
      return any(
        RANGE_COLUMNS[filter.field].map((column) => {
          params.push(filter.min, filter.max);
          return guarded(`${t}.${column}`, NOT_NULL.has(column), `${t}.${column} BETWEEN ? AND ?`);
        }),
      );
    case "enum": {
      const column = ENUM_COLUMNS[filter.field];
      if (filter.value === null) return `(${t}.${column} IS NULL)`;
      params.push(filter.value);
      return guarded(`${t}.${column}`, NOT_NULL.has(column), `${t}.${column} = ?`);
    }
    case "tag":
      params.push(filter.key, filter.value);
      return `filter_tag(${t}.tags, ?, ?)`;
    case "compare": {
      let measure: string;
      switch (filter.measure) {
        case "bytes":
          measure = `${t}.bytes_up_received + ${t}.bytes_down_received`;
          break;
        case "up":
          measure = `${t}.bytes_up_received`;
          break;
        case "down":
          measure = `${t}.bytes_down_received`;
          break;
        case "dur":
          measure = `coalesce(${t}.closed_at, ?) - ${t}.opened_at`;
          params.push(now);
          break;
        default:
          return assertNever(filter.measure);
      }
      params.push(filter.amount);
      return `((${measure}) ${filter.op} ?)`;
    }
    case "payload": {
      compileRegExp(filter.pattern, filter.flags); // a bad hand-built tree fails here, not mid-query
      params.push(filter.pattern, filter.flags, filter.pattern, filter.flags, filter.pattern, filter.flags);
      return (
        `(EXISTS (SELECT 1 FROM chunks AS filter_c WHERE filter_c.session_id = ${t}.id AND ${payloadCall("filter_c")})` +
        ` OR EXISTS (SELECT 1 FROM datagram_rows AS filter_d WHERE filter_d.session_id = ${t}.id AND ${payloadCall("filter_d")})` +
        ` OR EXISTS (SELECT 1 FROM datagram_batches AS filter_b WHERE filter_b.session_id = ${t}.id AND ${batchCall("filter_b")}))`
      );
    }
    case "tls": {
      const row = `SELECT 1 FROM tls AS filter_t WHERE filter_t.session_id = ${t}.id`;
      switch (filter.state) {
        case null:
          return `(EXISTS (${row}))`;
        case "intercepted":
          return `(EXISTS (${row} AND filter_t.intercepted = 1 AND filter_t.failure_code IS NULL))`;
        case "passthrough":
          return `(EXISTS (${row} AND filter_t.intercepted = 0 AND filter_t.failure_code IS NULL))`;
        case "failed":
          return `(EXISTS (${row} AND filter_t.failure_code IS NOT NULL))`;
        default:
          return assertNever(filter.state);
      }
    }
    case "alpn": {
      const row = `SELECT 1 FROM tls AS filter_t WHERE filter_t.session_id = ${t}.id`;
      params.push(filter.pattern, filter.pattern);
      return (
        `(EXISTS (${row} AND filter_alpn_tls(?, filter_t.client_alpn, filter_t.upstream_alpn, filter_t.client_version, filter_t.upstream_version,` +
        ` filter_t.alpn_offered)) OR (NOT EXISTS (${row}) AND filter_alpn_hello(?, ${t}.protocol, ${t}.protocol_info)))`
      );
    }
    case "via":
      params.push(filter.pattern);
      return `filter_via(?, ${t}.${VIA_COLUMN})`;
    case "stage":
      throw new Error("unreachable: rejectStages let a stage term through");
    default:
      return assertNever(filter);
  }
}

/**
 * `a OP b OP c …` as a balanced tree of parentheses: SQLite parses a flat chain one level deeper
 * per operand and refuses expressions over 1000 deep, which a long `a | b | c …` would reach.
 */
function balanced(parts: readonly string[], op: "AND" | "OR"): string {
  if (parts.length === 1) return parts[0]!;
  if (parts.length <= 8) return `(${parts.join(` ${op} `)})`;
  const half = Math.ceil(parts.length / 2);
  return `(${balanced(parts.slice(0, half), op)} ${op} ${balanced(parts.slice(half), op)})`;
}

/** `test` for a nullable column, made 0 rather than NULL when the column is. */
function guarded(column: string, notNull: boolean, test: string): string {
  return notNull ? `(${test})` : `(${column} IS NOT NULL AND ${test})`;
}

/**
 * Installs the functions `toSql`'s SQL calls, on one connection (SQLite functions are per
 * connection). All are deterministic and return 0 or 1, never NULL:
 *
 * - `filter_glob(pattern, text)`: matchGlob.
 * - `filter_cidr(cidr, host)`: inCidr.
 * - `filter_tag(tags_json, key_glob, value_glob_or_null)`: matchTag.
 * - `filter_payload(pattern, flags, data, sent)`: matchPayload on data, or on sent.
 * - `filter_alpn_tls(pattern, client_alpn, upstream_alpn, client_version, upstream_version, alpn_offered)`: matchAlpnTls.
 * - `filter_alpn_hello(pattern, protocol, protocol_info)`: matchAlpnHello.
 * - `filter_via(pattern_or_null, route)`: matchVia.
 */
/** A row's payload and where the payload file holds it when it is not inline (store/payload-file.ts). */
function payloadCall(alias: string): string {
  const c = (column: string) => `${alias}.${column}`;
  return `filter_payload(?, ?, ${c("data")}, ${c("sent")}, ${c("payload_at")}, ${c("payload_data")}, ${c("payload_sent")})`;
}

/** A datagram batch row's columns the batch function reads. */
function batchCall(alias: string): string {
  const c = (column: string) => `${alias}.${column}`;
  return `filter_batch_payload(?, ?, ${c("first_id")}, ${c("count")}, ${c("shapes")}, ${c("items")}, ${c("payload")})`;
}

/** Reads a row's bytes from the capture's payload file (the store's reader provides it). */
export type PayloadResolver = (at: number, dataBytes: number, sentBytes: number | null) => { readonly data: Buffer; readonly sent: Buffer | null };

/** The payloads (as received, and as sent when changed) of the datagrams of a batch row (store/datagram-batches.ts). */
export type BatchPayloads = (firstId: number, count: number, shapes: string, items: string, payload: Buffer) => Iterable<Buffer | null>;

/**
 * Installs the `filter_` functions on a connection. `payload` reads rows kept in the payload
 * file, `batch` the datagrams of a batch row; without them, a `~` term over such a row fails
 * with an error saying so.
 */
export function registerFilterFunctions(db: Database.Database, payload?: PayloadResolver, batch?: BatchPayloads): void {
  const options = { deterministic: true };
  const bit = (b: boolean) => (b ? 1 : 0);
  db.function("filter_glob", options, (pattern: string, text: unknown) => bit(matchGlob(pattern, text)));
  db.function("filter_cidr", options, (cidr: string, host: unknown) => bit(inCidr(cidr, host)));
  db.function("filter_tag", options, (tags: unknown, key: string, value: string | null) => bit(matchTag(tags, key, value)));
  db.function(
    "filter_payload",
    options,
    (pattern: string, flags: string, data: unknown, sent: unknown, at: unknown, dataBytes: unknown, sentBytes: unknown) => {
      if (typeof at !== "number" && typeof at !== "bigint") return bit(matchPayload(pattern, flags, data) || matchPayload(pattern, flags, sent));
      if (payload === undefined) throw new Error("filter_payload: this row's payload is in the payload file and no reader was given");
      const stored = payload(Number(at), Number(dataBytes ?? 0), sentBytes === null || sentBytes === undefined ? null : Number(sentBytes));
      return bit(matchPayload(pattern, flags, stored.data) || matchPayload(pattern, flags, stored.sent));
    },
  );
  db.function(
    "filter_batch_payload",
    options,
    (pattern: string, flags: string, firstId: unknown, count: unknown, shapes: unknown, items: unknown, bytes: unknown) => {
      if (batch === undefined) throw new Error("filter_batch_payload: this capture keeps datagrams in batches and no reader was given");
      if (typeof shapes !== "string" || typeof items !== "string" || !Buffer.isBuffer(bytes))
        throw new Error(`filter_batch_payload: datagram batch ${String(firstId)} is damaged`);
      for (const side of batch(Number(firstId), Number(count), shapes, items, bytes)) if (matchPayload(pattern, flags, side)) return 1;
      return 0;
    },
  );
  db.function(
    "filter_alpn_tls",
    options,
    (pattern: string, clientAlpn: unknown, upstreamAlpn: unknown, clientVersion: unknown, upstreamVersion: unknown, offered: unknown) =>
      bit(matchAlpnTls(pattern, clientAlpn, upstreamAlpn, clientVersion, upstreamVersion, offered)),
  );
  db.function("filter_alpn_hello", options, (pattern: string, protocol: unknown, info: unknown) => bit(matchAlpnHello(pattern, protocol, info)));
  db.function("filter_via", options, (pattern: string | null, route: unknown) => bit(matchVia(pattern, route)));
}
