/**
 * Upstream proxies: a route is the list of proxies a request goes through, in order (empty:
 * direct). `run --upstream URL` (repeatable) gives the default route, `--route EXPR=URL` and an
 * onRequest `{ upstream }` answer choose one per request. The chain dialer
 * (`engine/io/chain-dialer.ts`) connects through a route.
 */

/** The proxy protocols an upstream may speak. */
export type UpstreamScheme =
  /** SOCKS5, the upstream resolves names (names are sent as names). */
  | "socks5h"
  /** SOCKS5, socksmith resolves names and sends addresses. */
  | "socks5"
  /** SOCKS4a: names are sent as names. */
  | "socks4a"
  /** SOCKS4: IPv4 only; socksmith resolves names. */
  | "socks4"
  /** HTTP CONNECT (CONNECT only). */
  | "http";

/** One proxy of a route. */
export interface UpstreamHop {
  readonly scheme: UpstreamScheme;
  readonly host: string;
  readonly port: number;
  /** Credentials (SOCKS5 username/password, SOCKS4 USERID, HTTP Basic); never recorded or printed. */
  readonly user?: string;
  readonly password?: string;
}

export type Route = readonly UpstreamHop[];
