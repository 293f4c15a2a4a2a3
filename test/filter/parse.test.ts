import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { ComparisonOperator, Filter, Measure, RangeField, Term } from "../../src/filter/ast.js";
import {
  FilterError,
  formatFilter,
  formatFilterError,
  parseFilter,
  parseInterceptFilter,
  stageTerms,
  toPredicate,
  toSql,
  usesPayload,
  type FilterErrorCode,
  type Stage,
} from "../../src/filter/index.js";

const glob = (field: "host" | "user" | "sni" | "reason", pattern: string): Term => ({ kind: "glob", field, pattern });
const word = (text: string): Term => glob("host", `*${text}*`);
const cidr = (field: "host" | "client", value: string): Term => ({ kind: "cidr", field, cidr: value });
const range = (field: RangeField, min: number, max = min): Term => ({ kind: "range", field, min, max });
const cmd = (value: "connect" | "bind" | "udp"): Term => ({ kind: "enum", field: "cmd", value });
const tag = (key: string, value: string | null = null): Term => ({ kind: "tag", key, value });
const cmp = (measure: Measure, op: ComparisonOperator, amount: number): Term => ({ kind: "compare", measure, op, amount });
const re = (pattern: string, flags = ""): Term => ({ kind: "payload", pattern, flags });
const and = (...operands: Filter[]): Filter => ({ kind: "and", operands });
const or = (...operands: Filter[]): Filter => ({ kind: "or", operands });
const not = (operand: Filter): Filter => ({ kind: "not", operand });
const tls = (state: "intercepted" | "passthrough" | "failed" | null = null): Term => ({ kind: "tls", state });
const alpn = (pattern: string): Term => ({ kind: "alpn", pattern });
const via = (pattern: string | null): Term => ({ kind: "via", pattern });
const stage = (value: Stage): Term => ({ kind: "stage", stage: value });

