// toSql and toPredicate must select the same sessions: a table of examples, then properties over
// generated sessions, payloads and filters.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Filter, Term } from "../../src/filter/ast.js";
import { FilterError, formatFilter, parseFilter, toPredicate, toSql } from "../../src/filter/index.js";
import type { SessionRow } from "../../src/store/schema.js";
import { BASE, NOW, bytes, captureDb, predicateIds, sessionRow, sqlIds, tlsRow, type Payload, type Session } from "./fixtures.js";
import type { TlsRow } from "../../src/store/schema.js";

const payload = (data: string, sent: string | null = null): Payload => ({ data: bytes(data), sent: sent === null ? null : bytes(sent) });
const session = (id: number, row: Partial<SessionRow>, chunks: Payload[] = [], datagrams: Payload[] = [], tls?: Partial<TlsRow>): Session => ({
  row: sessionRow(id, row),
  chunks,
  datagrams,
  ...(tls === undefined ? {} : { tls: tlsRow(id, tls) }),
});

// Defaults (sessionRow): v5 CONNECT example.com:443 → remote 93.184.216.34, client 127.0.0.1,
// ok, reply 0, open 1 s, no bytes, no user/sni/protocol, tags {}.
const SESSIONS: readonly Session[] = [
  session(
    1,
    {
      sni: "example.com",
      protocol: "tls",
      protocol_info: '{"alpn":["h2","http/1.1"]}',
      bytes_up_received: 500,
      bytes_down_received: 20_000,
      tags: '{"env":"prod"}',
    },
    [payload("\x16\x03\x01\x02\x00")],
  ),
  session(
    2,
    {
      requested_host: "api.example.com",
      requested_port: 8080,
      target_host: "10.0.0.5",
      target_port: 8080,
      remote_host: "10.0.0.5",
      protocol: "http",
      sni: "api.example.com",
      user: "alice",
      bytes_up_received: 1024,
      bytes_down_received: 1024,
      closed_at: BASE + 3000,
      tags: '{"env":"dev","team":"red"}',
    },
    [payload("GET /index.html HTTP/1.1\r\nUser-Agent: curl/8.0\r\n")],
  ),
  session(3, {
    version: "4",
    requested_type: "ipv4",
    requested_host: "203.0.113.9",
    requested_port: 25,
    target_host: null,
    target_port: null,
    remote_host: null,
    remote_port: null,
    reply: 91,
    status: "denied",
    close_reason: "denied",
    closed_at: BASE,
    user: "bob",
    client_host: "10.1.2.3",
  }),
  session(4, {
    version: "4a",
    requested_host: "nowhere.invalid",
    requested_port: 80,
    target_host: "nowhere.invalid",
    target_port: 80,
    remote_host: null,
    reply: 4,
    status: "failed",
    close_reason: "upstream-error",
    errno: "ENOTFOUND",
    closed_at: BASE + 250,
  }),
  session(
    5,
    {
      command: "udp",
      requested_type: "ipv6",
      requested_host: "::",
      requested_port: 0,
      target_host: null,
      target_port: null,
      remote_host: null,
      remote_port: null,
      status: "open",
      close_reason: null,
      opened_at: BASE + 10_000,
      closed_at: null,
      client_host: "::1",
      tags: '{"blocked":"yes"}',
      bytes_up_received: 40,
      bytes_down_received: 60,
    },
    [],
    [payload("\x00\x01query example", "DNS")],
  ),
  session(
    6,
    {
      requested_host: "git.example.org",
      requested_port: 22,
      target_host: "git.example.org",
      target_port: 22,
      remote_host: "2001:db8::22",
      protocol: "ssh",
      status: "interrupted",
      close_reason: "interrupted",
      closed_at: null,
      bytes_up_received: 2000,
      bytes_down_received: 3000,
    },
    [payload("SSH-2.0-OpenSSH_9.6\r\n")],
  ),
  session(7, {
    command: "bind",
    requested_type: "ipv4",
    requested_host: "192.168.1.20",
    requested_port: 0,
    target_host: "192.168.1.20",
    target_port: 0,
    remote_host: "192.168.1.20",
    bytes_down_received: 3 * 1024 ** 2,
    closed_at: BASE + 120_000,
  }),
  session(
    8,
    {
      client_host: "::ffff:192.168.1.7",
      requested_host: "LOCALHOST",
      target_host: "127.0.0.1",
      remote_host: "::ffff:127.0.0.1",
      requested_port: 80,
      target_port: 80,
      tags: "not json",
    },
    [payload("hello", "HELLO")],
  ),
];

