/**
 * Run-time checks of hook answers against the contract in `api.ts` (docs/architecture.md, "Trust rules": esbuild strips
 * types, so `satisfies Addon` protects nothing once an addon runs).
 *
 * Each `check…` takes whatever a hook returned (`undefined` and `null` are handled by the caller
 * as "no opinion") and returns either the answer in the engine's terms or a `Problem`: a message
 * that says what was wrong and what the contract expects. The dispatcher reports a problem like
 * a hook that threw (addon, hook, session, the hook's file:line) and goes on as if the hook had
 * answered `undefined`. Nothing here throws, whatever the value (getters that throw, proxies,
 * cyclic objects): reading a field goes through `field()`.
 *
 * Strictness, and why: an answer must be exactly one documented shape. Unknown keys are errors
 * (`{ block: true }` is a typo for a decision, not "no opinion"), flags must be the literal
 * `true` (`{ allow: false }` would otherwise allow), numbers must be integers in range
 * (`{ deny: 999 }` would otherwise put 0xE7 on the wire) and strings must be strings
 * (`{ deny: "2" }` would otherwise reply success).
 */
import { isIP } from "node:net";
import { parseUpstream, type Route, type UpstreamHop } from "../engine/index.js";
import type { Direction } from "./api.js";
import { isThenable } from "../lang/is-thenable.js";

/** What was wrong with an answer: `answered {"deny":"2"}: deny must be …`. */
export interface Problem {
  readonly problem: string;
}

export type Checked<T> = { readonly value: T } | Problem;

export function isProblem<T>(checked: Checked<T>): checked is Problem {
  return "problem" in checked;
}

export type EndpointChange = { readonly host?: string; readonly port?: number };

export type CheckedRequest =
  | { readonly allow: true }
  | { readonly deny: number }
  | { readonly redirect: EndpointChange }
  | { readonly serve: true }
  | { readonly upstream: Route };

/** Most hops an `{ upstream: [...] }` answer may list: a longer chain is almost surely a mistake (and each hop costs a handshake). */
export const MAX_UPSTREAM_HOPS = 8;

/** Longest upstream URL an answer may give (a URL with credentials of 255 bytes each fits easily). */
const MAX_UPSTREAM_URL = 2048;

export type CheckedTlsHello = { readonly intercept: true } | { readonly passthrough: true };

export type CheckedData = { readonly replace: Uint8Array } | { readonly drop: true } | { readonly close: true } | { readonly reset: true };

export type CheckedDatagram = { readonly replace: Uint8Array } | { readonly drop: true } | { readonly redirect: EndpointChange };

export interface CheckedReply {
  readonly rep?: number;
  readonly bound?: { readonly host: string; readonly port: number };
}

/** `{ reject: true }`. */
function checkOpenUnsafe(answer: unknown): Checked<{ readonly reject: true }> {
  return flag(answer, ["reject"]) as Checked<{ readonly reject: true }>;
}

/** `{ accept: true }` or `{ reject: true }`. */
function checkAuthUnsafe(answer: unknown): Checked<{ readonly accept: true } | { readonly reject: true }> {
  return flag(answer, ["accept", "reject"]) as Checked<{ readonly accept: true } | { readonly reject: true }>;
}

/** `{ intercept: true }` or `{ passthrough: true }`. */
function checkTlsHelloUnsafe(answer: unknown): Checked<CheckedTlsHello> {
  return flag(answer, ["intercept", "passthrough"]) as Checked<CheckedTlsHello>;
}

/**
 * `{ allow: true }`, `{ deny: 1…255 }`, `{ redirect: { host?, port? } }` (at least one), for
 * a CONNECT `{ serve: true }`, or `{ upstream: URL | URL[] | "direct" }` (parsed here, once, into
 * the engine's route).
 */
function checkRequestUnsafe(answer: unknown, command: "connect" | "bind" | "udp"): Checked<CheckedRequest> {
  const shape = oneKey(answer, ["allow", "deny", "redirect", "serve", "upstream"]);
  if (isProblem(shape)) return shape;
  const { key, value } = shape.value;
  const bad = (why: string): Problem => ({ problem: `answered ${describe(answer)}: ${why}` });
  switch (key) {
    case "allow":
    case "serve":
      if (value !== true) return bad(`${key} must be true (return undefined to leave the decision to the next addon)`);
      if (key === "serve" && command !== "connect") return bad(`serve answers CONNECT requests only, this is ${command === "udp" ? "UDP ASSOCIATE" : "BIND"}`);
      return { value: key === "allow" ? { allow: true } : { serve: true } };
    case "deny":
      if (!isInteger(value, 1, 255)) return bad("deny must be a SOCKS5 reply code, an integer from 1 to 255 (2: not allowed by ruleset)");
      return { value: { deny: value } };
    case "upstream": {
      const route = upstreamRoute(value);
      return isProblem(route) ? bad(route.problem) : { value: { upstream: route.value } };
    }
    default: {
      const change = endpointChange(value, "redirect");
      return isProblem(change) ? bad(change.problem) : { value: { redirect: change.value } };
    }
  }
}