/** [filter text, tree] */
const PARSES: readonly (readonly [string, Filter])[] = [
  // Empty
  ["", { kind: "all" }],
  [" \t ", { kind: "all" }],
  // host
  ["host:*.example.com", glob("host", "*.example.com")],
  ["HOST:Example.COM", glob("host", "Example.COM")],
  ["host:10.0.0.*", glob("host", "10.0.0.*")],
  ["host:10.0.0.0/8", cidr("host", "10.0.0.0/8")],
  ["host:10.0.0.1", cidr("host", "10.0.0.1/32")],
  ["host:::1", cidr("host", "::1/128")],
  ["host:2001:DB8:0::/32", cidr("host", "2001:db8::/32")],
  ["host:::ffff:10.0.0.7", cidr("host", "10.0.0.7/32")],
  ["host:::ffff:10.0.0.0/104", cidr("host", "10.0.0.0/8")],
  ["host:010.0.0.1", glob("host", "010.0.0.1")],
  // ranges
  ["port:443", range("port", 443)],
  ["port:8000-8080", range("port", 8000, 8080)],
  ["port:0-65535", range("port", 0, 65535)],
  ["id:7", range("id", 7)],
  ["id:3-9", range("id", 3, 9)],
  ["rep:5", range("rep", 5)],
  ["rep:0x5B", range("rep", 91)],
  ["rep:1-0x08", range("rep", 1, 8)],
  // enums
  ["cmd:connect", cmd("connect")],
  ["CMD:Bind", cmd("bind")],
  ["v:4A", { kind: "enum", field: "v", value: "4a" }],
  ["status:OK", { kind: "enum", field: "status", value: "ok" }],
  ["status:interrupted", { kind: "enum", field: "status", value: "interrupted" }],
  ["proto:TLS", { kind: "enum", field: "proto", value: "tls" }],
  ["proto:none", { kind: "enum", field: "proto", value: null }],
  ["proto:unknown", { kind: "enum", field: "proto", value: null }],
  // globs
  ["user:alice", glob("user", "alice")],
  ["sni:*.example.com", glob("sni", "*.example.com")],
  ["reason:client-*", glob("reason", "client-*")],
  ["user:10.0.0.1", glob("user", "10.0.0.1")],
  // client
  ["client:192.168.0.0/16", cidr("client", "192.168.0.0/16")],
  ["client:::1", cidr("client", "::1/128")],
  // tags
  ["tag:blocked", tag("blocked")],
  ["tag:*", tag("*")],
  ["tag:env=prod*", tag("env", "prod*")],
  ["tag:env=", tag("env", "")],
  ["tag:a=b=c", tag("a", "b=c")],
  ['tag:note="a b"', tag("note", "a b")],
  // comparisons and units
  ["bytes>10k", cmp("bytes", ">", 10240)],
  ["BYTES>1K", cmp("bytes", ">", 1024)],
  ["bytes=0", cmp("bytes", "=", 0)],
  ["bytes<=512b", cmp("bytes", "<=", 512)],
  ["up>=1.5m", cmp("up", ">=", 1.5 * 1024 ** 2)],
  ["up>2mb", cmp("up", ">", 2 * 1024 ** 2)],
  ["down<2gb", cmp("down", "<", 2 * 1024 ** 3)],
  ["down<1g", cmp("down", "<", 1024 ** 3)],
  ["bytes>3kb", cmp("bytes", ">", 3072)],
  ["dur>2s", cmp("dur", ">", 2000)],
  ["dur<500ms", cmp("dur", "<", 500)],
  ["dur>=5m", cmp("dur", ">=", 300_000)],
  ["dur=1h", cmp("dur", "=", 3_600_000)],
  ["dur>3", cmp("dur", ">", 3000)],
  ["dur>0.5", cmp("dur", ">", 500)],
  // the CLI's grammar (format/quantities.ts): KiB spellings, units in any case
  ["bytes>64KiB", cmp("bytes", ">", 65536)],
  ["up<1.5mib", cmp("up", "<", 1.5 * 1024 ** 2)],
  ["down>=1t", cmp("down", ">=", 1024 ** 4)],
  ["dur>15S", cmp("dur", ">", 15_000)],
  ["dur<500MS", cmp("dur", "<", 500)],
  // payload expressions
  ['~"GET /"', re("GET /")],
  ['~i"user-agent"', re("user-agent", "i")],
  ['~ms"^a.b$"', re("^a.b$", "ms")],
  ["~^SSH-", re("^SSH-")],
  ["~ifoo", re("ifoo")],
  ["~(a|b)c", re("(a|b)c")],
  ["~[)|]x", re("[)|]x")],
  ["~a\\)b", re("a\\)b")],
  ["(~abc)", re("abc")],
  ['~"a\\"b"', re('a\\"b')],
  ['~"a\\\\"', re("a\\\\")],
  ['~"\\x00\\xff"', re("\\x00\\xff")],
  ['~""', re("")],
  // bare words and quoting
  ["example", word("example")],
  ['"foo bar"', word("foo bar")],
  ["a=b", word("a=b")],
  ["::1", word("::1")],
  ["fe80::1", word("fe80::1")],
  ["foo!bar", word("foo!bar")],
  ['user:"a b"', glob("user", "a b")],
  ['user:"a\\"b"', glob("user", 'a"b')],
  ['user:"a\\\\b"', glob("user", "a\\b")],
  ['user:"a\\xb"', glob("user", "a\\xb")],
  ["user:a\\b", glob("user", "a\\b")],
  ['user:x"y z"w', glob("user", "xy zw")],
  ['user:"(a|b)&c"', glob("user", "(a|b)&c")],
  ['"http://x"', word("http://x")],
  // precedence
  ["a b | c", or(and(word("a"), word("b")), word("c"))],
  ["a | b c", or(word("a"), and(word("b"), word("c")))],
  ["a b c", and(word("a"), word("b"), word("c"))],
  ["a | b | c", or(word("a"), word("b"), word("c"))],
  ["!a b", and(not(word("a")), word("b"))],
  ["! a", not(word("a"))],
  ["!!a", not(not(word("a")))],
  ["!(a | b) c", and(not(or(word("a"), word("b"))), word("c"))],
  ["(a | b) c", and(or(word("a"), word("b")), word("c"))],
  ["a & b", and(word("a"), word("b"))],
  ["a&b|c", or(and(word("a"), word("b")), word("c"))],
  ["(a)(b)", and(word("a"), word("b"))],
  ["( a )", word("a")],
  ["((a b))", and(word("a"), word("b"))],
  ["a (b | c)", and(word("a"), or(word("b"), word("c")))],
  ["(a b) c", and(and(word("a"), word("b")), word("c"))],
  // alternatives rule
  ["cmd:connect|bind|udp", or(cmd("connect"), cmd("bind"), cmd("udp"))],
  ["port:80|443|8000-8080", or(range("port", 80), range("port", 443), range("port", 8000, 8080))],
  ["host:a|b", or(glob("host", "a"), glob("host", "b"))],
  ["host:a|10.0.0.0/8", or(glob("host", "a"), cidr("host", "10.0.0.0/8"))],
  ['host:a|"b c"', or(glob("host", "a"), glob("host", "b c"))],
  ["cmd:bind|host:x", or(cmd("bind"), glob("host", "x"))],
  ["cmd:bind|HOST:x", or(cmd("bind"), glob("host", "x"))],
  ["cmd:bind | connect", or(cmd("bind"), word("connect"))],
  ["cmd:bind| connect", or(cmd("bind"), word("connect"))],
  ["host:a|!b", or(glob("host", "a"), not(word("b")))],
  ["host:a|(b)", or(glob("host", "a"), word("b"))],
  ["host:a|~x", or(glob("host", "a"), re("x"))],
  ["host:a|bytes>1", or(glob("host", "a"), cmp("bytes", ">", 1))],
  ["host:a|bytes", or(glob("host", "a"), glob("host", "bytes"))],
  ["host:a|hots:b", or(glob("host", "a"), glob("host", "hots:b"))],
  ["tag:a=x|b", or(tag("a", "x"), tag("b"))],
  ["!cmd:connect|bind", not(or(cmd("connect"), cmd("bind")))],
  ["host:x cmd:connect|bind", and(glob("host", "x"), or(cmd("connect"), cmd("bind")))],
  ["~a|b", re("a|b")],
  ["~a|host:x", or(re("a"), glob("host", "x"))],
  ["~a|(b)", or(re("a"), word("b"))],
  ["~(a|host:x)", re("(a|host:x)")],
  ["~a&b", and(re("a"), word("b"))],
  // TLS interception: the bare keyword, its states, alpn
  ["tls", tls()],
  ["TLS", tls()],
  ["!tls", not(tls())],
  ["(tls)", tls()],
  ["tls&cmd:connect", and(tls(), cmd("connect"))],
  ['"tls"', word("tls")],
  ["tlsx", word("tlsx")],
  ["tls.example", word("tls.example")],
  ["host:tls", glob("host", "tls")],
  ["cmd:bind|tls", or(cmd("bind"), tls())],
  ["host:a|tls:failed", or(glob("host", "a"), tls("failed"))],
  ["tls:intercepted", tls("intercepted")],
  ["TLS:Passthrough|failed", or(tls("passthrough"), tls("failed"))],
  ["alpn:h2", alpn("h2")],
  ["alpn:http/1.*|h2", or(alpn("http/1.*"), alpn("h2"))],
  ["tls alpn:h2 sni:*.example.com", and(tls(), alpn("h2"), glob("sni", "*.example.com"))],
  // Upstream routes: a glob on the hops, or direct
  ["via:direct", via(null)],
  ["VIA:Direct", via(null)],
  ["via:socks5h://*", via("socks5h://*")],
  ["via:10.0.0.2:1080", via("10.0.0.2:1080")],
  ["via:[2001:db8::1]:1080", via("[2001:db8::1]:1080")],
  ["via:*corp*|direct", or(via("*corp*"), via(null))],
  ["!via:direct via:http://*", and(not(via(null)), via("http://*"))],
  ['via:"direct proxy"', via("direct proxy")],
];