// TLS interception: intercepted h2 (the sniffer saw the plaintext preface: no sessions.sni), a
// passthrough (the sniffer read the ClientHello), an upstream failure, an intercepted session
// where nothing negotiated ALPN though the client offered some; with the sessions above, which
// have no tls row (session 1's ClientHello was only sniffed).
const TLS_SESSIONS: readonly Session[] = [
  ...SESSIONS,
  session(9, { requested_host: "secure.example.net", target_host: "secure.example.net", protocol: "http2" }, [payload("PRI * HTTP/2.0")], [], {
    sni: "secure.example.net",
    alpn_offered: '["h2","http/1.1"]',
    client_alpn: "h2",
    upstream_alpn: "h2",
  }),
  session(10, { protocol: "tls", sni: "pinned.example.net", protocol_info: '{"alpn":["h2","http/1.1"]}' }, [payload("\x16\x03\x01")], [], {
    intercepted: 0,
    decided_by: "auto-passthrough",
    sni: "pinned.example.net",
    alpn_offered: '["h2","http/1.1"]',
    client_version: null,
    client_cipher: null,
    upstream_version: null,
    upstream_cipher: null,
  }),
  session(11, { status: "failed", close_reason: "tls-failed" }, [], [], {
    sni: "expired.example.net",
    alpn_offered: '["http/1.1"]',
    client_version: null,
    client_cipher: null,
    upstream_version: null,
    upstream_cipher: null,
    failure_side: "upstream",
    failure_code: "upstream-certificate",
    failure_message: "certificate has expired",
  }),
  session(12, { protocol: "http", sni: "plain.example.net" }, [payload("GET / HTTP/1.1")], [], { sni: null, alpn_offered: '["h2"]' }),
];

/** [filter, ids it selects from SESSIONS] */
const EXAMPLES: readonly (readonly [string, readonly number[]])[] = [
  ["", [1, 2, 3, 4, 5, 6, 7, 8]],
  ["host:*.example.com", [2]],
  ["example", [1, 2, 6]],
  ["host:localhost", [8]],
  ["host:10.0.0.0/8", [2]],
  ["host:127.0.0.1", [8]],
  ["host:2001:db8::/32", [6]],
  ["host:::/0", [5, 6]],
  ["client:10.0.0.0/8", [3]],
  ["client:192.168.0.0/16", [8]],
  ["client:::1", [5]],
  ["port:443", [1]],
  ["port:0-100", [3, 4, 5, 6, 7, 8]],
  ["port:80|8080", [2, 4, 8]],
  ["cmd:connect", [1, 2, 3, 4, 6, 8]],
  ["cmd:bind|udp", [5, 7]],
  ["v:4|4a", [3, 4]],
  ["status:ok", [1, 2, 7, 8]],
  ["status:open|interrupted", [5, 6]],
  ["!status:ok", [3, 4, 5, 6]],
  ["proto:tls|ssh", [1, 6]],
  ["proto:none", [3, 4, 5, 7, 8]],
  ["rep:0", [1, 2, 5, 6, 7, 8]],
  ["rep:0x5b", [3]],
  ["rep:1-8", [4]],
  ["reason:*error", [4]],
  ["user:ALICE", [2]],
  ["user:*", [2, 3]],
  ["!user:*", [1, 4, 5, 6, 7, 8]],
  ["sni:*example.com", [1, 2]],
  ["tag:env", [1, 2]],
  ["tag:env=prod", [1]],
  ["tag:*=red", [2]],
  ["tag:*", [1, 2, 5]],
  ["!tag:*", [3, 4, 6, 7, 8]],
  ["id:2-4", [2, 3, 4]],
  ["id:8|1", [1, 8]],
  ["bytes>10k", [1, 7]],
  ["bytes=2k", [2]],
  ["bytes<=0", [3, 4, 8]],
  ["up>=1k", [2, 6]],
  ["down>2m", [7]],
  ["dur>2s", [2, 5, 6, 7]],
  ["dur<500ms", [3, 4]],
  ["dur=1s", [1, 8]],
  ["dur>=15s", [6, 7]],
  ["~GET", [2]],
  ['~i"user-agent: curl"', [2]],
  ['~"GET.*curl"', []],
  ['~s"GET.*curl"', [2]],
  ['~"^SSH-"', [6]],
  ['~"\\x16\\x03"', [1]],
  ['~"^\\x00\\x01"', [5]],
  ["~DNS", [5]],
  ["~HELLO", [8]],
  ["~hello", [8]],
  ["!~GET", [1, 3, 4, 5, 6, 7, 8]],
  ["cmd:connect status:ok | cmd:udp", [1, 2, 5, 8]],
  ["cmd:connect (status:ok | status:open)", [1, 2, 8]],
  ["!(status:ok | status:denied) port:0-100", [4, 5, 6]],
];

