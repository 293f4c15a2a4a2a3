/**
 * Hook answers for property tests, pure: fast-check arbitraries of anything a hook could return
 * (any value, any JSON, near-miss shapes such as `{ deny: <any> }`, hostile objects, valid
 * answers), a confinement that keeps whatever gets dialled on loopback, and an oracle written
 * from the contract (src/hooks/api.ts and the trust rules in docs/architecture.md), independent of the proxy's own checks.
 *
 * The oracle classifies an answer as
 * - "valid": one documented shape with fields of the right types; its decision must happen;
 * - "invalid": not a documented shape; it must be reported as a hook error and the session must
 *   go on exactly as if the hook had answered undefined;
 * - "either": a documented shape plus something the contract does not speak to (an unknown
 *   extra field, `null`, an object that is not a plain one): the outcome must be the decision's
 *   or undefined's, nothing else.
 */
import fc from "fast-check";
import { isIP } from "node:net";

/** The hooks whose answers are driven end to end over sockets (hook-harness.ts). */
export const ANSWER_HOOKS = ["onOpen", "onAuth", "onRequest", "onReply", "onData", "onDatagram"] as const;
export type AnswerHook = (typeof ANSWER_HOOKS)[number];
/**
 * Every hook that answers, for the oracle and the arbitraries: onTlsClientHello is asked only
 * with `--tls`, so its property goes through the Dispatcher's port (tls-hello-property.ts).
 */
export type OracleHook = AnswerHook | "onTlsClientHello";

export interface Target {
  readonly host?: string;
  readonly port?: number;
}

/** What a hook decided, in the oracle's terms. */
export type Decision =
  | { readonly kind: "none" }
  | { readonly kind: "reject" }
  | { readonly kind: "accept" }
  | { readonly kind: "allow" }
  | { readonly kind: "deny"; readonly rep: number }
  | { readonly kind: "redirect"; readonly to: Target }
  | { readonly kind: "serve" }
  | { readonly kind: "intercept" }
  | { readonly kind: "passthrough" }
  | { readonly kind: "reply"; readonly rep?: number; readonly bound?: { readonly host: string; readonly port: number } }
  | { readonly kind: "replace"; readonly data: Buffer }
  | { readonly kind: "drop" }
  | { readonly kind: "close" }
  | { readonly kind: "reset" };

export type Validity = "valid" | "invalid" | "either";

export interface Classified {
  readonly validity: Validity;
  /** The decision when valid (or the candidate one when "either"); none when invalid. */
  readonly decision: Decision;
  /** Why, for messages. */
  readonly why: string;
}

/** What a hook is asked about, as far as the oracle needs it. */
export interface AnswerContext {
  /** onReply: the reply being changed is a failure (rep != 0). */
  readonly failed?: boolean;
  /** onDatagram: the datagram's direction. */
  readonly direction?: "up" | "down";
}

const NONE: Decision = { kind: "none" };

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

/** Every key any hook answer uses, plus typos of them: the near-miss vocabulary. */
const KEYS = [
  "reject",
  "accept",
  "allow",
  "deny",
  "redirect",
  "serve",
  "rep",
  "bound",
  "replace",
  "drop",
  "close",
  "reset",
  "intercept",
  "passthrough",
  "upstream",
  "block",
  "host",
  "port",
] as const;

/** Values that sit next to valid ones. */
const nearValues = fc.constantFrom<unknown>(
  true,
  false,
  0,
  1,
  2,
  5,
  -1,
  255,
  256,
  999,
  65535,
  65536,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -0,
  "2",
  "x",
  "",
  "true",
  null,
  undefined,
  [],
  {},
  [2],
  { host: 5 },
  { port: -1 },
  { host: "127.0.0.1", port: "80" },
);

/** Anything fast-check makes, boxed values, maps, sets, typed arrays, null prototypes included. */
export const anyValue = fc.anything({
  maxDepth: 2,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withNullPrototype: true,
  withBigInt: true,
  withDate: true,
});

const bytesLike = fc.oneof(
  fc.uint8Array({ maxLength: 32 }),
  fc.uint8Array({ maxLength: 32 }).map((u) => Buffer.from(u)),
  fc.string({ maxLength: 32 }),
  fc.constantFrom<unknown>(new Uint16Array([1, 2]), new ArrayBuffer(4), new DataView(new ArrayBuffer(2)), new Uint8ClampedArray(3), [104, 105], 123),
);

