/**
 * One session description, two renderers: `socksmith show`'s text and the TUI's detail lines list
 * the same facts, in the same order, worded the same (format/session-fields.ts); only layout and
 * colour differ. Also: the description itself, for a rich row and a crafted one.
 */
import { describe, expect, it } from "vitest";
import { describeSession } from "../../src/cli/commands/show.js";
import { sessionFields, tlsSummary, tlsVersionText } from "../../src/format/session-fields.js";
import type { ChunkRow, DatagramRow, EventRow, SessionRow, TlsRow } from "../../src/store/schema.js";
import { detailLines, type DetailContent } from "../../src/tui/views/index.js";
import { blankDatagram, blankSession } from "../support/rows.js";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

/** Every optional fact set: a redirected, failed, truncated replay with offered methods, attempts, detection and tags. */
const rich: SessionRow = {
  ...blankSession(T0),
  id: 12,
  run_id: 3,
  engine_id: 4,
  auth_method: "userpass",
  auth_offered: "[0,2,128]",
  user: "al\u202eice",
  requested_type: "domain",
  requested_host: "example.com",
  requested_port: 80,
  requested_at: T0 + 2,
  target_host: "10.0.0.1",
  target_port: 8080,
  remote_host: "10.0.0.1",
  remote_port: 8080,
  attempts: '["10.0.0.2:8080","10.0.0.1:8080"]',
  route: '["socks5h://10.0.0.2:1080","http://proxy.corp:3128"]',
  bound_host: "10.0.0.9",
  bound_port: 40000,
  reply: 5,
  reply_code: "CONNECT_FAILED",
  errno: "ECONNREFUSED",
  replied_at: T0 + 12,
  status: "failed",
  close_reason: "connect-failed",
  close_errno: "ECONNRESET",
  closed_at: T0 + 1230,
  uncaptured_datagrams: 3,
  bytes_up_received: 100,
  bytes_up_sent: 90,
  bytes_down_received: 2048,
  bytes_down_sent: 2000,
  captured_bytes: 1024,
  truncated: 1,
  protocol: "tls",
  sni: "example.com",
  protocol_info: '{"alpn":["h2"],"version":"1.3"}',
  tags: '{"rule":"lab","\\u001b[2J":1}',
  replay_of: 7,
  served_from: 3,
};

const events: EventRow[] = [
  {
    id: 1,
    session_id: 12,
    run_id: 3,
    at: T0 + 40,
    kind: "hook-error",
    addon: "thrower.ts",
    hook: "onData",
    location: "thrower.ts:5:3",
    code: "threw",
    message: "boom\nat line two",
  },
  { id: 2, session_id: 12, run_id: 3, at: T0 + 41, kind: "tag", addon: "tagger.ts", hook: null, location: null, code: null, message: "rule=lab \x1b[31m" },
];

function chunk(seq: number, direction: "up" | "down", text: string, more: Partial<ChunkRow> = {}): ChunkRow {
  const data = Buffer.from(text);
  return { id: seq + 1, session_id: 12, seq, at: T0 + 20 + seq, direction, data, size: data.length, sent: null, verdict: null, ...more };
}

/** A conversation with a turn of three reads, a replaced, a dropped (sent nothing), an injected and a cut chunk. */
const chunks: ChunkRow[] = [
  chunk(0, "up", "GET / HTTP/1.1\r\n"),
  chunk(1, "up", "Host: example.com\r\n"),
  chunk(2, "up", "\r\n"),
  chunk(3, "down", "HTTP/1.1 200 OK\r\n", { verdict: "replace", sent: Buffer.from("HTTP/1.1 404 Not Found\r\n") }),
  chunk(4, "down", "secret", { verdict: "drop", sent: Buffer.alloc(0) }),
  chunk(5, "down", "", { verdict: "inject", size: 0, sent: Buffer.from("injected\n") }),
  chunk(6, "up", "cut", { size: 300 }),
];

function datagram(seq: number, more: Partial<DatagramRow>): DatagramRow {
  return blankDatagram(T0 + 30 + seq, { id: seq + 1, session_id: 12, seq, ...more });
}