/** [filter, ids it selects from TLS_SESSIONS] */
const TLS_EXAMPLES: readonly (readonly [string, readonly number[]])[] = [
  ["", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]],
  ["tls", [9, 10, 11, 12]],
  ["!tls", [1, 2, 3, 4, 5, 6, 7, 8]],
  ["tls:intercepted", [9, 12]],
  ["tls:passthrough", [10]],
  ["tls:failed", [11]],
  ["tls:passthrough|failed", [10, 11]],
  ["tls !tls:failed", [9, 10, 12]],
  ["sni:secure.*", [9]],
  ["sni:*.example.net", [9, 10, 11, 12]],
  ["sni:plain.*", [12]],
  ["alpn:h2", [1, 9, 10]],
  ["alpn:http/1.*", [1, 10, 11]],
  ["alpn:*", [1, 9, 10, 11]],
  ["!alpn:*", [2, 3, 4, 5, 6, 7, 8, 12]],
  ["proto:tls", [1, 10]],
];

// Upstream routes: direct, two hops, one HTTP hop, an IPv6 hop; and crafted columns (an empty
// list and text that is not JSON are direct; a non-string item is skipped).
const ROUTE_SESSIONS: readonly Session[] = [
  session(1, { route: null }),
  session(2, { route: '["socks5h://10.0.0.2:1080","http://proxy.corp:3128"]' }),
  session(3, { route: '["http://Proxy.Corp:8080"]' }),
  session(4, { route: '["socks4a://[2001:db8::1]:1080"]' }),
  session(5, { route: "[]" }),
  session(6, { route: "not json" }),
  session(7, { route: '[5,"socks5://10.0.0.3:1080"]' }),
];

const ROUTE_EXAMPLES: readonly (readonly [string, readonly number[]])[] = [
  ["via:direct", [1, 5, 6]],
  ["!via:direct", [2, 3, 4, 7]],
  ["via:*", [2, 3, 4, 7]],
  ["via:*corp*", [2, 3]],
  ["via:socks5h://*", [2]],
  ["via:socks5*", [2, 7]],
  ["via:http://*", [2, 3]],
  ["via:10.0.0.2:1080", [2]],
  ["via:10.0.0.2", [2]],
  ["via:10.0.0.2:3128", []],
  ["via:proxy.corp:3128", [2]],
  ["via:PROXY.corp", [2, 3]],
  ["via:*:1080", [2, 4, 7]],
  ["via:[2001:db8::1]:1080", [4]],
  ["via:2001:db8::1", [4]],
  ["via:*corp* via:socks5h://*", [2]],
  ["via:direct|*corp*", [1, 2, 3, 5, 6]],
  ["via:10.0.0.3:1080 | via:direct status:ok", [1, 5, 6, 7]],
];