describe("parseFilter", () => {
  it.each(PARSES)("%j", (text, tree) => {
    expect(parseFilter(text)).toEqual(tree);
  });

  it.each(PARSES)("formats %j back to a filter that parses to the same tree", (text) => {
    const tree = parseFilter(text);
    expect(parseFilter(formatFilter(tree))).toEqual(tree);
  });
});

/** [filter text, code, column, message] */
const ERRORS: readonly (readonly [string, FilterErrorCode, number, string])[] = [
  ["hots:x", "UNKNOWN_FIELD", 1, "unknown field 'hots' — did you mean 'host'?"],
  ["port:80 hots:x", "UNKNOWN_FIELD", 9, "unknown field 'hots' — did you mean 'host'?"],
  ["stauts:ok", "UNKNOWN_FIELD", 1, "unknown field 'stauts' — did you mean 'status'?"],
  [
    "http://example.com",
    "UNKNOWN_FIELD",
    1,
    "unknown field 'http' — fields are host, port, cmd, v, status, proto, rep, reason, id, user, sni, client, tag, tls, alpn, via, stage (quote a word that contains ':')",
  ],
  ["bytes:5", "UNKNOWN_FIELD", 1, "'bytes' is compared, not matched: write bytes>N, bytes<=N, bytes=N, …"],
  ["byte>5", "UNKNOWN_FIELD", 1, "unknown comparison 'byte' — did you mean 'bytes'?"],
  ["x size<5", "UNKNOWN_FIELD", 3, "unknown comparison 'size' — use bytes, up, down or dur"],
  ["port:", "EXPECTED_VALUE", 6, "expected a value after 'port:'"],
  ["port: 80", "EXPECTED_VALUE", 6, "expected a value after 'port:'"],
  ["(host:)", "EXPECTED_VALUE", 7, "expected a value after 'host:'"],
  ['user:""', "EXPECTED_VALUE", 6, "expected a value after 'user:'"],
  ['cmd:bind|""', "EXPECTED_VALUE", 10, "expected a value after '|'"],
  ["tag:=x", "EXPECTED_VALUE", 5, "expected a tag name after 'tag:'"],
  ["bytes>", "EXPECTED_VALUE", 7, "expected a size after 'bytes>'"],
  ["dur<= x", "EXPECTED_VALUE", 6, "expected a duration after 'dur<='"],
  ["~", "EXPECTED_VALUE", 2, "expected a regular expression after '~'"],
  ["a ~ b", "EXPECTED_VALUE", 4, "expected a regular expression after '~'"],
  ['""', "EXPECTED_VALUE", 1, "empty quoted word"],
  ["status:opne", "BAD_VALUE", 8, "status must be one of open, ok, denied, failed, interrupted — did you mean 'open'?"],
  ["cmd:connect|bnd", "BAD_VALUE", 13, "cmd must be one of connect, bind, udp — did you mean 'bind'?"],
  ["v:6", "BAD_VALUE", 3, "v must be one of 4, 4a, 5"],
  ["proto:ftp", "BAD_VALUE", 7, "proto must be one of tls, http, http2, ssh, none — did you mean 'http'?"],
  ["tls:yes", "BAD_VALUE", 5, "tls must be one of intercepted, passthrough, failed"],
  ["a tls:intercepted|fail", "BAD_VALUE", 19, "tls must be one of intercepted, passthrough, failed — did you mean 'failed'?"],
  ["tls:", "EXPECTED_VALUE", 5, "expected a value after 'tls:'"],
  ["alpn: h2", "EXPECTED_VALUE", 6, "expected a value after 'alpn:'"],
  ["via:", "EXPECTED_VALUE", 5, "expected a value after 'via:'"],
  ["vai:direct", "UNKNOWN_FIELD", 1, "unknown field 'vai' — did you mean 'via'?"],
  ["a via:socks5://alice:pw@10.0.0.2:1080", "BAD_VALUE", 24, "routes are recorded without credentials: write via:scheme://host:port or via:host:port"],
  ["tls(", "EXPECTED_OPERATOR", 4, "expected a space or an operator before '('"],
  ["alpm:h2", "UNKNOWN_FIELD", 1, "unknown field 'alpm' — did you mean 'alpn'?"],
  ["port:70000", "BAD_VALUE", 6, "port must be a number 0-65535 or a range N-M"],
  ["port:http", "BAD_VALUE", 6, "port must be a number 0-65535 or a range N-M"],
  ["port:1-2-3", "BAD_VALUE", 6, "port must be a number 0-65535 or a range N-M"],
  ["port:1-", "BAD_VALUE", 6, "port must be a number 0-65535 or a range N-M"],
  ["port:0x50", "BAD_VALUE", 6, "port must be a number 0-65535 or a range N-M"],
  ["port:90-80", "BAD_VALUE", 6, "port range 90-80 is backwards"],
  ["rep:256", "BAD_VALUE", 5, "rep must be a reply code 0-255 (decimal or 0x hex) or a range N-M"],
  ["rep:0xzz", "BAD_VALUE", 5, "rep must be a reply code 0-255 (decimal or 0x hex) or a range N-M"],
  ["id:first", "BAD_VALUE", 4, "id must be a session id or a range N-M"],
  ["client:example.com", "BAD_VALUE", 8, "client must be an IP address or a CIDR range such as 10.0.0.0/8"],
  ["host:10.0.0.0/33", "BAD_VALUE", 6, "'33' is not a prefix length for IPv4 (0-32)"],
  ["client:::1/abc", "BAD_VALUE", 8, "'abc' is not a prefix length for IPv6 (0-128)"],
  ["bytes>10q", "BAD_VALUE", 7, "bytes needs a size such as 65536, 64k, 1.5KiB, 10m, 1g (got '10q')"],
  ["up<-1", "BAD_VALUE", 4, "up needs a size such as 65536, 64k, 1.5KiB, 10m, 1g (got '-1')"],
  ["bytes==5", "BAD_VALUE", 7, "bytes needs a size such as 65536, 64k, 1.5KiB, 10m, 1g (got '=5')"],
  ["dur>=fast", "BAD_VALUE", 6, "dur needs a duration such as 500ms, 15s, 2m, 1h, 7d (got 'fast')"],
  ["dur>2w", "BAD_VALUE", 5, "dur needs a duration such as 500ms, 15s, 2m, 1h, 7d (got '2w')"],
  ["bytes>9999999999g", "BAD_VALUE", 7, "bytes: '9999999999g' is too large"],
  ["~(", "BAD_REGEX", 1, "bad regular expression: Unterminated group"],
  ['a ~"[b"', "BAD_REGEX", 3, "bad regular expression: Unterminated character class"],
  ['~x"a"', "BAD_REGEX", 2, "unknown regular expression flag 'x' (flags are i, m and s)"],
  ['~ig"a"', "BAD_REGEX", 3, "unknown regular expression flag 'g' (flags are i, m and s)"],
  ['~ii"a"', "BAD_REGEX", 3, "repeated regular expression flag 'i'"],
  ['~1"a"', "BAD_REGEX", 3, 'a quote inside an unquoted regular expression: quote all of it, as ~"…"'],
  ["a |", "EXPECTED_TERM", 4, "expected a term after '|'"],
  ["cmd:connect|", "EXPECTED_TERM", 13, "expected a term after '|'"],
  ["| a", "EXPECTED_TERM", 1, "expected a term before '|'"],
  ["& a", "EXPECTED_TERM", 1, "expected a term before '&'"],
  ["(| a)", "EXPECTED_TERM", 2, "expected a term before '|'"],
  ["a & & b", "EXPECTED_TERM", 5, "expected a term after '&'"],
  ["a || b", "EXPECTED_TERM", 4, "expected a term after '|'"],
  ["a | )", "EXPECTED_TERM", 5, "expected a term after '|'"],
  ["!", "EXPECTED_TERM", 2, "expected a term after '!'"],
  ["(!)", "EXPECTED_TERM", 3, "expected a term after '!'"],
  ["()", "EXPECTED_TERM", 2, "empty parentheses"],
  ["( )", "EXPECTED_TERM", 3, "empty parentheses"],
  ["(", "EXPECTED_TERM", 2, "expected a term after '('"],
  ["(port:80", "UNBALANCED", 1, "unclosed '('"],
  ["a (b (c)", "UNBALANCED", 3, "unclosed '('"],
  ["port:80)", "UNBALANCED", 8, "unbalanced ')'"],
  ["(a) b)", "UNBALANCED", 6, "unbalanced ')'"],
  [")", "UNBALANCED", 1, "unbalanced ')'"],
  ['user:"abc', "UNTERMINATED_QUOTE", 6, "unterminated quote"],
  ['~"abc\\"', "UNTERMINATED_QUOTE", 2, "unterminated quote"],
  ['"', "UNTERMINATED_QUOTE", 1, "unterminated quote"],
  ["host:a(b)", "EXPECTED_OPERATOR", 7, "expected a space or an operator before '('"],
  ['~"a"b', "EXPECTED_OPERATOR", 5, "expected a space or an operator before 'b'"],
  ["bytes>1k(", "EXPECTED_OPERATOR", 9, "expected a space or an operator before '('"],
];