const hostValue = fc.oneof(
  fc.constantFrom<unknown>("127.0.0.1", "::1", "localhost", "", "a".repeat(256), "x\u0000y", "10.0.0.1", "::ffff:127.0.0.1"),
  nearValues,
  anyValue,
);
const portValue = fc.oneof(fc.constantFrom<unknown>(0, 1, -1, 80, 65535, 65536, 1.5, "80", Number.NaN), nearValues, anyValue);
const endpointish = fc.oneof(
  fc.record({ host: hostValue, port: portValue }, { requiredKeys: [] }),
  fc.record({ host: hostValue, port: portValue, extra: nearValues }, { requiredKeys: [] }),
  nearValues,
  anyValue,
);

/**
 * Values next to a valid `upstream`: "direct" and [] (valid: no proxy), and URLs that must not
 * parse. None names a proxy that parses, so nothing generated here is ever dialled as a hop.
 */
const upstreamish = fc.oneof(
  fc.constantFrom<unknown>(
    "direct",
    [],
    "Direct",
    ["direct"],
    "socks9://127.0.0.1:1080",
    "https://127.0.0.1:443",
    "http://127.0.0.1",
    "socks5://127.0.0.1:0",
    "socks5://127.0.0.1:65536",
    "socks4://u:pw@127.0.0.1:1080",
    "127.0.0.1:1080",
    [5],
    ["socks5://127.0.0.1:0"],
    Array.from({ length: 9 }, () => "direct"),
  ),
  nearValues,
  anyValue,
);

function valueFor(key: string): fc.Arbitrary<unknown> {
  if (key === "redirect" || key === "bound") return endpointish;
  if (key === "upstream") return upstreamish;
  if (key === "replace") return fc.oneof(bytesLike, nearValues, anyValue);
  return fc.oneof(nearValues, anyValue);
}

/** `{ key: <any> }` for every key of the vocabulary, and pairs of them. */
const nearMiss: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...KEYS).chain((key) => valueFor(key).map((value) => ({ [key]: value }))),
  fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(...KEYS)).chain(([a, b]) => fc.tuple(valueFor(a), valueFor(b)).map(([va, vb]) => ({ [a]: va, [b]: vb }))),
);

/** Documented answers of each hook (so that valid decisions are checked too). */
function validAnswer(hook: OracleHook): fc.Arbitrary<unknown> {
  switch (hook) {
    case "onOpen":
      return fc.constant({ reject: true });
    case "onAuth":
      return fc.constantFrom({ accept: true }, { reject: true });
    case "onRequest":
      return fc.oneof(
        fc.constant({ allow: true }),
        fc.integer({ min: 1, max: 255 }).map((rep) => ({ deny: rep })),
        fc
          .record({ host: fc.constantFrom("127.0.0.1", "localhost"), port: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: [] })
          .filter((r) => Object.keys(r).length > 0)
          .map((redirect) => ({ redirect })),
        fc.constant({ serve: true }),
        fc.constantFrom({ upstream: "direct" }, { upstream: [] }),
      );
    case "onReply":
      return fc.record(
        {
          rep: fc.integer({ min: 0, max: 255 }),
          bound: fc.record({ host: fc.constantFrom("127.0.0.1", "10.1.2.3", "::1", "2001:db8::7", "0.0.0.0"), port: fc.integer({ min: 0, max: 65535 }) }),
        },
        { requiredKeys: [] },
      );
    case "onData":
      return fc.oneof(
        fc.uint8Array({ maxLength: 24 }).map((u) => ({ replace: Buffer.from(u) })),
        fc.string({ maxLength: 24 }).map((s) => ({ replace: s })),
        fc.constantFrom({ drop: true }, { close: true }, { reset: true }),
      );
    case "onDatagram":
      return fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 24 }).map((u) => ({ replace: u })),
        fc.string({ minLength: 1, maxLength: 24 }).map((s) => ({ replace: s })),
        fc.constant({ drop: true }),
        fc.integer({ min: 1, max: 65535 }).map((port) => ({ redirect: { port } })),
      );
    case "onTlsClientHello":
      return fc.constantFrom({ intercept: true }, { passthrough: true });
    default: {
      const unreachable: never = hook;
      throw new Error(`no hook ${String(unreachable)}`);
    }
  }
}

/**
 * Objects that fight back: throwing getters, proxies that throw on every trap, cycles. Generated
 * as a `Hostile` placeholder (fast-check inspects what it generates) and made real by `realize`
 * just before the hook answers it.
 */