describe("SQL and predicate on example sessions", () => {
  const db = captureDb(SESSIONS);
  const tlsDb = captureDb(TLS_SESSIONS);
  const routeDb = captureDb(ROUTE_SESSIONS);

  it.each(ROUTE_EXAMPLES)("with routes: %j selects %j", (text, ids) => {
    const filter = parseFilter(text);
    expect(sqlIds(routeDb, filter)).toEqual(ids);
    expect(predicateIds(ROUTE_SESSIONS, filter)).toEqual(ids);
  });

  it.each(EXAMPLES)("%j selects %j", (text, ids) => {
    const filter = parseFilter(text);
    expect(sqlIds(db, filter)).toEqual(ids);
    expect(predicateIds(SESSIONS, filter)).toEqual(ids);
  });

  it.each(TLS_EXAMPLES)("with TLS rows: %j selects %j", (text, ids) => {
    const filter = parseFilter(text);
    expect(sqlIds(tlsDb, filter)).toEqual(ids);
    expect(predicateIds(TLS_SESSIONS, filter)).toEqual(ids);
  });

  it("treats tls, alpn: and sni: as having no tls row in the predicate when no tls lookup is given", () => {
    const secure = TLS_SESSIONS[8]!.row;
    expect(toPredicate(parseFilter("tls"))(secure, { now: NOW })).toBe(false);
    expect(toPredicate(parseFilter("sni:secure.*"))(secure, { now: NOW })).toBe(false);
    const passthrough = TLS_SESSIONS[9]!.row;
    // Without a row, alpn: reads the sniffer's ClientHello facts.
    expect(toPredicate(parseFilter("alpn:h2"))(passthrough, { now: NOW })).toBe(true);
  });

  it("qualifies columns with the table alias", () => {
    const filter = parseFilter("dur>2s ~GET | host:*.org");
    expect(sqlIds(db, filter, "s")).toEqual([2, 6]);
  });

  it("can be combined with the caller's own conditions", () => {
    const { where, params } = toSql(parseFilter("status:ok | status:open"), { now: NOW });
    const rows = db.prepare(`SELECT id FROM sessions WHERE ${where} AND id > ? ORDER BY id`).all(...params, 2) as { id: number }[];
    expect(rows.map((r) => r.id)).toEqual([5, 7, 8]);
  });

  it("puts now in params, not in the SQL text", () => {
    const a = toSql(parseFilter("dur>2s"), { now: 1 });
    const b = toSql(parseFilter("dur>2s"), { now: 2 });
    expect(a.where).toBe(b.where);
    expect(a.params).toEqual([1, 2000]);
  });

  it("runs a filter of thousands of alternatives (SQLite limits expression depth to 1000)", () => {
    const ports = Array.from({ length: 3000 }, (_, i) => String(i + 1000)).join("|");
    const filter = parseFilter(`port:22|${ports} (a | b | c | d | e | f | g | h | i | j | k)`);
    expect(sqlIds(db, filter)).toEqual([6]);
    expect(predicateIds(SESSIONS, filter)).toEqual([6]);
  });

  it("rejects a table that is not a plain name", () => {
    expect(() => toSql(parseFilter("a"), { table: "s; DROP TABLE sessions" })).toThrow(TypeError);
  });

  it("treats ~ as false in the predicate when no payloads are given", () => {
    const row = SESSIONS[1]!.row;
    expect(toPredicate(parseFilter("~GET"))(row, { now: NOW })).toBe(false);
    expect(toPredicate(parseFilter("!~GET"))(row, { now: NOW })).toBe(true);
  });

  it("measures open sessions to the now it is given", () => {
    const open = SESSIONS[4]!.row; // opened 10 s before NOW
    const longerThan = toPredicate(parseFilter("dur>15s"));
    expect(longerThan(open, { now: NOW })).toBe(false);
    expect(longerThan(open, { now: NOW + 10_000 })).toBe(true);
  });
});

