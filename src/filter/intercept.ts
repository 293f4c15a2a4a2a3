/**
 * Intercept filters (`run --intercept EXPR`, the TUI's `i`): decided on one item of a session in
 * progress (its request, one chunk, one datagram) to say whether that item is held for a person.
 *
 *     const filter = parseInterceptFilter(text);            // throws FilterError
 *     const pauses = compileInterceptFilter(filter);
 *     pauses({ stage: "up", row: sessionRowOf({ ... }), payload: chunk });
 *
 * - `stage:request|up|down|datagram` holds when the item is at that stage (see `StageTerm`).
 * - A filter with no `stage:` term holds at every stage its other terms allow: `host:example.com`
 *   pauses the request and every chunk and datagram of those sessions; `host:example.com
 *   stage:request` only the request; `!stage:up` everything but chunks going up.
 * - Every other term reads the candidate's row (what is known of the session at that moment,
 *   built with `sessionRowOf`; a term on what is not known yet does not match) and its tls row,
 *   as `toPredicate` reads a stored session's.
 * - A `~` term matches the item's own bytes (`payload`: a chunk's or a datagram's, as received),
 *   not what the session carried before; at the request, or with no payload given, it is false
 *   (so `!~x` holds).
 */
import type { SessionRow, TlsRow } from "../model/capture-rows.js";
import type { Filter, Stage } from "./ast.js";
import { compilePredicate, type PredicateContext } from "./predicate.js";

export interface InterceptCandidate {
  /** Where the item is: its request, a chunk going up (client → target) or down, a datagram. */
  readonly stage: Stage;
  /** The session as known at this moment (`sessionRowOf` over the facts so far). */
  readonly row: SessionRow;
  /** The session's tls row when `run --tls` has decided on it (`tls`, `alpn:`, `sni:` terms); none counts as no row. */
  readonly tls?: TlsRow;
  /** The chunk's or datagram's bytes, for `~` terms; ignored at the request. */
  readonly payload?: Uint8Array;
  /** The time `dur` measures an open session to (ms since the epoch); default Date.now(). */
  readonly now?: number;
}

/** Whether the item is to be held. */
export type InterceptPredicate = (item: InterceptCandidate) => boolean;

interface InterceptContext extends PredicateContext {
  readonly stage: Stage;
}

const NO_PAYLOADS: readonly Uint8Array[] = [];

/** Compiles an intercept filter (from `parseInterceptFilter`, or any tree) once, to call per item. */
export function compileInterceptFilter(filter: Filter): InterceptPredicate {
  const evaluate = compilePredicate<InterceptContext>(filter, (term) => (_row, context) => context.stage === term.stage);
  return (item) => {
    const { payload, tls } = item;
    const payloads = payload === undefined || item.stage === "request" ? NO_PAYLOADS : [payload];
    return evaluate(item.row, { stage: item.stage, now: item.now ?? Date.now(), payloads: () => payloads, tls: () => tls });
  };
}
