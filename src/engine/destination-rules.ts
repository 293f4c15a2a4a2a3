/**
 * Destination rules (`run --allow RULE` / `--deny RULE`): which destinations clients may reach,
 * as one ordered list where the first matching rule decides and no match allows. Also the loop
 * check: a request for one of the proxy's own listening addresses is always refused.
 *
 * A rule is a host part, a port part, or both (`host:port`):
 * - a CIDR or a single address, IPv4 or IPv6 (`10.0.0.0/8`, `127.0.0.1`, `2001:db8::/32`,
 *   `[2001:db8::/32]:443`: an IPv6 rule with a port is written in brackets);
 * - a host glob (`*.example.com`, `example.com`): `*` stands for any run of characters, dots
 *   included; matched case-insensitively against names, never against addresses. `*` alone
 *   matches every destination, names and addresses (`--allow *.corp --deny *`);
 * - `:port` or `:lo-hi`.
 *
 * A destination is the requested name (absent when the client asked for an address) and the
 * address dialled (absent until a name is resolved). A CIDR rule matches the address, a glob the
 * name, so for every address a name resolves to, the first rule matching either decides: with
 * `--deny 10.0.0.0/8`, a name resolving into 10/8 is denied; with `--allow *.corp --deny 10.0.0.0/8`
 * it is allowed when it ends in `.corp`.
 */
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";
import type { Endpoint } from "./types.js";

export type RuleAction = "allow" | "deny";

/** A rule as the user wrote it. */
export interface RuleSource {
  readonly action: RuleAction;
  readonly text: string;
}

/** A rule that is not one of the forms above; the message says why, naming the rule. */
export class DestinationRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DestinationRuleError";
  }
}

type HostMatcher =
  | { readonly kind: "any" }
  | { readonly kind: "name"; readonly pattern: RegExp }
  | { readonly kind: "cidr"; readonly range: [ipaddr.IPv4 | ipaddr.IPv6, number] };

interface CompiledRule {
  /** `--deny 10.0.0.0/8`: how the rule is named in replies' attempts, events and logs. */
  readonly label: string;
  readonly action: RuleAction;
  readonly host: HostMatcher;
  /** Inclusive port range; absent = any port. */
  readonly ports: readonly [number, number] | undefined;
}

/** Parses one rule; throws DestinationRuleError. */
export function compileRule(source: RuleSource): CompiledRule {
  const { action, text } = source;
  const fail = (why: string): never => {
    throw new DestinationRuleError(`bad rule ${JSON.stringify(text)}: ${why}`);
  };
  if (text.length === 0) fail("empty (expected a CIDR, a host glob, :port or host:port)");
  let hostText = text;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) fail("no closing ]");
    hostText = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(":")) fail(`expected :port after ], not ${JSON.stringify(rest)}`);
      portText = rest.slice(1);
    }
    if (!hostText.includes(":")) fail("brackets are for IPv6 addresses");
  } else {
    const colons = text.split(":").length - 1;
    // More than one colon is an IPv6 address or CIDR, which takes a port only in brackets.
    if (colons === 1) {
      const at = text.indexOf(":");
      hostText = text.slice(0, at);
      portText = text.slice(at + 1);
    }
  }
  const ports = portText === undefined ? undefined : parsePorts(portText, fail);
  if (hostText.length === 0) {
    if (ports === undefined) fail("empty host");
    return { label: `--${action} ${text}`, action, host: { kind: "any" }, ports };
  }
  return { label: `--${action} ${text}`, action, host: parseHost(hostText, fail), ports };
}

function parsePorts(text: string, fail: (why: string) => never): readonly [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (m === null) fail(`bad port ${JSON.stringify(text)} (expected :port or :lo-hi)`);
  const lo = Number(m![1]);
  const hi = m![2] === undefined ? lo : Number(m![2]);
  if (lo < 1 || hi > 65_535 || lo > 65_535) fail(`port out of range (1-65535)`);
  if (lo > hi) fail(`port range ${lo}-${hi} is backwards`);
  return [lo, hi];
}