export class Hostile {
  constructor(readonly kind: string) {}
  toString(): string {
    return `<hostile ${this.kind}>`;
  }
}

const hostile = fc
  .constantFrom("throwing-getter", "throwing-proxy", "cycle", "then-not-function", "frozen-deny-2", "symbol-key", "getter-true")
  .map((kind) => new Hostile(kind));

/** The answer with a Hostile placeholder made real (anything else is returned as is). */
export function realize(answer: unknown): unknown {
  if (!(answer instanceof Hostile)) return answer;
  const trap = () => {
    throw new Error("trap");
  };
  switch (answer.kind) {
    case "throwing-getter":
      return Object.defineProperty({}, "deny", { enumerable: true, get: trap });
    case "throwing-proxy":
      return new Proxy({}, { get: trap, ownKeys: trap, has: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap });
    case "cycle": {
      const o: Record<string, unknown> = {};
      o.redirect = o;
      o.replace = o;
      return o;
    }
    case "then-not-function":
      return { then: 5, deny: 2 };
    case "frozen-deny-2":
      return Object.freeze({ deny: "2" });
    case "symbol-key":
      return { [Symbol("allow")]: true };
    default:
      return Object.defineProperty({}, "reset", { enumerable: true, get: () => true });
  }
}

/**
 * Any answer for `hook`: near misses, anything, any JSON, hostile objects, and valid answers.
 * `json`: JSON values only (for the real CLI, whose addon reads its answers from a file).
 */
export function answers(hook: OracleHook, json = false): fc.Arbitrary<unknown> {
  const arbitrary = fc.oneof(
    { weight: 4, arbitrary: nearMiss },
    { weight: 2, arbitrary: json ? fc.jsonValue({ maxDepth: 2 }) : anyValue },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: json ? 0 : 1, arbitrary: hostile },
    { weight: 2, arbitrary: validAnswer(hook) },
  );
  return json ? arbitrary.map(jsonRoundTrip) : arbitrary;
}

/** The value a JSON file carries for `value` (what the CLI's addon will read). */
export function jsonRoundTrip(value: unknown): unknown {
  try {
    const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return "unserializable";
  }
}

// ---------------------------------------------------------------------------------------------
// Confinement
// ---------------------------------------------------------------------------------------------

/**
 * The answer actually given: a `redirect` that would be valid is pointed at loopback — its host
 * becomes 127.0.0.1 and its port `redirectPort` — and a host string that could be looked up
 * becomes one no resolver can send (a 256-byte label), so nothing ever leaves the machine.
 * Validity is unchanged by construction (valid stays valid, invalid stays invalid).
 */
export function confine(answer: unknown, redirectPort: number): unknown {
  const redirect = read(answer, "redirect");
  if (!redirect.ok || !isObject(redirect.value)) return answer;
  const inner = redirect.value;
  const host = read(inner, "host");
  const port = read(inner, "port");
  let copy: Record<string, unknown>;
  try {
    copy = { ...(inner as Record<string, unknown>) };
  } catch {
    return answer;
  }
  if (host.ok && typeof host.value === "string" && host.value !== "") copy.host = isHostText(host.value) ? "127.0.0.1" : "a".repeat(256);
  if (port.ok && isInt(port.value, 1, 65535)) copy.port = redirectPort;
  try {
    return { ...(answer as Record<string, unknown>), redirect: copy };
  } catch {
    return answer;
  }
}

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/** How the contract classifies `answer` for `hook` (see the module comment). */
export function classify(hook: OracleHook, answer: unknown, context: AnswerContext = {}): Classified {
  if (answer === undefined) return { validity: "valid", decision: NONE, why: "undefined" };
  if (answer === null) return { validity: "either", decision: NONE, why: "null" };
  switch (hook) {
    case "onOpen":
      return oneOf(answer, { reject: flagged({ kind: "reject" }) });
    case "onAuth":
      return oneOf(answer, { accept: flagged({ kind: "accept" }), reject: flagged({ kind: "reject" }) });
    case "onRequest":
      return oneOf(answer, {
        allow: flagged({ kind: "allow" }),
        serve: flagged({ kind: "serve" }),
        deny: (v) => (isInt(v, 1, 255) ? { validity: "valid", decision: { kind: "deny", rep: v }, why: "deny" } : bad(`deny ${show(v)}`)),
        redirect: (v) => target(v, "redirect"),
        upstream,
      });
    case "onReply":
      return reply(answer, context.failed ?? false);
    case "onData":
      return oneOf(answer, {
        replace: bytes,
        drop: flagged({ kind: "drop" }),
        close: flagged({ kind: "close" }),
        reset: flagged({ kind: "reset" }),
      });
    case "onDatagram":
      return oneOf(answer, {
        replace: bytes,
        drop: flagged({ kind: "drop" }),
        redirect: (v) => (context.direction === "down" ? bad("redirect of a down datagram") : target(v, "redirect")),
      });
    case "onTlsClientHello":
      return oneOf(answer, { intercept: flagged({ kind: "intercept" }), passthrough: flagged({ kind: "passthrough" }) });
    default: {
      const unreachable: never = hook;
      throw new Error(`no hook ${String(unreachable)}`);
    }
  }
}