// Values are drawn from small pools, the same pools for sessions and filters, so that terms
// match some sessions and not others.
const HOSTS = [
  "example.com",
  "API.Example.com",
  "www.example.org",
  "localhost",
  "10.0.0.1",
  "10.1.2.3",
  "192.168.1.5",
  "::1",
  "::",
  "2001:db8::5",
  "::ffff:10.0.0.7",
  "fe80::1%eth0",
  'a b"c',
  "",
] as const;
const GLOBS = [
  "*",
  "*.example.com",
  "*EXAMPLE*",
  "example.com",
  "api.*",
  "?::1",
  "10.*",
  "*10.0.0.1*",
  "localhost",
  'a b"c',
  "alice",
  "ALICE",
  "b*",
  "client-*",
  "completed",
  "*e?",
];
const CIDRS = ["10.0.0.0/8", "10.0.0.1/32", "10.0.0.7/32", "192.168.0.0/16", "::1/128", "2001:db8::/32", "fe80::/10", "0.0.0.0/0", "::/0"];
const PATTERNS = ["GET", "^SSH-", "\\x00", "[\\x80-\\xff]", "HTTP/1\\.1", "a|b", "^$", "user-agent", "\\r\\n", "\\xe9", "."];
const SIZES = [0, 0.5, 1, 1023, 1024, 1536, 10_240, 2 * 1024 ** 2];
const TIMES = [0, 250, 500, 1000, 1500, 2000, 60_000];

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null });
const bytesArb = fc.oneof(
  fc.constantFrom("GET / HTTP/1.1\r\nUser-Agent: curl", "SSH-2.0-OpenSSH", "\x16\x03\x01", "", "hello", "\xe9t\xe9", "a").map(bytes),
  fc.uint8Array({ maxLength: 8 }),
);
const payloadArb: fc.Arbitrary<Payload> = fc.record({ data: bytesArb, sent: maybe(bytesArb) });
const tagsArb = fc.oneof(
  fc.dictionary(fc.constantFrom("env", "Env", "blocked", "note", "n"), fc.constantFrom("prod", "PROD", "dev", "", "a=b")).map((t) => JSON.stringify(t)),
  fc.constantFrom("{}", "not json", '["x"]', '{"n":5}', '{"env":null}'),
);

const tlsArb = fc.record({
  intercepted: fc.constantFrom(0, 1),
  sni: maybe(fc.constantFrom("example.com", "API.example.com", "tls.example.org")),
  alpn_offered: fc.constantFrom("[]", '["h2","http/1.1"]', '["http/1.1"]', "not json", '[5,"h2"]'),
  finished: fc.constantFrom("none", "client", "both"),
  client_alpn: maybe(fc.constantFrom("h2", "http/1.1")),
  upstream_alpn: maybe(fc.constantFrom("h2", "http/1.1", "spdy/3")),
  failure_code: maybe(fc.constantFrom("upstream-certificate", "client-rejected-certificate")),
});

const sessionArb = fc.record({
  opened: fc.integer({ min: 0, max: 20_000 }),
  fraction: fc.constantFrom(0, 0.25),
  closedAfter: maybe(fc.constantFrom(...TIMES, 1, 999, 2001)),
  client_host: fc.constantFrom("127.0.0.1", "10.0.0.9", "::1", "::ffff:192.168.1.1", "2001:db8::1", "192.168.7.7"),
  version: fc.constantFrom(null, "4", "4a", "5"),
  command: fc.constantFrom(null, "connect", "bind", "udp"),
  user: maybe(fc.constantFrom("alice", "Alice", "bob", "")),
  requested_host: maybe(fc.constantFrom(...HOSTS)),
  requested_port: maybe(fc.constantFrom(0, 22, 80, 443, 1080, 65535)),
  target_host: maybe(fc.constantFrom(...HOSTS)),
  target_port: maybe(fc.constantFrom(0, 80, 443, 8080)),
  remote_host: maybe(fc.constantFrom("10.0.0.1", "93.184.216.34", "::1", "2001:db8::5", "::ffff:10.0.0.7")),
  reply: maybe(fc.constantFrom(0, 1, 2, 4, 5, 8, 91, 255)),
  status: fc.constantFrom("open", "ok", "denied", "failed", "interrupted"),
  close_reason: maybe(fc.constantFrom("completed", "client-reset", "Upstream-Error", "interrupted")),
  protocol: maybe(fc.constantFrom("tls", "http", "ssh")),
  sni: maybe(fc.constantFrom("example.com", "API.example.com", 'x "y"')),
  protocol_info: maybe(fc.constantFrom('{"alpn":["h2","http/1.1"]}', '{"alpn":[]}', "not json", '{"method":"GET"}')),
  tls: maybe(tlsArb),
  route: maybe(
    fc.constantFrom(
      '["socks5h://10.0.0.2:1080","http://proxy.corp:3128"]',
      '["http://Proxy.Corp:8080"]',
      '["socks4a://[2001:db8::1]:1080"]',
      "[]",
      "not json",
      '[5,"socks5://10.0.0.3:1080"]',
    ),
  ),
  up: fc.constantFrom(...SIZES.filter(Number.isInteger), 1025, 10_241),
  down: fc.constantFrom(...SIZES.filter(Number.isInteger), 3 * 1024 ** 2),
  tags: tagsArb,
  chunks: fc.array(payloadArb, { maxLength: 3 }),
  datagrams: fc.array(payloadArb, { maxLength: 2 }),
});