function parseHost(text: string, fail: (why: string) => never): HostMatcher {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  if (slash >= 0 || isIP(addressText) !== 0 || text.includes(":")) {
    // Node's isIP is strict (no `10.1`, no hex octets), which ipaddr.js would accept.
    const family = isIP(addressText);
    if (family === 0) fail(`${JSON.stringify(addressText)} is not an IPv4 or IPv6 address`);
    const bits = family === 4 ? 32 : 128;
    const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) fail(`bad prefix length /${prefixText} (0-${bits} for IPv${family})`);
    const prefix = Number(prefixText);
    const address = ipaddr.parse(addressText);
    const network =
      family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(`${addressText}/${prefix}`) : ipaddr.IPv6.networkAddressFromCIDR(`${addressText}/${prefix}`);
    if (network.toNormalizedString() !== address.toNormalizedString()) {
      fail(`${addressText} has bits set beyond /${prefix} (did you mean ${network.toString()}/${prefix}?)`);
    }
    return { kind: "cidr", range: [address, prefix] };
  }
  const name = text.toLowerCase().replace(/\.$/, "");
  if (name === "*") return { kind: "any" };
  if (!/^[a-z0-9_*.-]+$/.test(name) || name.includes("..") || name.startsWith(".")) {
    fail("not a CIDR, an address or a host glob (letters, digits, - _ . and *)");
  }
  const pattern = new RegExp(`^${name.split("*").map(escapeRegExp).join(".*")}$`);
  return { kind: "name", pattern };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

/** An ordered rule list, compiled once. */
export class DestinationRules {
  private readonly rules: readonly CompiledRule[];

  /** Throws DestinationRuleError for the first rule that does not parse. */
  constructor(sources: readonly RuleSource[]) {
    this.rules = sources.map(compileRule);
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * The label of the deny rule that decides (`--deny 10.0.0.0/8`), or undefined when the
   * destination is allowed (by an allow rule or by default).
   * - `host`: the destination as requested, a name or an address;
   * - `resolved`: for a name, the address about to be dialled. Without it a name is decided
   *   only as far as rules before the first address rule go (undefined = not denied yet: check
   *   again with each resolved address).
   */
  check(host: string, port: number, resolved?: string): string | undefined {
    const literal = isIP(host) !== 0;
    const name = literal ? undefined : host.toLowerCase().replace(/\.$/, "");
    const address = literal ? host : resolved;
    let parsed: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
    for (const rule of this.rules) {
      if (rule.ports !== undefined && (port < rule.ports[0] || port > rule.ports[1])) continue;
      const { host: matcher } = rule;
      if (matcher.kind === "name") {
        if (name === undefined || !matcher.pattern.test(name)) continue;
      } else if (matcher.kind === "cidr") {
        // Not resolved yet: this rule may match, so nothing after it can decide.
        if (address === undefined) return undefined;
        // An IPv4-mapped IPv6 address is matched as the IPv4 address it carries.
        parsed ??= ipaddr.process(address);
        const [range, bits] = matcher.range;
        if (parsed.kind() !== range.kind() || !parsed.match(range, bits)) continue;
      }
      return rule.action === "deny" ? rule.label : undefined;
    }
    return undefined;
  }
}

/**
 * Whether `address:port` is one of `listening` (the proxy's bound listeners): the same address,
 * or, for a wildcard listener, any address of this host (loopback or an interface's).
 */
export function isOwnListener(address: string, port: number, listening: readonly Endpoint[]): boolean {
  if (isIP(address) === 0) return false;
  let host: string | undefined;
  let local: boolean | undefined;
  for (const l of listening) {
    if (l.port !== port || isIP(l.host) === 0) continue;
    // Compared in one spelling: `0:0::1` is `::1`, `::ffff:127.0.0.1` is `127.0.0.1`.
    host ??= canonical(address);
    if (canonical(l.host) === host) return true;
    // A "::" listener is dual-stack (Node's default): it takes IPv4 connections too.
    const wildcard = l.host === "::" || (l.host === "0.0.0.0" && isIP(host) === 4);
    if (wildcard && (local ??= isLocalAddress(host))) return true;
  }
  return false;
}

function canonical(address: string): string {
  return ipaddr.process(address).toNormalizedString();
}

function isLocalAddress(host: string): boolean {
  if (ipaddr.process(host).range() === "loopback") return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (isIP(info.address) !== 0 && canonical(info.address) === host) return true;
  }
  return false;
}