/** Datagrams: one an addon sent elsewhere, an answer to the client's address, a drop, an injected one with changed bytes. */
const datagrams: DatagramRow[] = [
  datagram(0, { to_host: "9.9.9.9" }),
  datagram(1, { direction: "down", from_host: "8.8.8.8", from_port: 53, to_host: "127.0.0.1", to_port: 40000 }),
  datagram(2, { verdict: "dropped", reason: "not-allowed", detail: "by rule \x1b", to_host: null, to_port: null }),
  datagram(3, { direction: "down", verdict: "injected", sent: Buffer.from("pong"), to_host: "127.0.0.1", to_port: 40000 }),
];

/** A reader of one session with these events, chunks and datagrams. */
const reader = {
  events: (): EventRow[] => events,
  chunks: (): IterableIterator<ChunkRow> => chunks[Symbol.iterator](),
  datagrams: (): IterableIterator<DatagramRow> => datagrams[Symbol.iterator](),
};

interface Parsed {
  readonly label: string;
  readonly value: string;
  readonly detail: string[];
}

/** `label:   value` lines, and the 12-column-indented lines under a value as its detail. */
function parseFields(lines: readonly string[]): Parsed[] {
  const out: Parsed[] = [];
  for (const line of lines) {
    if (line === "") continue;
    if (line.startsWith(" ".repeat(12))) {
      out[out.length - 1]!.detail.push(line.slice(12));
      continue;
    }
    // A sub-field's label starts with two spaces (`  client:`).
    const m = /^( {2}\S.*?|\S.*?): +(.*)$/.exec(line);
    expect(m, `not a field line: ${JSON.stringify(line)}`).not.toBeNull();
    out.push({ label: m![1]!, value: m![2]!, detail: [] });
  }
  return out;
}

function showText(s: SessionRow): string[] {
  return [...describeSession(reader, s, { hex: false, maxBytes: Infinity })];
}

function tuiText(s: SessionRow, tab: DetailContent["tab"]): string[] {
  return detailLines({ session: s, events, chunks, datagrams, tab, mode: "auto", width: 1000 }).map((l) => l.text);
}

/** show's header: the lines between the title and the first blank line. */
function showHeader(s: SessionRow): { title: string; fields: Parsed[] } {
  const lines = showText(s);
  const end = lines.indexOf("");
  return { title: lines[0]!, fields: parseFields(lines.slice(1, end === -1 ? undefined : end)) };
}

