/**
 * Upstream proxies: a route is the list of proxies a request goes through, in order (empty:
 * direct). `run --upstream URL` (repeatable) gives the default route, `--route EXPR=URL` and an
 * onRequest `{ upstream }` answer choose one per request. The chain dialer
 * (`engine/io/chain-dialer.ts`) connects through a route.
 */
import { isIPv4, isIPv6 } from "node:net";

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

/** The schemes `parseUpstream` accepts, in the order error messages list them. */
export const UPSTREAM_SCHEMES: readonly UpstreamScheme[] = ["socks5h", "socks5", "socks4a", "socks4", "http"];

/** The port a SOCKS upstream gets when its URL names none (IANA's SOCKS port). HTTP upstreams must name theirs. */
export const SOCKS_DEFAULT_PORT = 1080;

/** Longest user or password an upstream URL may carry: RFC 1929's ULEN/PLEN are one byte (UTF-8 bytes). */
const CREDENTIAL_MAX = 255;

/** A host name an upstream URL may carry: letters, digits, `-`, `_` and dots (LDH plus `_`, which real names use). */
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/;

/**
 * Parses `--upstream URL`: `scheme://[user[:pass]@]host[:port]` with the schemes of
 * `UpstreamScheme`, a host name, dotted IPv4 or a bracketed IPv6 address, an optional `/` and
 * nothing after it. User and password are percent-decoded (so `%40` is an `@` and `%3A` a colon)
 * and each fits in 255 UTF-8 bytes. The port defaults to 1080 for the SOCKS schemes; an http
 * upstream must give its port (3128, 8080 and 80 are all common, so none is assumed). SOCKS4 has
 * a USERID and no password: `socks4://user@host` is accepted, a password is refused.
 * @throws Error with a message fit for a usage error (never names the password).
 */
export function parseUpstream(url: string): UpstreamHop {
  const shown = redact(url);
  const schemeEnd = url.indexOf("://");
  if (schemeEnd <= 0) throw new Error(`upstream ${shown}: expected SCHEME://HOST[:PORT] with a scheme of ${UPSTREAM_SCHEMES.join(", ")}`);
  const scheme = url.slice(0, schemeEnd).toLowerCase();
  if (!isScheme(scheme)) {
    const hint = scheme === "https" ? " (TLS to an upstream is not supported; use http:// for an HTTP CONNECT proxy)" : "";
    throw new Error(`upstream ${shown}: unknown scheme ${JSON.stringify(scheme)}${hint}; expected one of ${UPSTREAM_SCHEMES.join(", ")}`);
  }
  let parsed: URL;
  try {
    // Parsed under a scheme that is not "special" to WHATWG URL, so every scheme parses alike (http's
    // would drop an explicit :80 as its default port and rewrite hosts).
    parsed = new URL(`upstream${url.slice(schemeEnd)}`);
  } catch {
    throw new Error(`upstream ${shown}: not a valid URL (expected ${scheme}://[USER:PASS@]HOST[:PORT])`);
  }
  if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search !== "" || parsed.hash !== "") {
    throw new Error(`upstream ${shown}: a proxy URL has no path, query or fragment`);
  }
  const host = hostOf(parsed.hostname);
  if (host === undefined) throw new Error(`upstream ${shown}: ${JSON.stringify(parsed.hostname)} is not a host name or IP address`);
  let port: number;
  if (parsed.port === "") {
    if (scheme === "http") throw new Error(`upstream ${shown}: an http upstream needs a port (http://HOST:PORT)`);
    port = SOCKS_DEFAULT_PORT;
  } else {
    port = Number(parsed.port);
    if (port === 0) throw new Error(`upstream ${shown}: port 0 cannot be dialled`);
  }
  const user = decodePart(parsed.username, "user", shown);
  const password = decodePart(parsed.password, "password", shown);
  if (password !== "" && user === "") throw new Error(`upstream ${shown}: a password needs a user (USER:PASS@)`);
  if (password !== "" && (scheme === "socks4" || scheme === "socks4a")) {
    throw new Error(`upstream ${shown}: ${scheme} carries a user id and no password (${scheme}://USER@HOST)`);
  }
  return { scheme, host, port, ...(user === "" ? {} : { user }), ...(password === "" ? {} : { password }) };
}

/** `scheme://host:port` (IPv6 in brackets), never the credentials: what sessions record and messages show. */
export function formatHop(hop: UpstreamHop): string {
  const host = hop.host.includes(":") ? `[${hop.host}]` : hop.host;
  return `${hop.scheme}://${host}:${hop.port}`;
}

/** `direct` for the empty route, else the hops in order joined by ` -> ` (no credentials). */
export function formatRoute(route: Route): string {
  return route.length === 0 ? "direct" : route.map(formatHop).join(" -> ");
}

/**
 * Why `route` cannot carry `command`, or undefined when it can. CONNECT goes through any route
 * (every scheme tunnels TCP, so every hop can reach the next). BIND is asked of the last hop, so
 * the last hop must speak SOCKS (HTTP has no BIND). UDP ASSOCIATE needs a SOCKS5 association at
 * the one hop: datagrams are re-wrapped for that hop's relay, which socksmith must reach over
 * UDP directly, so it goes through a route of exactly one socks5/socks5h hop.
 */
export function canCarry(route: Route, command: "connect" | "bind" | "udp"): string | undefined {
  if (route.length === 0 || command === "connect") return undefined;
  const last = route[route.length - 1]!;
  if (command === "bind") {
    return last.scheme === "http" ? `BIND cannot go through ${formatHop(last)}: HTTP CONNECT has no BIND` : undefined;
  }
  if (last.scheme !== "socks5" && last.scheme !== "socks5h") {
    return `UDP ASSOCIATE cannot go through ${formatHop(last)}: only SOCKS5 upstreams relay datagrams`;
  }
  if (route.length > 1) return `UDP ASSOCIATE goes through one SOCKS5 upstream only, not a chain of ${route.length}`;
  return undefined;
}

function isScheme(text: string): text is UpstreamScheme {
  return (UPSTREAM_SCHEMES as readonly string[]).includes(text);
}

/** The host of a parsed URL: an IPv6 address without brackets, or a name / IPv4 address; undefined when neither. */
function hostOf(hostname: string): string | undefined {
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    const inner = hostname.slice(1, -1);
    return isIPv6(inner) ? inner : undefined;
  }
  if (isIPv4(hostname)) return hostname;
  if (hostname.length > 253 || !HOST_NAME.test(hostname)) return undefined;
  return hostname.toLowerCase();
}

function decodePart(raw: string, what: string, shown: string): string {
  let text: string;
  try {
    text = decodeURIComponent(raw);
  } catch {
    throw new Error(`upstream ${shown}: the ${what} has a malformed percent escape`);
  }
  if (Buffer.byteLength(text, "utf8") > CREDENTIAL_MAX) throw new Error(`upstream ${shown}: the ${what} is longer than ${CREDENTIAL_MAX} bytes`);
  return text;
}

/** The URL with any password replaced by `***`, for error messages. */
function redact(url: string): string {
  const schemeEnd = url.indexOf("://");
  const rest = schemeEnd < 0 ? url : url.slice(schemeEnd + 3);
  const at = rest.lastIndexOf("@");
  const slash = rest.search(/[/?#]/);
  if (at < 0 || (slash >= 0 && slash < at)) return JSON.stringify(url);
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(":");
  if (colon < 0) return JSON.stringify(url);
  const head = schemeEnd < 0 ? "" : url.slice(0, schemeEnd + 3);
  return JSON.stringify(`${head}${userinfo.slice(0, colon)}:***${rest.slice(at)}`);
}
