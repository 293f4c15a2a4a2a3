/**
 * Where a session applies the destination rules and the loop check (destination-rules.ts), and
 * how a refusal is recorded: an anomaly on the session (`denied-by-rule` naming the rule, or
 * `loop`) whose detail says what was refused, so `show` and the TUI list it as an event.
 * - the request, once the hooks decided (a CONNECT's destination after a redirect, a BIND's
 *   expected peer): refused with DENIED (REP 02) before anything is resolved or dialled;
 * - each address a CONNECT dials (the dialer's `check`);
 * - the peer that connects to a BIND listener;
 * - each UDP datagram's destination, before and after resolution (dropped as "denied").
 */
import type { Endpoint, SocksAddress, SocksCommand } from "../types.js";
import type { RequestDecision } from "../ports.js";
import { isOwnListener } from "../destination-rules.js";
import { formatEndpoint } from "../codec/address.js";
import type { EngineContext } from "./engine-context.js";

/** The session a refusal is recorded on. */
export interface RefusalReporter {
  anomaly(code: string, detail: string): void;
}

/** What the loop check names as the rule in attempts lines and drop details. */
export const LOOP_RULE = "the loop check (this proxy's own listening address)";

/**
 * The decision to apply to a request: the hooks' own, or `{ deny: "DENIED" }` when a rule or the
 * loop check refuses its destination. A hook's deny or serve stands (nothing is dialled); a UDP
 * ASSOCIATE names no destination (its datagrams are checked one by one).
 */
export function decideWithRules(
  ctx: EngineContext,
  session: RefusalReporter,
  request: { readonly command: SocksCommand; readonly destination: SocksAddress },
  decision: RequestDecision,
  /** Through upstream proxies: the destination is reached from the last hop, so it cannot be this proxy's own listener. */
  routed = false,
): RequestDecision {
  if (decision !== undefined && ("deny" in decision || "serve" in decision)) return decision;
  const { command, destination } = request;
  if (command === "udp") return decision;
  let { host, port } = destination;
  if (command === "bind") {
    // DST of a BIND is the expected peer; zeros mean any peer (checked when it connects).
    if (host === "0.0.0.0" || host === "::") return decision;
    const rule = ctx.rules?.check(host, port);
    if (rule === undefined) return decision;
    session.anomaly("denied-by-rule", `${rule} (BIND expected peer ${formatEndpoint({ host, port })})`);
    return { deny: "DENIED" };
  }
  if (decision !== undefined && "redirect" in decision) {
    host = decision.redirect.host ?? host;
    port = decision.redirect.port ?? port;
  }
  if (!routed && isOwnListener(host, port, ctx.listening)) {
    session.anomaly("loop", `${formatEndpoint({ host, port })} is this proxy's own listening address`);
    return { deny: "DENIED" };
  }
  const rule = ctx.rules?.check(host, port);
  if (rule === undefined) return decision;
  session.anomaly("denied-by-rule", `${rule} (${formatEndpoint({ host, port })})`);
  return { deny: "DENIED" };
}

/** The dialer's `check` for a CONNECT to `target`: the loop check and the rules, for each address dialled. */
export function dialCheck(ctx: EngineContext, session: RefusalReporter, target: Endpoint): (address: string, port: number) => string | undefined {
  return (address, port) => {
    const named = address === target.host ? "" : `${target.host} resolved to `;
    if (isOwnListener(address, port, ctx.listening)) {
      session.anomaly("loop", `${named}${formatEndpoint({ host: address, port })}: this proxy's own listening address`);
      return LOOP_RULE;
    }
    const rule = ctx.rules?.check(target.host, port, address);
    if (rule !== undefined) session.anomaly("denied-by-rule", `${rule} (${named}${formatEndpoint({ host: address, port })})`);
    return rule;
  };
}

/** The BIND listener's check of the peer that connected; undefined without rules. */
export function bindPeerCheck(ctx: EngineContext, session: RefusalReporter): ((address: string, port: number) => string | undefined) | undefined {
  const rules = ctx.rules;
  if (rules === undefined || rules.size === 0) return undefined;
  return (address, port) => {
    const rule = rules.check(address, port);
    if (rule !== undefined) session.anomaly("denied-by-rule", `${rule} (BIND peer ${formatEndpoint({ host: address, port })})`);
    return rule;
  };
}

/**
 * A UDP association's check of each datagram's destination (`resolved`: the address a name
 * resolved to); undefined without rules. Refusals are recorded by the drop, not as anomalies.
 */
export function datagramCheck(ctx: EngineContext): ((host: string, port: number, resolved?: string) => string | undefined) | undefined {
  const rules = ctx.rules;
  if (rules === undefined || rules.size === 0) return undefined;
  return (host, port, resolved) => rules.check(host, port, resolved);
}