describe("show and the TUI's overview: one description", () => {
  const rows: [string, SessionRow][] = [
    ["a rich row (every optional fact)", rich],
    ["a blank row", blankSession(T0)],
    ["an open session", { ...blankSession(T0), status: "open", close_reason: null, requested_host: "::1", requested_port: 443, requested_type: "ipv6" }],
    ["a SOCKS4 session with no auth", { ...blankSession(T0), version: "4", auth_method: null, auth_offered: null, reply: 2, tags: "not json" }],
  ];

  it.each(rows)("%s: same title, same labels and values, in the same order", (_, s) => {
    const show = showHeader(s);
    const tui = tuiText(s, "overview");
    expect(show.title).toBe(tui[0]);
    expect(show.fields).toEqual(parseFields(tui.slice(1)));
    // And both are the shared description.
    expect(show.fields).toEqual(sessionFields(s).map((f) => ({ label: f.label, value: f.value, detail: [...(f.detail ?? [])] })));
  });

  it("show lists what the TUI showed and show left out, each fact once", () => {
    const labels = showHeader(rich).fields.map((f) => f.label);
    expect(labels).toEqual([
      "replay of",
      "served from",
      "opened",
      "requested",
      "replied",
      "closed",
      "duration",
      "client",
      "protocol",
      "auth",
      "target",
      "actual",
      "route",
      "connected",
      "attempts",
      "bound",
      "reply",
      "status",
      "bytes up",
      "bytes down",
      "captured",
      "uncaptured",
      "detected",
      "tags",
    ]);
    const text = showText(rich).join("\n");
    expect(text.match(/^replay of:/gm)).toHaveLength(1);
    expect(text).toContain('auth:       userpass user "al\\u{202e}ice" (offered none, userpass, 0x80)');
    expect(text).toContain("actual:     10.0.0.1:8080 (redirected by an addon or intercept)");
    expect(text).toContain("attempts:   10.0.0.2:8080, 10.0.0.1:8080");
    expect(text).toContain("route:      socks5h://10.0.0.2:1080 → http://proxy.corp:3128");
    expect(text).toContain("served from: session 3 (server replay)");
    expect(text).toContain("uncaptured: 3 datagrams (relayed while the capture was behind)");
    expect(text).toContain('detected:   tls example.com\n            {\n              "alpn": [');
    expect(text).toContain("tags:       rule=lab \\x1b[2J=1");
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
  });

  it("events read the same in show and in the TUI's events tab", () => {
    const lines = showText(rich);
    const start = lines.indexOf("events:") + 1;
    const end = lines.indexOf("", start);
    const show = lines.slice(start, end);
    expect(show.map((l) => l.trimStart())).toEqual(tuiText(rich, "events").map((l) => l.trimStart()));
    expect(show).toEqual([
      expect.stringMatching(/^ {2}\d\d:\d\d:\d\d\.\d{3} hook-error threw \[thrower\.ts onData\] at thrower\.ts:5:3: boom$/),
      "    at line two",
      expect.stringMatching(/^ {2}\S+ tag \[tagger\.ts\]: rule=lab \\x1b\[31m$/),
    ]);
  });
});

describe("show and the TUI's stream tab: the same headings", () => {
  /** Turn and datagram headings, and what an addon sent instead, without the payload either prints its own way. */
  const headings = (lines: readonly string[]) => lines.filter((l) => /^(>>|<<) |^ {3}as (received|sent)/.test(l));

  it.each([
    ["a TCP conversation", { ...rich, command: "connect" } as SessionRow, "stream:"],
    ["a UDP association", { ...rich, command: "udp" } as SessionRow, "datagrams:"],
  ])("%s", (_, s, section) => {
    const lines = showText(s);
    const show = headings(lines.slice(lines.indexOf(section)));
    expect(show).toEqual(headings(tuiText(s, "stream")));
    expect(show.length).toBeGreaterThan(4);
  });

  it("show states the facts it left out before: where a datagram went, the client an answer reached, bytes dropped by an addon", () => {
    const udp = showText({ ...rich, command: "udp" }).join("\n");
    expect(udp).toMatch(/>> \S+ client 127\.0\.0\.1:40000 → 8\.8\.8\.8:53 \(sent to 9\.9\.9\.9:53\) #0 \(4 bytes\)/);
    expect(udp).toMatch(/<< \S+ 8\.8\.8\.8:53 → client 127\.0\.0\.1:40000 #1 \(4 bytes\)/);
    expect(udp).toMatch(/#2 \(4 bytes, dropped: not-allowed \(by rule \\x1b\)\)/);
    const tcp = showText({ ...rich, command: "connect" }).join("\n");
    expect(tcp).toMatch(/>> \S+ client → target #0–2 \(37 bytes in 3 reads\)/);
    expect(tcp).toMatch(/<< \S+ target → client #4 \(6 bytes, changed: drop\)\n {3}as received:\n {3}secret\n {3}as sent: nothing/);
    expect(tcp).toMatch(/<< \S+ target → client #5 \(9 bytes, injected\)/);
    expect(tcp).toMatch(/>> \S+ client → target #6 \(300 bytes, 3 kept\)/);
  });
});

describe("sessionFields", () => {
  it("puts a replay's comparison right under 'replay of', toned, its recorded and received bytes safe", () => {
    const fields = sessionFields(rich, { comparison: { expected: 10, received: 9, difference: { offset: 4, expected: "68 69", actual: "\x1b" } } });
    expect(fields.slice(0, 5)).toEqual([
      { group: "replay", label: "replay of", value: "session 7" },
      { group: "replay", label: "answer", value: "differs at byte 4 (received 9 B, recorded 10 B)", tone: "attention" },
      { group: "replay", label: "  recorded", value: "68 69" },
      { group: "replay", label: "  now", value: "\\x1b" },
      { group: "replay", label: "served from", value: "session 3 (server replay)" },
    ]);
  });

  it("counts an open session's duration with now, and says 'still open' without it", () => {
    const open: SessionRow = { ...blankSession(T0), status: "open", close_reason: null };
    expect(sessionFields(open).find((f) => f.label === "duration")).toEqual({ group: "timing", label: "duration", value: "still open", tone: "attention" });
    expect(sessionFields(open, { now: T0 + 3000 }).find((f) => f.label === "duration")?.value).toBe("3.00 s so far");
  });

  it("a crafted row (columns that are not JSON, an unknown status) gives safe text, not a throw", () => {
    const crafted = { ...rich, status: "\x1b]0;owned\x07", attempts: "{", auth_offered: "nope", protocol_info: "\x9b", tags: "[1]" } as unknown as SessionRow;
    const fields = sessionFields(crafted);
    for (const f of fields) for (const t of [f.label, f.value, ...(f.detail ?? [])]) expect(t).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    const status = { group: "outcome", label: "status", value: "\\x1b]0;owned\\x07 — connect-failed (ECONNRESET)" };
    expect(fields.find((f) => f.label === "status")).toEqual(status);
    expect(fields.find((f) => f.label === "attempts")?.value).toBe("{");
    expect(fields.some((f) => f.label === "tags")).toBe(false);
  });

  it("says the route: direct, or the hops in order; nothing for a session that never asked for anything", () => {
    const route = (row: SessionRow) => sessionFields(row).find((f) => f.label === "route");
    expect(route({ ...blankSession(T0), route: null })).toEqual({ group: "addresses", label: "route", value: "direct" });
    expect(route({ ...blankSession(T0), route: '["socks5h://[2001:db8::1]:1080"]' })?.value).toBe("socks5h://[2001:db8::1]:1080");
    expect(route({ ...blankSession(T0), command: null, route: null })).toBeUndefined();
    // Crafted columns: not a list, or a list without a hop, is direct; hostile text is made safe.
    expect(route({ ...blankSession(T0), route: "{" })?.value).toBe("direct");
    expect(route({ ...blankSession(T0), route: "[1, null]" })?.value).toBe("direct");
    expect(route({ ...blankSession(T0), route: '["http://\\u001b[2J:1", 5]' })?.value).toBe("http://\\x1b[2J:1");
  });
});

/** An intercepted h2 session with every TLS fact set. */
const intercepted: TlsRow = {
  session_id: 12,
  at: T0 + 5,
  intercepted: 1,
  decided_by: "default",
  sni: "example.com",
  alpn_offered: '["h2","http/1.1"]',
  versions_offered: '["TLSv1.3","TLSv1.2"]',
  client_version: "TLSv1.3",
  client_cipher: "TLS_AES_128_GCM_SHA256",
  client_alpn: "h2",
  upstream_version: "TLSv1.3",
  upstream_cipher: "TLS_AES_256_GCM_SHA384",
  upstream_alpn: "h2",
  cert_subject: "CN=example.com",
  cert_issuer: "CN=Test Root,O=Test",
  cert_sans: '["DNS:example.com","DNS:www.example.com"]',
  cert_valid_from: "2026-01-01T00:00:00.000Z",
  cert_valid_to: "2027-01-01T00:00:00.000Z",
  cert_fingerprint: "AB:CD:EF",
  verification: "ok",
  failure_side: null,
  failure_code: null,
  failure_message: null,
};

const noHandshake = { client_version: null, client_cipher: null, client_alpn: null, upstream_version: null, upstream_cipher: null, upstream_alpn: null };
const passthrough: TlsRow = {
  ...intercepted,
  ...noHandshake,
  intercepted: 0,
  decided_by: "filter",
  versions_offered: '["TLSv1.2"]',
  cert_subject: null,
  cert_issuer: null,
  cert_sans: null,
  cert_valid_from: null,
  cert_valid_to: null,
  cert_fingerprint: null,
  verification: null,
};
const expired: TlsRow = {
  ...intercepted,
  ...noHandshake,
  verification: "certificate has expired",
  failure_side: "upstream",
  failure_code: "upstream-certificate",
  failure_message: "certificate has expired",
};

describe("TLS facts: one description in show and the TUI", () => {
  const tlsReader = (tls: TlsRow) => ({ ...reader, tls: () => tls });
  const showWith = (s: SessionRow, tls: TlsRow) => [...describeSession(tlsReader(tls), s, { hex: false, maxBytes: Infinity })];
  const tuiWith = (s: SessionRow, tls: TlsRow) =>
    detailLines({ session: s, events, chunks, datagrams, tab: "overview", mode: "auto", width: 1000, tls }).map((l) => l.text);
  const ok: SessionRow = {
    ...rich,
    status: "ok",
    reply: 0,
    reply_code: null,
    errno: null,
    close_reason: "completed",
    protocol: "http2",
    sni: null,
    protocol_info: null,
  };

  it.each([
    ["intercepted", intercepted],
    ["passthrough", passthrough],
    ["failed", expired],
  ] as const)("%s: the same fields in show and in the TUI's overview", (_, tls) => {
    const show = showWith(ok, tls);
    const end = show.indexOf("");
    const fields = parseFields(show.slice(1, end));
    expect(fields).toEqual(parseFields(tuiWith(ok, tls).slice(1)));
    expect(fields).toEqual(sessionFields(ok, { tls }).map((f) => ({ label: f.label, value: f.value, detail: [...(f.detail ?? [])] })));
  });

  it("show prints the TLS line and every fact of an intercepted session, after the detection and before the tags", () => {
    const text = showWith(ok, intercepted);
    const from = text.findIndex((l) => l.startsWith("tls:"));
    expect(text.slice(from - 1, from + 12)).toEqual([
      "detected:   http2",
      "tls:        TLS 1.3 · h2 · example.com (intercepted)",
      "  decided:  default (run --tls)",
      "  client:   TLS 1.3, TLS_AES_128_GCM_SHA256, ALPN h2",
      "  upstream: TLS 1.3, TLS_AES_256_GCM_SHA384, ALPN h2",
      "  offered:  ALPN h2, http/1.1; TLS 1.3, TLS 1.2",
      "  cert:     CN=example.com",
      "  issuer:   CN=Test Root,O=Test",
      "  names:    DNS:example.com, DNS:www.example.com",
      "  valid:    2026-01-01T00:00:00.000Z → 2027-01-01T00:00:00.000Z",
      "  sha-256:  AB:CD:EF",
      "  verified: ok",
      expect.stringMatching(/^tags: /),
    ]);
  });

  it("a passthrough shows the ClientHello's facts and why; a failure says which side and why, toned", () => {
    expect(sessionFields(ok, { tls: passthrough }).filter((f) => f.group === "tls")).toEqual([
      { group: "tls", label: "tls", value: "TLS 1.2 · example.com (passthrough: filter)" },
      { group: "tls", label: "  decided", value: "filter (--tls-hosts / --tls-passthrough)" },
      { group: "tls", label: "  offered", value: "ALPN h2, http/1.1; TLS 1.2" },
    ]);
    const failed = sessionFields(ok, { tls: expired }).filter((f) => f.group === "tls");
    expect(failed[0]).toEqual({ group: "tls", label: "tls", value: "TLS 1.3 · example.com (failed: upstream-certificate)", tone: "failure" });
    expect(failed.find((f) => f.label === "  verified")).toEqual({ group: "tls", label: "  verified", value: "certificate has expired", tone: "failure" });
    expect(failed.find((f) => f.label === "  failure")).toEqual({
      group: "tls",
      label: "  failure",
      value: "upstream upstream-certificate: certificate has expired",
      tone: "failure",
    });
    // Without a tls row there is no TLS group at all.
    expect(sessionFields(ok).some((f) => f.group === "tls")).toBe(false);
  });

  it("summarises without SNI or ALPN, and words versions as people do", () => {
    expect(tlsSummary({ ...intercepted, sni: null, client_alpn: null, upstream_alpn: null, client_version: "TLSv1.2" })).toBe("TLS 1.2 · no SNI (intercepted)");
    expect(tlsSummary({ ...passthrough, decided_by: "auto-passthrough" })).toBe("TLS 1.2 · example.com (passthrough: auto-passthrough)");
    expect([tlsVersionText("TLSv1.3"), tlsVersionText("TLSv1"), tlsVersionText("SSLv3")]).toEqual(["TLS 1.3", "TLS 1.0", "SSLv3"]);
  });

  it("a crafted tls row (hostile text, lists that are not JSON, an unknown decision) gives safe text, not a throw", () => {
    const crafted: TlsRow = {
      ...expired,
      sni: "\x1b]0;owned\x07",
      decided_by: "constructor",
      alpn_offered: "{",
      versions_offered: "[1,",
      cert_subject: "CN=\u202eevil",
      cert_sans: '"x"',
      failure_message: "bad\x9bthing",
    };
    const fields = sessionFields(ok, { tls: crafted });
    for (const f of fields) for (const t of [f.label, f.value, ...(f.detail ?? [])]) expect(t).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    expect(fields.find((f) => f.label === "  decided")?.value).toBe("constructor");
    expect(fields.find((f) => f.label === "  offered")?.value).toBe("ALPN none");
  });
});
