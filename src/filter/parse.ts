/**
 * The filter language: one syntax for the TUI view, `sessions --filter`, export and
 * replay, parsed here once and compiled to SQL (`sql.ts`) or to a predicate (`predicate.ts`).
 *
 * Terms. Field names are case-insensitive; so are text matches unless noted. A term on several
 * columns holds when any of them matches; a null column never matches (so `!term` holds on it).
 *
 *   host:GLOB        requested_host or target_host matches the glob: `*` any run, `?` one
 *                    character, the whole text, case-insensitive (`host:*.example.com`).
 *   host:IP|CIDR     when the value is an IP or CIDR (`10.0.0.0/8`, `::1`): requested_host,
 *                    target_host or remote_host is an IP inside it. Only dotted-quad IPv4 and
 *                    IPv6 text count (`10.0.0.*`, `10` are globs); IPv4-mapped IPv6
 *                    (`::ffff:a.b.c.d`) counts as IPv4, in values and sessions.
 *   port:N, port:N-M requested_port or target_port is N, or in N..M (0-65535).
 *   id:N, id:N-M     the session's id.
 *   rep:N, rep:N-M   the reply code (decimal or 0x hex, 0-255).
 *   cmd:connect|bind|udp                     the command.
 *   v:4|4a|5                                 the SOCKS version.
 *   status:open|ok|denied|failed|interrupted the status.
 *   proto:tls|http|http2|ssh|none            the detected protocol; `none` (or `unknown`) is null.
 *   user:GLOB, sni:GLOB, reason:GLOB         user, sni, close_reason match the glob; `sni:` also
 *                    matches the SNI of the session's tls row (an intercepted session's sessions.sni
 *                    is what the sniffer read in the plaintext: an HTTP Host, or nothing).
 *   tls              (the bare keyword, unquoted) the session has a tls row: `run --tls` saw its
 *                    CONNECT tunnel begin with a ClientHello. `"tls"` (quoted) is the word again.
 *   tls:intercepted|passthrough|failed
 *                    the relay saw the plaintext / the tunnel passed through untouched / a
 *                    handshake failed. Disjoint: the first two mean no failure was recorded.
 *   alpn:GLOB        the application protocol: with a tls row, the ALPN negotiated with the
 *                    client or the target once a handshake finished (nothing when neither
 *                    negotiated one), else one the client offered; without one, one offered in
 *                    the ClientHello the sniffer read (`proto:tls` sessions).
 *   via:GLOB         some upstream hop of the session's route matches the glob: its whole
 *                    `scheme://host:port`, its `host:port` or its host (`via:socks5h://*`,
 *                    `via:10.0.0.2:1080`, `via:*corp*`; IPv6 hops are `[addr]:port`).
 *   via:direct       the session went direct: no upstream (a hop is never named `direct`).
 *   client:IP|CIDR   client_host is an IP inside it.
 *   tag:KEY          some tag's key matches the KEY glob (`tag:*`: any tag at all).
 *   tag:KEY=GLOB     … and its value matches GLOB. The value is split at its first `=`. Tags that
 *                    are not a JSON object are none; non-string tag values match as JSON text.
 *   bytes OP SIZE    bytes_up_received + bytes_down_received;  up OP SIZE, down OP SIZE: one
 *                    direction's bytes received. SIZE: as the CLI's (format/quantities.ts
 *                    parseBytes): a number (fractions kept) with an optional unit, powers of
 *                    1024, any case (`bytes>10k`, `up>1.5KiB`).
 *   dur OP TIME      closed_at − opened_at, or `now` − opened_at while closed_at is null (`now` is
 *                    given when compiling or evaluating). TIME: as the CLI's (parseDuration):
 *                    a number with ms, s, m, h or d, any case; seconds when bare (`dur>2s`, `dur<=500ms`).
 *                    OP is one of > >= < <= =, written with no spaces around it.
 *   ~REGEX, ~"REGEX", ~FLAGS"REGEX"
 *                    some single payload of the session matches the JavaScript regular
 *                    expression: a chunk's data or sent, or a datagram's data or sent, decoded
 *                    latin1 (one character per byte, so `~"\x00\xff"` finds bytes). A match
 *                    spanning two payloads is not found. FLAGS: any of i, m, s, only before a
 *                    quote (`~i"user-agent"`; `~ifoo` is the expression `ifoo`). Quoted, the
 *                    expression is the text between the quotes as is (`\"` is the expression's
 *                    own escape for `"`). Unquoted, it runs to a space, or to a `)` or `&` outside
 *                    its own parentheses and brackets, and cannot hold `"`; a `|` follows the
 *                    alternatives rule below.
 *   WORD             a bare word (or "quoted words"), no field: `host:*WORD*`.
 *
 * Intercept filters (`run --intercept`, parsed by `parseInterceptFilter` and compiled by
 * `compileInterceptFilter` in `intercept.ts`) are decided on an item of a session in progress, and
 * have one more term:
 *
 *   stage:request|up|down|datagram
 *                    the item is a request (before anything is dialled), a chunk going up
 *                    (client → target) or down, or a datagram. A filter with no stage term holds
 *                    at every stage its other terms allow (`host:x` pauses the request and every
 *                    chunk; `host:x stage:request` the request alone). A `~` term there matches the
 *                    item's own bytes (a chunk's or a datagram's), and is false at the request.
 *                    `parseFilter` (stored sessions) refuses the term: a stored session has no stage.
 *
 * Values. A value runs to a space, `(`, `)`, `&` or `|`. Double quotes make any of those part of
 * it (`user:"a b"`); inside quotes `\"` is `"`, `\\` is `\`, and a backslash before anything else
 * stays. Quoted and unquoted pieces join (`tag:note="a b"`). Glob `*` and `?` are wildcards,
 * quoted or not. A word that starts with letters and a colon is a field, so quote words like
 * `"http://x"`.
 *
 * Alternatives. After `field:`, a `|` with no space on either side separates alternatives
 * (`cmd:connect|bind` is `cmd:connect | cmd:bind`) unless what follows it starts a new term: a
 * known `field:`, a comparison (`bytes>`…), the keyword `tls`, `!`, `(` or `~`; then it is the or operator
 * (`cmd:bind|host:x` is `cmd:bind | host:x`; `host:a|hots:b` is one glob `hots:b`, as `hots` is
 * no field). With a space on either side, `|` is always the operator. Each
 * alternative is a whole value (`tag:a=x|b` is `tag:a=x | tag:b`), and together they are one
 * term (`!cmd:connect|bind` is neither, `a cmd:connect|bind` needs a and one of them). For
 * `~REGEX` the same rule decides whether `|` belongs to the expression.
 *
 * Operators: `!` not, space or `&` and, `|` or, parentheses; `!` binds tightest, then and, then
 * or. The empty filter (or only spaces) matches every session.
 *
 * Grammar:
 *   filter := space* (or space*)?
 *   or     := and (space* "|" space* and)*
 *   and    := unary ((space+ | space* "&" space*) unary)*   -- no space needed after ")"
 *   unary  := "!" space* unary | "(" space* or space* ")" | term
 *   term   := FIELD ":" value ("|" value)* | MEASURE OP value | "~" (FLAGS? quoted | regex) | "tls" | value
 *   value  := (unquoted | quoted)+
 *
 * Errors are FilterErrors carrying a code and the column of the offending character.
 */