type FieldCheck = (value: unknown) => Classified;

const bad = (why: string): Classified => ({ validity: "invalid", decision: NONE, why });

function flagged(decision: Decision): FieldCheck {
  return (v) => (v === true ? { validity: "valid", decision, why: decision.kind } : bad(`${decision.kind}: ${show(v)}`));
}

function bytes(v: unknown): Classified {
  if (typeof v === "string") return { validity: "valid", decision: { kind: "replace", data: Buffer.from(v) }, why: "replace string" };
  if (v instanceof Uint8Array) return { validity: "valid", decision: { kind: "replace", data: Buffer.from(v) }, why: "replace bytes" };
  return bad(`replace ${show(v)}`);
}

/** `{ host?, port? }` with at least one, host a lookup-able text or IP, port 1…65535. */
function target(v: unknown, what: string): Classified {
  if (!isObject(v) || Array.isArray(v)) return bad(`${what} ${show(v)}`);
  const keys = ownKeys(v);
  if (keys === undefined) return bad(`${what}: unreadable`);
  const host = read(v, "host");
  const port = read(v, "port");
  if (!host.ok || !port.ok) return bad(`${what}: a field throws`);
  const to: { host?: string; port?: number } = {};
  if (host.value !== undefined) {
    if (typeof host.value !== "string" || !(isIP(host.value) !== 0 || isHostText(host.value))) return bad(`${what}.host ${show(host.value)}`);
    to.host = host.value;
  }
  if (port.value !== undefined) {
    if (!isInt(port.value, 1, 65535)) return bad(`${what}.port ${show(port.value)}`);
    to.port = port.value;
  }
  const decision: Decision = { kind: "redirect", to };
  // `{}` (nothing to change) and unknown fields are not shapes the contract names.
  if (to.host === undefined && to.port === undefined) return { validity: "either", decision, why: `${what} without host or port` };
  if (keys.some((k) => k !== "host" && k !== "port")) return { validity: "either", decision, why: `${what} with an unknown field` };
  return { validity: "valid", decision, why: what };
}

const UPSTREAM_SCHEMES = ["socks5h", "socks5", "socks4a", "socks4", "http"];

/**
 * `{ upstream }`: "direct" or [] is a route of no proxy, which (the harness has no default route)
 * is an allow. A list of more than 8, an element that is not a string, "direct" inside a list, or
 * a string that is not `SCHEME://[user[:pass]@]host[:port]` with a known scheme, a port of
 * 1…65535 (an http one must name it) and no password for socks4/4a, is invalid. What is left is a
 * real proxy route; the arbitraries never make one (nothing would answer it), so it is "either",
 * and a case that meets one says so in its outcome.
 */
function upstream(v: unknown): Classified {
  if (v === "direct") return { validity: "valid", decision: { kind: "allow" }, why: "upstream direct" };
  const list = typeof v === "string" ? [v] : Array.isArray(v) ? v : undefined;
  if (list === undefined) return bad(`upstream ${show(v)}`);
  if (list.length === 0) return { validity: "valid", decision: { kind: "allow" }, why: "upstream []" };
  if (list.length > 8) return bad("upstream: more than 8 hops");
  for (let i = 0; i < list.length; i++) {
    const url: unknown = list[i];
    if (typeof url !== "string" || (Array.isArray(v) && url === "direct")) return bad(`upstream[${i}] ${show(url)}`);
    const m = /^([a-z0-9]+):\/\/(?:([^@/]*)@)?(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d+))?\/?$/i.exec(url);
    if (m === null || !UPSTREAM_SCHEMES.includes(m[1]!.toLowerCase())) return bad(`upstream[${i}]: not a proxy URL`);
    const scheme = m[1]!.toLowerCase();
    if (m[4] === undefined ? scheme === "http" : !isInt(Number(m[4]), 1, 65535)) return bad(`upstream[${i}]: port`);
    if (m[2]?.includes(":") && scheme.startsWith("socks4")) return bad(`upstream[${i}]: a socks4 password`);
  }
  return { validity: "either", decision: NONE, why: "upstream through a real proxy (never generated)" };
}