const sessionsArb: fc.Arbitrary<Session[]> = fc.array(sessionArb, { minLength: 1, maxLength: 10 }).map((drawn) =>
  drawn.map((d, i) => {
    const opened_at = BASE + d.opened + d.fraction;
    return {
      row: sessionRow(i + 1, {
        opened_at,
        closed_at: d.closedAfter === null ? null : opened_at + d.closedAfter,
        client_host: d.client_host,
        version: d.version,
        command: d.command,
        user: d.user,
        requested_host: d.requested_host,
        requested_port: d.requested_port,
        target_host: d.target_host,
        target_port: d.target_port,
        remote_host: d.remote_host,
        reply: d.reply,
        status: d.status,
        close_reason: d.close_reason,
        protocol: d.protocol,
        sni: d.sni,
        protocol_info: d.protocol_info,
        bytes_up_received: d.up,
        bytes_down_received: d.down,
        tags: d.tags,
        route: d.route,
      }),
      chunks: d.chunks,
      datagrams: d.datagrams,
      ...(d.tls === null
        ? {}
        : {
            tls: tlsRow(i + 1, {
              intercepted: d.tls.intercepted,
              sni: d.tls.sni,
              alpn_offered: d.tls.alpn_offered,
              client_version: d.tls.finished === "none" ? null : "TLSv1.3",
              upstream_version: d.tls.finished === "both" ? "TLSv1.2" : null,
              client_alpn: d.tls.client_alpn,
              upstream_alpn: d.tls.upstream_alpn,
              failure_code: d.tls.failure_code,
            }),
          }),
    };
  }),
);

// No `stage:` terms: a stored session has no stage, and both compilers refuse them alike (parse.test.ts).
const termArb: fc.Arbitrary<Term> = fc.oneof(
  fc.record({ kind: fc.constant("glob"), field: fc.constantFrom("host", "user", "sni", "reason"), pattern: fc.constantFrom(...GLOBS) }),
  fc.record({ kind: fc.constant("cidr"), field: fc.constantFrom("host", "client"), cidr: fc.constantFrom(...CIDRS) }),
  fc.constantFrom<Term>(
    { kind: "range", field: "port", min: 80, max: 80 },
    { kind: "range", field: "port", min: 0, max: 1024 },
    { kind: "range", field: "port", min: 443, max: 65535 },
    { kind: "range", field: "id", min: 2, max: 2 },
    { kind: "range", field: "id", min: 3, max: 6 },
    { kind: "range", field: "rep", min: 0, max: 0 },
    { kind: "range", field: "rep", min: 1, max: 8 },
    { kind: "range", field: "rep", min: 91, max: 255 },
  ),
  fc.constantFrom<Term>(
    ...(["connect", "bind", "udp"] as const).map((value) => ({ kind: "enum", field: "cmd", value }) as const),
    ...(["4", "4a", "5"] as const).map((value) => ({ kind: "enum", field: "v", value }) as const),
    ...(["open", "ok", "denied", "failed", "interrupted"] as const).map((value) => ({ kind: "enum", field: "status", value }) as const),
    ...(["tls", "http", "ssh", null] as const).map((value) => ({ kind: "enum", field: "proto", value }) as const),
  ),
  fc.record({
    kind: fc.constant("tag"),
    key: fc.constantFrom("env", "ENV", "*", "e?v", "blocked", "n"),
    value: fc.constantFrom(null, "prod", "PROD", "*", "", "p*", "5", "null"),
  }),
  fc.oneof(
    fc.record({
      kind: fc.constant("compare"),
      measure: fc.constantFrom("bytes", "up", "down"),
      op: fc.constantFrom(">", ">=", "<", "<=", "="),
      amount: fc.constantFrom(...SIZES),
    }),
    fc.record({ kind: fc.constant("compare"), measure: fc.constant("dur"), op: fc.constantFrom(">", ">=", "<", "<=", "="), amount: fc.constantFrom(...TIMES) }),
  ),
  fc.record({ kind: fc.constant("payload"), pattern: fc.constantFrom(...PATTERNS), flags: fc.constantFrom("", "i", "s", "m", "is") }),
  fc.record({ kind: fc.constant("tls"), state: fc.constantFrom(null, "intercepted", "passthrough", "failed") }),
  fc.record({ kind: fc.constant("alpn"), pattern: fc.constantFrom("h2", "H2", "http/1.*", "*", "spdy*", "5") }),
  fc.record({
    kind: fc.constant("via"),
    pattern: fc.constantFrom(null, "*", "*corp*", "socks5h://*", "10.0.0.2:1080", "10.0.0.2", "PROXY.corp", "[2001:db8::1]:1080", "2001:db8::1", "5"),
  }),
) as fc.Arbitrary<Term>;