import {
  COMMANDS,
  PROTOCOLS,
  STAGES,
  STATUSES,
  TLS_STATES,
  VERSIONS,
  type ComparisonOperator,
  type Filter,
  type Measure,
  type RangeField,
  type Term,
} from "./ast.js";
import { FilterError, type FilterErrorCode } from "./filter-error.js";
import { INTERCEPT_ONLY_MESSAGE } from "./stored-only.js";
import { compileRegExp, normalizeCidr } from "./match.js";
import { assertNever } from "../lang/assert-never.js";
import { closestMatch } from "../lang/closest-match.js";
import { DURATION_EXAMPLES, SIZE_EXAMPLES, parseBytes, parseDuration } from "../format/quantities.js";

/**
 * Parses a filter over stored sessions (the TUI list, `--filter`, `--route`, `--tls-hosts`, …); throws
 * FilterError (and nothing else) when it is not one, `INTERCEPT_ONLY` at a `stage:` term.
 */
export function parseFilter(text: string): Filter {
  return new Parser(text, false).parse();
}

/** Parses an intercept filter (`run --intercept`): `parseFilter` plus `stage:` terms. Throws FilterError. */
export function parseInterceptFilter(text: string): Filter {
  return new Parser(text, true).parse();
}

const FIELDS = ["host", "port", "cmd", "v", "status", "proto", "rep", "reason", "id", "user", "sni", "client", "tag", "tls", "alpn", "via", "stage"] as const;
/** `via:direct`: the session had no upstream. */
const DIRECT = "direct";
/** The one bare keyword: a term on its own, not a host glob. */
const TLS_KEYWORD = "tls";
type Field = (typeof FIELDS)[number];
const MEASURES = ["bytes", "up", "down", "dur"] as const satisfies readonly Measure[];