function reply(answer: unknown, failed: boolean): Classified {
  if (!isObject(answer)) return bad(`reply change ${show(answer)}`);
  const keys = ownKeys(answer);
  if (keys === undefined) return bad("reply change: unreadable");
  const rep = read(answer, "rep");
  const bound = read(answer, "bound");
  if (!rep.ok || !bound.ok) return bad("reply change: a field throws");
  const decision: { kind: "reply"; rep?: number; bound?: { host: string; port: number } } = { kind: "reply" };
  if (rep.value !== undefined) {
    if (!isInt(rep.value, 0, 255)) return bad(`rep ${show(rep.value)}`);
    if (rep.value === 0 && failed) return bad("rep 0 on a failed request");
    decision.rep = rep.value;
  }
  if (bound.value !== undefined) {
    const b = bound.value;
    const host = read(b, "host");
    const port = read(b, "port");
    if (!isObject(b) || !host.ok || !port.ok || typeof host.value !== "string" || !isInt(port.value, 0, 65535)) return bad(`bound ${show(b)}`);
    if (isIP(host.value) === 0 && !isHostText(host.value)) return bad(`bound.host ${show(host.value)}`);
    decision.bound = { host: host.value, port: port.value };
    if (ownKeys(b)?.some((k) => k !== "host" && k !== "port")) return { validity: "either", decision, why: "bound with an unknown field" };
  }
  const plain = !Array.isArray(answer) && (Object.getPrototypeOf(answer) === Object.prototype || Object.getPrototypeOf(answer) === null);
  if (!plain) return { validity: "either", decision, why: "not a plain object" };
  if (keys.some((k) => k !== "rep" && k !== "bound")) return { validity: "either", decision, why: "reply change with an unknown field" };
  return { validity: "valid", decision, why: "reply change" };
}

/** An object with exactly one of `checks`' keys; unknown extra keys make it "either". */
function oneOf(answer: unknown, checks: Record<string, FieldCheck>): Classified {
  if (!isObject(answer) || Array.isArray(answer)) return bad(`not an object: ${show(answer)}`);
  const keys = ownKeys(answer);
  if (keys === undefined) return bad("keys throw");
  const known = keys.filter((k) => Object.hasOwn(checks, k));
  if (known.length !== 1) return bad(known.length === 0 ? `no known key in ${show(answer)}` : `several keys: ${known.join(", ")}`);
  const key = known[0]!;
  const value = read(answer, key);
  if (!value.ok) return bad(`${key} throws`);
  const verdict = checks[key]!(value.value);
  if (verdict.validity === "invalid") return verdict;
  if (keys.length > 1) return { ...verdict, validity: "either", why: `${verdict.why} with an unknown field` };
  const plain = Object.getPrototypeOf(answer) === Object.prototype || Object.getPrototypeOf(answer) === null;
  return plain ? verdict : { ...verdict, validity: "either", why: `${verdict.why} on a ${answer.constructor?.name ?? "strange"} object` };
}

/** Text a host field can carry: 1 to 255 latin1 characters, no NUL. */
function isHostText(value: string): boolean {
  return value.length >= 1 && value.length <= 255 && /^[\x01-\xff]+$/.test(value);
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}

function ownKeys(value: object): string[] | undefined {
  try {
    return Object.keys(value);
  } catch {
    return undefined;
  }
}

function read(value: unknown, key: string): { ok: true; value: unknown } | { ok: false } {
  if (!isObject(value)) return { ok: true, value: undefined };
  try {
    return { ok: true, value: Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined };
  } catch {
    return { ok: false };
  }
}

/** A short rendering of any value for messages (never throws). */
export function show(value: unknown): string {
  try {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "symbol" || typeof value === "function") return typeof value;
    if (value instanceof Uint8Array) return `${value.constructor.name}[${Buffer.from(value).toString("hex")}]`;
    const text = JSON.stringify(value, (_k, v: unknown) =>
      typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `bytes:${Buffer.from(v).toString("hex")}` : v === undefined ? "<undefined>" : v,
    );
    return text === undefined ? String(value) : text.length > 120 ? `${text.slice(0, 120)}…` : text;
  } catch {
    return "<unprintable>";
  }
}
