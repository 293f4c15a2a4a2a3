/**
 * `run --upstream URL` (repeatable: a chain, in order) and `--route EXPR=URL[,URL…]` (repeatable:
 * first match wins; `direct` for none): which upstream proxies a request goes through when no
 * addon chose (an onRequest `{ upstream }` answer overrules both). A `--route` filter is decided
 * on the request: the requested host and port, command, version, user and client are known;
 * everything decided later (reply, bytes, tags, TLS) is empty, so terms on it do not match.
 */
import { parseUpstream, type RequestInfo, type Route } from "../engine/index.js";
import { toPredicate, usesPayload, type Filter } from "../filter/index.js";
import { sessionRowOf } from "../filter/session-row-of.js";
import { filterOption } from "./capture-file.js";
import { usageError } from "./errors.js";

/** One `--route`. */
export interface RouteRule {
  /** As given, for messages. */
  readonly text: string;
  readonly filter: Filter;
  readonly route: Route;
}

/** `URL[,URL…]` or `direct`. @throws CliError (usage) naming `option`. */
export function parseRoute(text: string, option: string): Route {
  if (text.trim() === "" || text.trim().toLowerCase() === "direct") return [];
  try {
    return text.split(",").map((url) => parseUpstream(url.trim()));
  } catch (err) {
    throw usageError(`${option}: ${(err as Error).message}`);
  }
}

/** `EXPR=URL[,URL…]` or `EXPR=direct`: split at the last `=` that a route follows (a filter may hold `=`, as in tag:k=v). */
export function parseRouteRule(text: string): RouteRule {
  const split = [...text.matchAll(/=(?=\s*(?:direct\s*$|[a-z0-9]+:\/\/))/gi)].at(-1)?.index;
  if (split === undefined) throw usageError(`--route ${text}: expected EXPR=URL (e.g. 'host:*.corp.example=socks5h://10.0.0.2:1080') or EXPR=direct`);
  const filter = filterOption(text.slice(0, split), "--route");
  if (filter === undefined) throw usageError(`--route ${text}: the filter before '=' is empty`);
  if (usesPayload(filter)) throw usageError(`--route ${text}: a payload term (~) cannot be decided at the request`);
  return { text, filter, route: parseRoute(text.slice(split + 1), "--route") };
}

/** The route for a request: the first matching `--route`, else `--upstream`'s chain (empty: direct). */
export function routeChooser(upstream: Route, rules: readonly RouteRule[]): ((request: RequestInfo) => Route) | undefined {
  if (upstream.length === 0 && rules.length === 0) return undefined;
  const compiled = rules.map((rule) => ({ matches: toPredicate(rule.filter), route: rule.route }));
  return (request) => {
    if (compiled.length > 0) {
      const row = sessionRowOf({
        version: request.version === "4a" ? "4a" : request.version === 4 ? "4" : "5",
        command: request.command,
        user: request.user ?? null,
        requested_type: request.destination.type,
        requested_host: request.destination.host,
        requested_port: request.destination.port,
        client_host: request.client.host,
        client_port: request.client.port,
      });
      for (const rule of compiled) if (rule.matches(row, { now: Date.now() })) return rule.route;
    }
    return upstream;
  };
}