const isField = (name: string): name is Field => (FIELDS as readonly string[]).includes(name);
const isMeasure = (name: string): name is Measure => (MEASURES as readonly string[]).includes(name);
const isSpace = (c: string): boolean => /\s/.test(c);

/** Characters that end an unquoted value (besides white space). */
const VALUE_END = new Set(["(", ")", "&", "|"]);
/** An operator just read, for "expected a term after …"; undefined at the start of a group. */
type After = "|" | "&" | "!" | "(" | undefined;

interface Value {
  readonly text: string;
  /** Index of the value's first character. */
  readonly at: number;
}

/** Nesting that a person writes is far below this; the compilers recurse once per level. */
const MAX_DEPTH = 100;

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly text: string,
    /** Whether `stage:` terms are allowed (an intercept filter). */
    private readonly stages: boolean,
  ) {}

  parse(): Filter {
    this.skipSpace();
    if (this.pos === this.text.length) return { kind: "all" };
    const filter = this.parseOr(undefined);
    // parseOr stops only at the end or at a ')' with no '(' of its own.
    if (this.pos < this.text.length) throw this.error("UNBALANCED", "unbalanced ')'", this.pos);
    return filter;
  }

  // Each parse method starts on a non-space character and returns past any trailing spaces.

  private parseOr(after: After): Filter {
    const operands = [this.parseAnd(after)];
    while (this.peek() === "|") {
      this.pos++;
      this.skipSpace();
      operands.push(this.parseAnd("|"));
    }
    return operands.length === 1 ? operands[0]! : { kind: "or", operands };
  }

  private parseAnd(after: After): Filter {
    const operands = [this.parseUnary(after)];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "&") {
        this.pos++;
        this.skipSpace();
        operands.push(this.parseUnary("&"));
      } else {
        operands.push(this.parseUnary(undefined));
      }
    }
    return operands.length === 1 ? operands[0]! : { kind: "and", operands };
  }

  private parseUnary(after: After): Filter {
    const at = this.pos;
    const c = this.peek();
    if (c === undefined || c === "|" || c === "&" || c === ")") throw this.missingTerm(after, c);
    if (c === "!" || c === "(") {
      if (++this.depth > MAX_DEPTH) throw this.error("TOO_DEEP", `more than ${MAX_DEPTH} nested '!' and '('`, at);
      this.pos++;
      this.skipSpace();
      let inner: Filter;
      if (c === "!") {
        inner = { kind: "not", operand: this.parseUnary("!") };
      } else {
        inner = this.parseOr("(");
        if (this.peek() !== ")") throw this.error("UNBALANCED", "unclosed '('", at);
        this.pos++;
        this.skipSpace();
      }
      this.depth--;
      return inner;
    }
    const term = c === "~" ? this.parsePayload() : this.parseTerm();
    const next = this.peek();
    if (next !== undefined && !isSpace(next) && next !== "&" && next !== "|" && next !== ")") {
      throw this.error("EXPECTED_OPERATOR", `expected a space or an operator before '${next}'`, this.pos);
    }
    this.skipSpace();
    return term;
  }

  private missingTerm(after: After, c: string | undefined): FilterError {
    if (c === ")" && after === undefined) return this.error("UNBALANCED", "unbalanced ')'", this.pos);
    if (c === ")" && after === "(") return this.error("EXPECTED_TERM", "empty parentheses", this.pos);
    if ((c === "|" || c === "&") && (after === undefined || after === "(")) {
      return this.error("EXPECTED_TERM", `expected a term before '${c}'`, this.pos);
    }
    return this.error("EXPECTED_TERM", `expected a term after '${after ?? ""}'`, this.pos);
  }

  private parseTerm(): Filter {
    const start = this.pos;
    const name = this.nameAt(start);
    const next = name === undefined ? undefined : this.text[start + name.length];
    if (name !== undefined && next === ":") return this.parseField(name, start);
    if (name !== undefined && this.isKeyword(name, start)) {
      this.pos = start + name.length;
      return { kind: "tls", state: null };
    }
    if (name !== undefined && (next === "<" || next === ">" || next === "=")) {
      const measure = name.toLowerCase();
      if (isMeasure(measure)) return this.parseComparison(measure, start + name.length);
      if (next !== "=") {
        const hint = closestMatch(measure, MEASURES);
        const tail = hint === undefined ? "use bytes, up, down or dur" : `did you mean '${hint}'?`;
        throw this.error("UNKNOWN_FIELD", `unknown comparison '${name}' — ${tail}`, start);
      }
    }
    const word = this.readValue();
    if (word.text === "") throw this.error("EXPECTED_VALUE", "empty quoted word", start);
    return { kind: "glob", field: "host", pattern: `*${word.text}*` };
  }

  private parseField(name: string, start: number): Filter {
    const field = name.toLowerCase();
    if (isMeasure(field)) {
      throw this.error("UNKNOWN_FIELD", `'${field}' is compared, not matched: write ${field}>N, ${field}<=N, ${field}=N, …`, start);
    }
    if (!isField(field)) {
      const hint = closestMatch(field, FIELDS);
      const tail = hint === undefined ? `fields are ${FIELDS.join(", ")} (quote a word that contains ':')` : `did you mean '${hint}'?`;
      throw this.error("UNKNOWN_FIELD", `unknown field '${name}' — ${tail}`, start);
    }
    if (field === "stage" && !this.stages) throw this.error("INTERCEPT_ONLY", INTERCEPT_ONLY_MESSAGE, start);
    this.pos = start + name.length + 1;
    const terms: Term[] = [];
    let value = this.readValue();
    for (;;) {
      if (value.text === "") {
        const where = terms.length === 0 ? `${field}:` : "|";
        throw this.error("EXPECTED_VALUE", `expected a value after '${where}'`, value.at);
      }
      terms.push(this.fieldTerm(field, value));
      if (this.peek() !== "|" || !this.startsAlternative(this.pos + 1)) break;
      this.pos++;
      value = this.readValue();
    }
    return terms.length === 1 ? terms[0]! : { kind: "or", operands: terms };
  }

  private fieldTerm(field: Field, value: Value): Term {
    const { text } = value;
    switch (field) {
      case "host":
      case "client": {
        const cidr = normalizeCidr(text);
        if (typeof cidr === "string") return { kind: "cidr", field, cidr };
        if (cidr !== undefined) throw this.error("BAD_VALUE", cidr.error, value.at);
        if (field === "client") throw this.error("BAD_VALUE", "client must be an IP address or a CIDR range such as 10.0.0.0/8", value.at);
        return { kind: "glob", field, pattern: text };
      }
      case "user":
      case "sni":
      case "reason":
        return { kind: "glob", field, pattern: text };
      case "port":
      case "id":
      case "rep":
        return this.range(field, value);
      case "cmd":
        return { kind: "enum", field, value: this.oneOf(field, COMMANDS, value) };
      case "v":
        return { kind: "enum", field, value: this.oneOf(field, VERSIONS, value) };
      case "status":
        return { kind: "enum", field, value: this.oneOf(field, STATUSES, value) };
      case "proto": {
        const lower = text.toLowerCase();
        if (lower === "none" || lower === "unknown") return { kind: "enum", field, value: null };
        return { kind: "enum", field, value: this.oneOf(field, PROTOCOLS, value, [...PROTOCOLS, "none"]) };
      }
      case "tls":
        return { kind: "tls", state: this.oneOf(field, TLS_STATES, value) };
      case "alpn":
        return { kind: "alpn", pattern: text };
      case "stage":
        return { kind: "stage", stage: this.oneOf(field, STAGES, value) };
      case "via": {
        // A pattern with credentials could never match (routes are stored without them), and is
        // most likely a password pasted from an --upstream URL: say so rather than match nothing.
        const at = text.indexOf("@");
        if (at >= 0) throw this.error("BAD_VALUE", "routes are recorded without credentials: write via:scheme://host:port or via:host:port", value.at + at);
        return { kind: "via", pattern: text.toLowerCase() === DIRECT ? null : text };
      }
      case "tag": {
        const eq = text.indexOf("=");
        if (eq === 0) throw this.error("EXPECTED_VALUE", "expected a tag name after 'tag:'", value.at);
        return eq < 0 ? { kind: "tag", key: text, value: null } : { kind: "tag", key: text.slice(0, eq), value: text.slice(eq + 1) };
      }
      default:
        return assertNever(field, "field");
    }
  }

  /** One of `allowed`, case-insensitively; `shown` lists the names for the message. */
  private oneOf<T extends string>(field: Field, allowed: readonly T[], value: Value, shown: readonly string[] = allowed): T {
    const lower = value.text.toLowerCase();
    const found = allowed.find((v) => v === lower);
    if (found === undefined) {
      const hint = closestMatch(value.text, shown);
      throw this.error("BAD_VALUE", `${field} must be one of ${shown.join(", ")}${hint === undefined ? "" : ` — did you mean '${hint}'?`}`, value.at);
    }
    return found;
  }

  private range(field: RangeField, value: Value): Term {
    const limit = { port: 65535, id: Number.MAX_SAFE_INTEGER, rep: 255 }[field];
    const number = field === "rep" ? /^(?:0x[0-9a-f]+|\d+)$/i : /^\d+$/;
    const parts = value.text.split("-");
    const [min, max] = parts.map((part) => (number.test(part) ? Number(part) : Number.NaN));
    const valid = (n: number | undefined): n is number => n !== undefined && n <= limit;
    if (parts.length > 2 || !valid(min) || (parts.length === 2 && !valid(max))) {
      const what = {
        port: "port must be a number 0-65535 or a range N-M",
        id: "id must be a session id or a range N-M",
        rep: "rep must be a reply code 0-255 (decimal or 0x hex) or a range N-M",
      }[field];
      throw this.error("BAD_VALUE", what, value.at);
    }
    const top = max ?? min;
    if (top < min) throw this.error("BAD_VALUE", `${field} range ${value.text} is backwards`, value.at);
    return { kind: "range", field, min, max: top };
  }

  private parseComparison(measure: Measure, opAt: number): Term {
    const two = this.text.slice(opAt, opAt + 2);
    const op: ComparisonOperator = two === ">=" || two === "<=" ? two : (this.text[opAt] as ">" | "<" | "=");
    this.pos = opAt + op.length;
    const value = this.readValue();
    const kind = measure === "dur" ? "duration" : "size";
    if (value.text === "") throw this.error("EXPECTED_VALUE", `expected a ${kind} after '${measure}${op}'`, value.at);
    const parsed = measure === "dur" ? parseDuration(value.text) : parseBytes(value.text);
    if ("problem" in parsed && parsed.problem === "TOO_LARGE") throw this.error("BAD_VALUE", `${measure}: '${value.text}' is too large`, value.at);
    if ("problem" in parsed) {
      const examples = measure === "dur" ? DURATION_EXAMPLES : SIZE_EXAMPLES;
      throw this.error("BAD_VALUE", `${measure} needs a ${kind} such as ${examples} (got '${value.text}')`, value.at);
    }
    const amount = parsed.value;
    return { kind: "compare", measure, op, amount };
  }

  private parsePayload(): Term {
    const tilde = this.pos++;
    const flagged = /([A-Za-z]*)"/y;
    flagged.lastIndex = this.pos;
    const quoted = flagged.exec(this.text);
    let flags = "";
    let pattern: string;
    if (quoted !== null) {
      flags = quoted[1]!;
      for (let i = 0; i < flags.length; i++) {
        const flag = flags[i]!;
        if (!"ims".includes(flag)) throw this.error("BAD_REGEX", `unknown regular expression flag '${flag}' (flags are i, m and s)`, this.pos + i);
        if (flags.indexOf(flag) < i) throw this.error("BAD_REGEX", `repeated regular expression flag '${flag}'`, this.pos + i);
      }
      this.pos += flags.length;
      pattern = this.readRawQuoted();
    } else {
      pattern = this.readRawRegex();
      if (pattern === "") throw this.error("EXPECTED_VALUE", "expected a regular expression after '~'", this.pos);
    }
    try {
      compileRegExp(pattern, flags);
    } catch (err) {
      const detail = (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, "");
      throw this.error("BAD_REGEX", `bad regular expression: ${detail}`, tilde);
    }
    return { kind: "payload", pattern, flags };
  }

  /** A value: unquoted and quoted pieces up to a space, `(`, `)`, `&`, `|` or the end. */
  private readValue(): Value {
    const at = this.pos;
    let text = "";
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || isSpace(c) || VALUE_END.has(c)) break;
      if (c === '"') {
        text += this.readQuoted();
      } else {
        text += c;
        this.pos++;
      }
    }
    return { text, at };
  }

  private readQuoted(): string {
    const open = this.pos++;
    let text = "";
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) throw this.error("UNTERMINATED_QUOTE", "unterminated quote", open);
      this.pos++;
      if (c === '"') return text;
      const escaped = this.text[this.pos];
      if (c === "\\" && (escaped === '"' || escaped === "\\")) {
        text += escaped;
        this.pos++;
      } else {
        text += c;
      }
    }
  }

  /** The text between quotes, escapes and all (a regular expression has its own). */
  private readRawQuoted(): string {
    const open = this.pos++;
    for (let i = this.pos; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === "\\") i++;
      else if (c === '"') {
        this.pos = i + 1;
        return this.text.slice(open + 1, i);
      }
    }
    throw this.error("UNTERMINATED_QUOTE", "unterminated quote", open);
  }

  private readRawRegex(): string {
    const start = this.pos;
    let depth = 0;
    let inClass = false;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || isSpace(c)) break;
      if (c === '"') throw this.error("BAD_REGEX", 'a quote inside an unquoted regular expression: quote all of it, as ~"…"', this.pos);
      if (c === "\\") {
        const escaped = this.text[this.pos + 1];
        this.pos += escaped === undefined || isSpace(escaped) ? 1 : 2;
        continue;
      }
      if (inClass) {
        if (c === "]") inClass = false;
      } else if (c === "[") {
        inClass = true;
      } else if (c === "(") {
        depth++;
      } else if (c === ")") {
        if (depth === 0) break;
        depth--;
      } else if (depth === 0 && (c === "&" || (c === "|" && !this.startsAlternative(this.pos + 1)))) {
        break;
      }
      this.pos++;
    }
    return this.text.slice(start, this.pos);
  }

  /** Whether a `|` just before `i` continues a value rather than being the or operator. */
  private startsAlternative(i: number): boolean {
    const c = this.text[i];
    if (c === undefined || isSpace(c) || "()&|!~".includes(c)) return false;
    const name = this.nameAt(i);
    if (name === undefined) return true;
    if (this.isKeyword(name, i)) return false;
    const next = this.text[i + name.length];
    const lower = name.toLowerCase();
    return !((next === ":" && isField(lower)) || ((next === "<" || next === ">" || next === "=") && isMeasure(lower)));
  }

  /** Whether `name`, read at `i`, is the bare keyword `tls`: the whole value, unquoted. */
  private isKeyword(name: string, i: number): boolean {
    const after = this.text[i + name.length];
    return name.toLowerCase() === TLS_KEYWORD && (after === undefined || isSpace(after) || VALUE_END.has(after));
  }

  private nameAt(i: number): string | undefined {
    const name = /[A-Za-z]+/y;
    name.lastIndex = i;
    return name.exec(this.text)?.[0];
  }

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && isSpace(this.text[this.pos]!)) this.pos++;
  }

  private error(code: FilterErrorCode, message: string, index: number): FilterError {
    return new FilterError(code, message, this.text, index + 1);
  }
}