/**
 * `{ rep?, bound? }`: rep an integer 0…255 that does not turn a failed reply into success
 * (nothing was connected; `failed` is the reply's own rep != 0), bound a `{ host, port }` that
 * a reply can carry (an IP address, or a name of at most 255 bytes for SOCKS5).
 */
function checkReplyUnsafe(answer: unknown, failed: boolean, version: 4 | "4a" | 5): Checked<CheckedReply> {
  const object = record(answer, ["rep", "bound"]);
  if (isProblem(object)) return object;
  const bad = (why: string): Problem => ({ problem: `answered ${describe(answer)}: ${why}` });
  const rep = field(object.value, "rep");
  const bound = field(object.value, "bound");
  if (rep !== undefined) {
    if (!isInteger(rep, 0, 255)) return bad("rep must be a SOCKS5 reply code, an integer from 0 to 255");
    if (rep === 0 && failed) return bad("rep 0 (success) cannot answer a failed request: nothing was connected");
  }
  let host: string | undefined;
  let port: number | undefined;
  if (bound !== undefined) {
    host = field(bound, "host") as string | undefined;
    port = field(bound, "port") as number | undefined;
    if (typeof bound !== "object" || bound === null || typeof host !== "string" || !isInteger(port, 0, 65535)) {
      return bad("bound must be { host: string, port: integer 0…65535 }");
    }
    if (version === 5 ? isIP(host) === 0 && !isDomain(host) : isIP(host) !== 4) {
      return bad(
        version === 5 ? "bound.host must be an IP address or a name of 1 to 255 bytes" : "bound.host must be an IPv4 address (SOCKS4 replies carry IPv4 only)",
      );
    }
  }
  return { value: { ...(rep === undefined ? {} : { rep: rep as number }), ...(host === undefined ? {} : { bound: { host, port: port! } }) } };
}

/** `{ replace: Uint8Array | string }`, `{ drop: true }`, `{ close: true }` or `{ reset: true }`. */
function checkDataUnsafe(answer: unknown): Checked<CheckedData> {
  const shape = oneKey(answer, ["replace", "drop", "close", "reset"]);
  if (isProblem(shape)) return shape;
  const { key, value } = shape.value;
  if (key === "replace") {
    const data = payload(value);
    return data === undefined ? { problem: `answered ${describe(answer)}: replace must be a Uint8Array (a Buffer) or a string` } : { value: { replace: data } };
  }
  if (value !== true) return { problem: `answered ${describe(answer)}: ${key} must be true (return undefined to pass the chunk on)` };
  return { value: key === "drop" ? { drop: true } : key === "close" ? { close: true } : { reset: true } };
}

/** `{ replace: Uint8Array | string }`, `{ drop: true }` or ("up" only) `{ redirect: { host?, port? } }`. */
function checkDatagramUnsafe(answer: unknown, direction: Direction): Checked<CheckedDatagram> {
  const shape = oneKey(answer, ["replace", "drop", "redirect"]);
  if (isProblem(shape)) return shape;
  const { key, value } = shape.value;
  const bad = (why: string): Problem => ({ problem: `answered ${describe(answer)}: ${why}` });
  if (key === "replace") {
    const data = payload(value);
    return data === undefined ? bad("replace must be a Uint8Array (a Buffer) or a string") : { value: { replace: data } };
  }
  if (key === "drop") return value === true ? { value: { drop: true } } : bad("drop must be true (return undefined to pass the datagram on)");
  if (direction === "down") return bad('redirect applies to "up" datagrams only (client → remote)');
  const change = endpointChange(value, "redirect");
  return isProblem(change) ? bad(change.problem) : { value: { redirect: change.value } };
}

export const checkOpen = total(checkOpenUnsafe);
export const checkAuth = total(checkAuthUnsafe);
export const checkRequest = total(checkRequestUnsafe);
export const checkReply = total(checkReplyUnsafe);
export const checkTlsHello = total(checkTlsHelloUnsafe);
export const checkData = total(checkDataUnsafe);
export const checkDatagram = total(checkDatagramUnsafe);
export const checkPeer = total(checkPeerUnsafe);