const filterArb: fc.Arbitrary<Filter> = fc.letrec<{ filter: Filter }>((tie) => ({
  filter: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    termArb,
    fc.record({ kind: fc.constant("and"), operands: fc.array(tie("filter"), { minLength: 2, maxLength: 3 }) }),
    fc.record({ kind: fc.constant("or"), operands: fc.array(tie("filter"), { minLength: 2, maxLength: 3 }) }),
    fc.record({ kind: fc.constant("not"), operand: tie("filter") }),
  ) as fc.Arbitrary<Filter>,
})).filter;

/** Filter text as people type it: fragments in any case, joined by spaces, operators or nothing. */
const textArb = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        "host:*.EXAMPLE.com",
        "HOST:10.0.0.0/8",
        "host:::1|10.*",
        "example",
        "10.0.0",
        "port:80-443",
        "port:0|8080",
        "cmd:connect|bind",
        "CMD:udp",
        "v:4a|5",
        "status:ok|failed",
        "status:OPEN",
        "proto:none",
        "proto:TLS|ssh",
        "rep:0x5b",
        "rep:1-8",
        "id:2-5",
        "user:ali*",
        'user:"b?b"',
        "sni:*example*",
        "reason:client-*",
        "client:::1",
        "client:192.168.0.0/16|10.0.0.9",
        "tag:env",
        "tag:env=p*|blocked",
        "tag:*=",
        "bytes>1k",
        "up>=1536",
        "down<3m",
        "dur>1s",
        "dur<=1.5s",
        "dur=0",
        "~GET|SSH",
        '~i"user-agent"',
        "~^$",
        "~[\\x80-\\xff]",
        "tls",
        "!tls:failed",
        "tls:intercepted|passthrough",
        "alpn:h2|http/1.1",
        "sni:tls.*",
        "via:direct",
        "!via:direct",
        "via:*corp*|socks5h://*",
        "VIA:10.0.0.2:1080",
        "via:2001:db8::1",
      ),
      fc.constantFrom(" ", " ", " ", " | ", "|", " & ", " !", " (", ") ", ""),
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((parts) => parts.map(([term, join]) => term + join).join(""));

describe("SQL and predicate agree", () => {
  function agree(sessions: readonly Session[], filters: readonly Filter[]): void {
    const db = captureDb(sessions);
    try {
      for (const filter of filters) {
        expect({ text: formatFilter(filter), ids: sqlIds(db, filter) }).toEqual({ text: formatFilter(filter), ids: predicateIds(sessions, filter) });
      }
    } finally {
      db.close();
    }
  }

  it("on generated sessions and filter trees (which also format and parse back unchanged)", () => {
    fc.assert(
      fc.property(sessionsArb, fc.array(filterArb, { minLength: 1, maxLength: 6 }), (sessions, filters) => {
        for (const filter of filters) expect(parseFilter(formatFilter(filter))).toEqual(filter);
        agree(sessions, filters);
      }),
      { numRuns: 120 },
    );
  });

  it("on generated sessions and typed filter text", () => {
    fc.assert(
      fc.property(sessionsArb, fc.array(textArb, { minLength: 1, maxLength: 6 }), (sessions, texts) => {
        const filters: Filter[] = [];
        for (const text of texts) {
          try {
            filters.push(parseFilter(text));
          } catch (err) {
            if (!(err instanceof FilterError)) throw err;
          }
        }
        agree(sessions, filters);
      }),
      { numRuns: 120 },
    );
  });
});