describe("parseFilter errors", () => {
  it.each(ERRORS)("%j: %s at column %i", (text, code, column, message) => {
    let thrown: unknown;
    try {
      parseFilter(text);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(FilterError);
    const error = thrown as FilterError;
    expect({ code: error.code, column: error.column, message: error.message, filter: error.filter }).toEqual({ code, column, message, filter: text });
  });

  it("parses nesting up to 100 deep, and refuses more before the stack runs out", () => {
    expect(parseFilter(`${"!".repeat(99)}(a)`)).toBeDefined();
    for (const text of ["(".repeat(100_000), "!(".repeat(50_000), `${"!".repeat(101)}a`]) {
      expect(catchFilterError(text)).toMatchObject({ code: "TOO_DEEP", column: 101, message: "more than 100 nested '!' and '('" });
    }
  });

  it("formats an error as the filter, a caret under the column, and the message", () => {
    const error = catchFilterError("port:80 hots:x");
    const shown = "port:80 hots:x\n        ^\nunknown field 'hots' — did you mean 'host'?";
    expect(formatFilterError(error)).toBe(shown);
    expect(formatFilterError("port:80 hots:x", error)).toBe(shown);
  });

  it("puts the caret past the end when something is missing there, and shows tabs as spaces", () => {
    expect(formatFilterError(catchFilterError("a\t|"))).toBe("a |\n   ^\nexpected a term after '|'");
  });

  it("arbitrary text parses or throws a FilterError, and what parses formats back to the same tree and compiles", () => {
    const token = fc.constantFrom(
      ...'host: port: cmd: v: status: proto: rep: reason: id: user: sni: client: tag: tls: alpn: via: direct socks5h:// intercepted h2 bytes up down dur hots: x: > >= < <= = ! ( ) | & ~ ~i " \\ * ? - = / : 0 1 80 0x1f 10k 2s 10.0.0.0 ::1 connect ok tls none a B'.split(
        " ",
      ),
      " ",
      "  ",
      "\t",
    );
    const text = fc.oneof(
      fc.array(token, { maxLength: 12 }).map((t) => t.join("")),
      fc.string(),
      fc.string({ unit: "binary", maxLength: 20 }),
    );
    fc.assert(
      fc.property(text, (input) => {
        let tree: Filter;
        try {
          tree = parseFilter(input);
        } catch (err) {
          if (!(err instanceof FilterError)) throw err;
          expect(err.column).toBeGreaterThanOrEqual(1);
          expect(err.column).toBeLessThanOrEqual(input.length + 1);
          return;
        }
        expect(parseFilter(formatFilter(tree))).toEqual(tree);
        toSql(tree, { now: 0 });
        toPredicate(tree);
      }),
      { numRuns: 1500 },
    );
  });
});

describe("usesPayload", () => {
  it.each([
    ["", false],
    ["host:x port:80 | !bytes>1k", false],
    ["~GET", true],
    ["a (b | !~x)", true],
  ] as const)("%j → %s", (text, uses) => {
    expect(usesPayload(parseFilter(text))).toBe(uses);
  });
});

describe("formatFilter", () => {
  it.each([
    ["", ""],
    ["example", "host:*example*"],
    ["cmd:connect|bind", "cmd:connect | cmd:bind"],
    ["a b | c", "host:*a* host:*b* | host:*c*"],
    ["(a | b) c", "(host:*a* | host:*b*) host:*c*"],
    ["!(a b)", "!(host:*a* host:*b*)"],
    ['user:"a b" tag:k="x|y"', 'user:"a b" tag:"k=x|y"'],
    ["host:::ffff:10.0.0.1", "host:10.0.0.1/32"],
    ["proto:unknown rep:0x10-0x20", "proto:none rep:16-32"],
    ["bytes>10240 up<1.5k down=2048k dur>=7200s dur<1500ms dur=0", "bytes>10k up<1536 down=2m dur>=2h dur<1500ms dur=0ms"],
    ["bytes>0.0000001", "bytes>0.0000001"],
    ['~1\\"b ~i"x\\y"', '~"1\\"b" ~i"x\\y"'],
  ])("%j → %j", (text, canonical) => {
    expect(formatFilter(parseFilter(text))).toBe(canonical);
  });
});

/** Intercept filters: [filter text, tree]. */
const INTERCEPT_PARSES: readonly (readonly [string, Filter])[] = [
  ["stage:request", stage("request")],
  ["STAGE:Up", stage("up")],
  ["stage:down", stage("down")],
  ["stage:datagram", stage("datagram")],
  ["stage:up|down", or(stage("up"), stage("down"))],
  ["!stage:up", not(stage("up"))],
  ["host:example.com & stage:request", and(glob("host", "example.com"), stage("request"))],
  ["host:a|stage:up", or(glob("host", "a"), stage("up"))],
  ["stage:up|down>1k", or(stage("up"), cmp("down", ">", 1024))],
  ["stage:down ~HTTP tls", and(stage("down"), re("HTTP"), tls())],
  ['"stage:up"', word("stage:up")],
  ["host:stage", glob("host", "stage")],
  // Everything else parses as parseFilter parses it.
  ["port:443 sni:*.example.com", and(range("port", 443), glob("sni", "*.example.com"))],
  ["", { kind: "all" }],
];

describe("parseInterceptFilter", () => {
  it.each(INTERCEPT_PARSES)("%j", (text, tree) => {
    expect(parseInterceptFilter(text)).toEqual(tree);
  });

  it.each(INTERCEPT_PARSES)("formats %j back to a filter that parses to the same tree", (text) => {
    const tree = parseInterceptFilter(text);
    expect(parseInterceptFilter(formatFilter(tree))).toEqual(tree);
  });

  it("parses every stored-session filter to the same tree as parseFilter", () => {
    for (const [text, tree] of PARSES) expect(parseInterceptFilter(text)).toEqual(tree);
  });

  it("formats stage terms canonically", () => {
    expect(formatFilter(parseInterceptFilter("STAGE:Up|DOWN host:x"))).toBe("(stage:up | stage:down) host:x");
    expect(formatFilter(parseInterceptFilter("!(stage:request|datagram)"))).toBe("!(stage:request | stage:datagram)");
  });

  it("lists the stage terms in written order", () => {
    expect(stageTerms(parseInterceptFilter("host:x (stage:up | !stage:down) ~a"))).toEqual([stage("up"), stage("down")]);
    expect(stageTerms(parseInterceptFilter("host:x ~a"))).toEqual([]);
  });

  it.each([
    ["stage:requst", "BAD_VALUE", 7, "stage must be one of request, up, down, datagram — did you mean 'request'?"],
    ["host:x stage:dwon", "BAD_VALUE", 14, "stage must be one of request, up, down, datagram — did you mean 'down'?"],
    ["stage:up|datagrams", "BAD_VALUE", 10, "stage must be one of request, up, down, datagram — did you mean 'datagram'?"],
    ["stage:chunk", "BAD_VALUE", 7, "stage must be one of request, up, down, datagram"],
    ["stage:", "EXPECTED_VALUE", 7, "expected a value after 'stage:'"],
    ["stgae:up", "UNKNOWN_FIELD", 1, "unknown field 'stgae' — did you mean 'stage'?"],
  ] as const)("%j: %s at column %i", (text, code, column, message) => {
    const error = catchFilterError(text, parseInterceptFilter);
    expect({ code: error.code, column: error.column, message: error.message, filter: error.filter }).toEqual({ code, column, message, filter: text });
  });

  it("shows a bad stage with a caret under it", () => {
    expect(formatFilterError(catchFilterError("port:80 stage:requst", parseInterceptFilter))).toBe(
      "port:80 stage:requst\n              ^\nstage must be one of request, up, down, datagram — did you mean 'request'?",
    );
  });

  it("arbitrary text with stage terms parses or throws a FilterError, and what parses formats back to the same tree", () => {
    const token = fc.constantFrom(...'stage: request up down datagram dgram host: port: x tls ~ ! ( ) | & " 80 a'.split(" "), " ", "  ");
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 12 }).map((t) => t.join("")),
        (input) => {
          let tree: Filter;
          try {
            tree = parseInterceptFilter(input);
          } catch (err) {
            if (!(err instanceof FilterError)) throw err;
            expect(err.column).toBeGreaterThanOrEqual(1);
            expect(err.column).toBeLessThanOrEqual(input.length + 1);
            return;
          }
          expect(parseInterceptFilter(formatFilter(tree))).toEqual(tree);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("stage: in filters over stored sessions", () => {
  it.each([
    ["stage:up", 1],
    ["host:x stage:request", 8],
    ["host:x & !stage:up", 11],
    ["(a | stage:up|down) b", 6],
    // Refused where it is written, before its value is looked at.
    ["a stage:nonsense", 3],
  ])("parseFilter(%j) refuses it at column %i", (text, column) => {
    const error = catchFilterError(text);
    expect({ code: error.code, column: error.column, message: error.message, filter: error.filter }).toEqual({
      code: "INTERCEPT_ONLY",
      column,
      message: "stage: applies to --intercept filters only",
      filter: text,
    });
  });

  it("shows the refusal with a caret under the term", () => {
    expect(formatFilterError(catchFilterError("port:80 stage:up"))).toBe("port:80 stage:up\n        ^\nstage: applies to --intercept filters only");
  });

  it.each([
    ["stage:up", "stage:up", 1],
    ["host:x & stage:request", "host:x stage:request", 8],
    ["port:80 (a | !stage:up|down)", "port:80 (host:*a* | !(stage:up | stage:down))", 23],
    // The first `stage:` in the text is a user name: the caret goes to the term.
    ['user:"stage:up" | tag:x stage:down', "user:stage:up | tag:x stage:down", 23],
  ])("toSql and toPredicate refuse the intercept tree of %j, the caret in its canonical text %j at column %i", (text, canonical, column) => {
    const tree = parseInterceptFilter(text);
    for (const compile of [() => toSql(tree, { now: 0 }), () => toPredicate(tree)]) {
      let thrown: unknown;
      try {
        compile();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(FilterError);
      const error = thrown as FilterError;
      expect({ code: error.code, column: error.column, message: error.message, filter: error.filter }).toEqual({
        code: "INTERCEPT_ONLY",
        column,
        message: "stage: applies to --intercept filters only",
        filter: canonical,
      });
      expect(canonical.slice(column - 1)).toMatch(/^stage:/);
    }
  });

  it("compiles intercept trees without stage terms as any other filter", () => {
    const tree = parseInterceptFilter("host:x ~a");
    expect(toSql(tree, { now: 0 }).where).toContain("filter_glob");
    expect(toPredicate(tree)).toBeTypeOf("function");
  });
});

function catchFilterError(text: string, parse: (text: string) => Filter = parseFilter): FilterError {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof FilterError) return err;
    throw err;
  }
  throw new Error(`${text} parsed`);
}