/**
 * A check that cannot throw: the checks read fields carefully, but a value can be hostile in
 * ways no field read anticipates (a revoked Proxy fails even `Array.isArray`). Such a value is
 * a problem like any other wrong answer.
 */
function total<A extends unknown[], T>(check: (answer: unknown, ...rest: A) => Checked<T>): (answer: unknown, ...rest: A) => Checked<T> {
  return (answer, ...rest) => {
    try {
      return check(answer, ...rest);
    } catch (err) {
      return { problem: `answered a value that cannot be read (${err instanceof Error ? err.message : "it threw"})` };
    }
  };
}

/** Bytes given to `ctx.inject` / `ctx.injectDatagram` / a replace, or undefined when they are none. */
export function payload(value: unknown): Uint8Array | undefined {
  if (typeof value === "string") return Buffer.from(value);
  return value instanceof Uint8Array ? value : undefined;
}

/** A `{ host, port }` given to `ctx.injectDatagram`, or a message saying what is wrong with it. */
function checkPeerUnsafe(value: unknown): Checked<{ readonly host: string; readonly port: number }> {
  const host = field(value, "host");
  const port = field(value, "port");
  if (typeof value !== "object" || value === null || typeof host !== "string" || host === "" || !isInteger(port, 1, 65535)) {
    return { problem: `peer must be { host: string, port: integer 1…65535 }, got ${describe(value)}` };
  }
  return { value: { host, port } };
}

/**
 * A short, safe rendering of any answer for messages (never throws, never long, never a
 * password: strings are shown through `hideCredentials`, since an `upstream` answer may carry
 * `user:pass@` and these messages are logged and recorded).
 */
export function describe(value: unknown): string {
  try {
    return describeUnsafe(value);
  } catch {
    return "a value that cannot be read";
  }
}

function describeUnsafe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string") {
    const shown = hideCredentials(value);
    return JSON.stringify(shown.length > 40 ? `${shown.slice(0, 40)}…` : shown);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "symbol" || typeof value === "function") return typeof value;
  if (value instanceof Uint8Array) return `${value.constructor.name}(${value.length})`;
  if (typeof value !== "object" || value === null) return String(value);
  if (Array.isArray(value)) return "an array";
  try {
    const text = JSON.stringify(value, (_key, v: unknown) =>
      typeof v === "bigint" ? `${v}n` : typeof v === "string" ? hideCredentials(v) : v instanceof Uint8Array ? `${v.constructor.name}(${v.length})` : v,
    );
    if (text === undefined) return "an object";
    return text.length > 80 ? `${text.slice(0, 80)}…` : text;
  } catch {
    return "an object";
  }
}

/**
 * `text` with whatever could be a URL's password (between the first colon of the user info and
 * the last `@`) replaced by `***`. Deliberately broad: any string with a colon before an `@` is
 * cut, as a password that is not quite a URL (`user:pass@host`, an unescaped `/` or `@` in it)
 * must not leak either; a message that shows a little less is the price.
 */
export function hideCredentials(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  const scheme = text.indexOf("://");
  const start = scheme >= 0 && scheme < at ? scheme + 3 : 0;
  const colon = text.indexOf(":", start);
  return colon < 0 || colon > at ? text : `${text.slice(0, colon + 1)}***${text.slice(at)}`;
}

// ---------------------------------------------------------------------------------------------

/** A plain object with only `allowed` keys (read safely), or a problem. */
function record(answer: unknown, allowed: readonly string[]): Checked<object> {
  if (typeof answer !== "object" || answer === null || Array.isArray(answer) || isThenable(answer)) {
    return { problem: `answered ${describe(answer)}: expected ${expected(allowed)} or undefined` };
  }
  let keys: string[];
  try {
    keys = Object.keys(answer);
  } catch {
    return { problem: `answered an object whose keys cannot be read` };
  }
  const unknown = keys.filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    return { problem: `answered ${describe(answer)}: unknown field ${JSON.stringify(unknown[0])} (expected ${expected(allowed)} or undefined)` };
  }
  return { value: answer };
}

