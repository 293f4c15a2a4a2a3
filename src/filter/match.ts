/**
 * The matchers behind globs, address ranges, tags and payload expressions. `toPredicate` calls
 * them directly and `registerFilterFunctions` registers the very same functions with SQLite, which
 * is what keeps the two compilers in agreement. Each takes a column value as SQLite or a
 * SessionRow gives it (`unknown`: text, number, bytes or null) and never throws on it.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/** Whole-text glob: `*` any run, `?` one character, case-insensitive. Null never matches. */
export function matchGlob(pattern: string, value: unknown): boolean {
  const text = typeof value === "string" ? value : typeof value === "number" ? String(value) : undefined;
  return text !== undefined && glob(pattern.toLowerCase(), text.toLowerCase());
}

// Iterative wildcard matching with one backtrack point: O(pattern × text) at worst, where a
// regular expression built from `*a*a*a…` could take exponential time.
function glob(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === "*") {
      star = p++;
      resume = t;
    } else if (c !== undefined && (c === "?" || c === text[t])) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

type Range = { readonly address: ipaddr.IPv4 | ipaddr.IPv6; readonly bits: number };

/**
 * Normalises a filter value that is an IP address or CIDR range to `address/prefix`. Returns
 * undefined when the text is not IP-shaped (so `host:` treats it as a glob) and an error message
 * when it is an address with a bad prefix. Addresses must be strict: dotted-quad IPv4 or IPv6.
 */
export function normalizeCidr(text: string): string | undefined | { readonly error: string } {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const width = family === 4 ? 32 : 128;
  const prefix = slash < 0 ? String(width) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > width) {
    return { error: `'${prefix}' is not a prefix length for IPv${family} (0-${width})` };
  }
  const range = parseRange(`${address}/${Number(prefix)}`);
  if (range === undefined) return { error: `'${text}' is not an address range` };
  return `${range.address.toString()}/${range.bits}`;
}

const ranges = new Map<string, Range | undefined>();

function parseRange(cidr: string): Range | undefined {
  if (ranges.has(cidr)) return ranges.get(cidr);
  const slash = cidr.lastIndexOf("/");
  const bits = Number(cidr.slice(slash + 1));
  let range: Range | undefined;
  const address = slash < 0 ? undefined : parseIP(cidr.slice(0, slash));
  if (address !== undefined) {
    // A range inside ::ffff:0:0/96 is the IPv4 range it maps.
    range =
      address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && bits >= 96 ? { address: address.toIPv4Address(), bits: bits - 96 } : { address, bits };
  }
  if (ranges.size >= 256) ranges.clear();
  ranges.set(cidr, range);
  return range;
}

function parseIP(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (isIP(text) === 0) return undefined;
  try {
    return ipaddr.parse(text);
  } catch {
    return undefined;
  }
}

/** A session's address, IPv4-mapped IPv6 read as the IPv4 address it carries. */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const address = parseIP(text);
  return address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
}

/** Whether the value is an IP address inside `cidr` (as `normalizeCidr` returns it). */
export function inCidr(cidr: string, value: unknown): boolean {
  if (typeof value !== "string") return false;
  const range = parseRange(cidr);
  const address = parseAddress(value);
  return range !== undefined && address !== undefined && address.kind() === range.address.kind() && address.match(range.address, range.bits);
}

let lastTagsText: string | undefined;
let lastTags: readonly (readonly [string, unknown])[] = [];

/**
 * Whether some tag's key matches the `key` glob and (unless `value` is null) its value matches the
 * `value` glob. `tags` is the row's JSON text; anything but a JSON object has no tags, and a value
 * that is not a string is matched as its JSON text.
 */
export function matchTag(tags: unknown, key: string, value: string | null): boolean {
  if (typeof tags !== "string") return false;
  if (tags !== lastTagsText) {
    lastTags = tagEntries(tags);
    lastTagsText = tags;
  }
  return lastTags.some(([k, v]) => matchGlob(key, k) && (value === null || matchGlob(value, typeof v === "string" ? v : JSON.stringify(v))));
}

function tagEntries(text: string): readonly (readonly [string, unknown])[] {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? Object.entries(parsed) : [];
  } catch {
    return [];
  }
}

const regexps = new Map<string, RegExp>();

/** The compiled (and cached) expression; throws SyntaxError when JavaScript rejects it. */
export function compileRegExp(pattern: string, flags: string): RegExp {
  const key = `${flags}/${pattern}`;
  let regexp = regexps.get(key);
  if (regexp === undefined) {
    regexp = new RegExp(pattern, flags);
    if (regexps.size >= 128) regexps.clear();
    regexps.set(key, regexp);
  }
  return regexp;
}

/** Whether one payload (bytes, decoded latin1 so each byte is one character; or text) matches. */
export function matchPayload(pattern: string, flags: string, payload: unknown): boolean {
  let text: string;
  if (typeof payload === "string") text = payload;
  else if (payload instanceof Uint8Array) text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("latin1");
  else return false;
  return compileRegExp(pattern, flags).test(text);
}

/** The strings of a JSON array's text (non-strings left out); [] for anything else. */
function jsonStrings(text: unknown): readonly string[] {
  if (typeof text !== "string") return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/**
 * `alpn:` on a session's `tls` row (columns as stored): once either handshake finished (a version
 * is set), the ALPN negotiated on either side; before that, a protocol the client offered.
 */
export function matchAlpnTls(
  pattern: string,
  clientAlpn: unknown,
  upstreamAlpn: unknown,
  clientVersion: unknown,
  upstreamVersion: unknown,
  offered: unknown,
): boolean {
  if (clientVersion != null || upstreamVersion != null) return matchGlob(pattern, clientAlpn) || matchGlob(pattern, upstreamAlpn);
  return jsonStrings(offered).some((p) => matchGlob(pattern, p));
}

/**
 * `via:` on a session's `route` column (a JSON array of `scheme://host:port` hops, or null).
 * `pattern` null (`via:direct`): the route has no hop. Else some hop matches the glob as written,
 * as `host:port` (the scheme cut) or as its host (the port cut too, IPv6 brackets dropped).
 */
export function matchVia(pattern: string | null, route: unknown): boolean {
  const hops = jsonStrings(route);
  if (pattern === null) return hops.length === 0;
  return hops.some((hop) => hopTexts(hop).some((text) => matchGlob(pattern, text)));
}

function hopTexts(hop: string): string[] {
  const scheme = hop.indexOf("://");
  const hostPort = scheme < 0 ? hop : hop.slice(scheme + 3);
  const port = /:\d*$/.exec(hostPort);
  const host = port === null ? hostPort : hostPort.slice(0, port.index);
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return [hop, hostPort, bare];
}

/** `alpn:` on a session without a `tls` row: a protocol offered in the ClientHello the sniffer read (`protocol_info.alpn` of a 'tls' session). */
export function matchAlpnHello(pattern: string, protocol: unknown, info: unknown): boolean {
  if (protocol !== "tls" || typeof info !== "string") return false;
  try {
    const parsed: unknown = JSON.parse(info);
    const alpn = typeof parsed === "object" && parsed !== null ? (parsed as { alpn?: unknown }).alpn : undefined;
    return Array.isArray(alpn) && alpn.some((p) => typeof p === "string" && matchGlob(pattern, p));
  } catch {
    return false;
  }
}