/** An object with exactly one of `allowed` as its key; the key and its value. */
function oneKey(answer: unknown, allowed: readonly string[]): Checked<{ key: string; value: unknown }> {
  const object = record(answer, allowed);
  if (isProblem(object)) return object;
  const present = allowed.filter((k) => Object.hasOwn(object.value, k));
  if (present.length !== 1) {
    const why = present.length === 0 ? `expected ${expected(allowed)} or undefined` : `one of ${present.join(", ")}, not several`;
    return { problem: `answered ${describe(answer)}: ${why}` };
  }
  return { value: { key: present[0]!, value: field(object.value, present[0]!) } };
}

/** `{ flag: true }` for one of `flags`. */
function flag(answer: unknown, flags: readonly string[]): Checked<Record<string, true>> {
  const shape = oneKey(answer, flags);
  if (isProblem(shape)) return shape;
  if (shape.value.value !== true) return { problem: `answered ${describe(answer)}: ${shape.value.key} must be true (return undefined for no opinion)` };
  return { value: { [shape.value.key]: true } };
}

/**
 * An `upstream` answer as a route: "direct" or [] is the empty route, a URL one hop, a list of
 * 1…MAX_UPSTREAM_HOPS URLs the hops in order. Each URL goes through `parseUpstream`, whose reason
 * is passed on; its messages show a URL with the password as `***`.
 */
function upstreamRoute(value: unknown): Checked<Route> {
  const expectation = `upstream must be "direct", a proxy URL such as "socks5://host:1080", or a list of 1 to ${MAX_UPSTREAM_HOPS} of them`;
  if (value === "direct") return { value: [] };
  if (typeof value === "string") {
    const hop = upstreamHop(value, "upstream");
    return isProblem(hop) ? hop : { value: [hop.value] };
  }
  if (!Array.isArray(value)) return { problem: expectation };
  const length = field(value, "length");
  if (typeof length !== "number" || length > MAX_UPSTREAM_HOPS) return { problem: `${expectation} (a chain of at most ${MAX_UPSTREAM_HOPS} hops)` };
  const hops: UpstreamHop[] = [];
  for (let i = 0; i < length; i++) {
    const url = field(value, String(i));
    if (url === "direct") return { problem: `upstream[${i}] is "direct", which stands alone (upstream: "direct"), not in a list` };
    if (typeof url !== "string") return { problem: `upstream[${i}] must be a proxy URL string, got ${describe(url)}` };
    const hop = upstreamHop(url, `upstream[${i}]`);
    if (isProblem(hop)) return hop;
    hops.push(hop.value);
  }
  return { value: hops };
}

function upstreamHop(url: string, what: string): Checked<UpstreamHop> {
  if (url.length > MAX_UPSTREAM_URL) return { problem: `${what} is longer than ${MAX_UPSTREAM_URL} characters` };
  try {
    return { value: parseUpstream(url) };
  } catch (err) {
    // parseUpstream's messages never name the password (it promises so), and start with "upstream".
    return { problem: `${what}: ${err instanceof Error ? err.message.replace(/^upstream /, "") : "not a proxy URL"}` };
  }
}

function endpointChange(value: unknown, what: string): Checked<EndpointChange> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { problem: `${what} must be { host?, port? }` };
  let keys: string[];
  try {
    keys = Object.keys(value);
  } catch {
    return { problem: `${what} must be { host?, port? }` };
  }
  const unknown = keys.find((k) => k !== "host" && k !== "port");
  if (unknown !== undefined) return { problem: `${what} has an unknown field ${JSON.stringify(unknown)} (expected host and/or port)` };
  const host = field(value, "host");
  const port = field(value, "port");
  if (host === undefined && port === undefined) return { problem: `${what} needs a host, a port or both` };
  if (host !== undefined && !isDomain(host) && (typeof host !== "string" || isIP(host) === 0))
    return { problem: `${what}.host must be a host name or IP address (1 to 255 bytes)` };
  if (port !== undefined && !isInteger(port, 1, 65535)) return { problem: `${what}.port must be an integer from 1 to 65535` };
  return { value: { ...(host === undefined ? {} : { host: host as string }), ...(port === undefined ? {} : { port: port as number }) } };
}

/** A name a SOCKS5 address can carry: 1 to 255 latin1 characters, no NUL. */
function isDomain(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 && value.length <= 255 && /^[\x01-\xff]+$/.test(value);
}

function isInteger(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

/** A property read that cannot throw (getters, proxies); undefined when it would. */
function field(object: unknown, key: string): unknown {
  if (typeof object !== "object" || object === null) return undefined;
  try {
    return (object as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function expected(keys: readonly string[]): string {
  return keys.map((k) => `{ ${k} }`).join(", ");
}
