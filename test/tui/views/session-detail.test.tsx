/** The detail view: tabs, overview facts, events, the stream in each mode, UDP, and paging. */
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { formatTime, hexDump } from "../../../src/format/index.js";
import type { DetailTab, TlsRow, ViewMode } from "../../../src/tui/types.js";
import {
  MAX_BLOCK_BYTES,
  SessionDetail,
  clampScroll,
  conversationTurns,
  detailLines,
  detailPageSize,
  hexWidth,
  type SessionDetailProps,
} from "../../../src/tui/views/index.js";
import { displayWidth } from "../../../src/tui/views/text.js";
import { T0, chunk, datagram, event, plain, session } from "./fixtures.js";

const binary = Buffer.from([0x00, 0x01, 0x02, 0xff, 0x16, 0x03, 0x01]);

function props(overrides: Partial<SessionDetailProps> = {}): SessionDetailProps {
  return { session: session(), events: [], chunks: [], datagrams: [], tab: "overview", mode: "auto", scroll: 0, width: 100, height: 60, ...overrides };
}
const text = (p: SessionDetailProps) => detailLines(p).map((l) => l.text);
const frame = (p: SessionDetailProps) => plain(render(<SessionDetail {...p} />).lastFrame());

describe("tab bar", () => {
  it("shows the three tabs with counts, the active one marked, and the session", () => {
    const p = props({ events: [event()], chunks: [chunk(), chunk({ seq: 1, direction: "down" })] });
    const tabs = (tab: DetailTab) => frame({ ...p, tab }).split("\n")[0];
    expect(tabs("overview")).toMatch(/^\[overview\] +events 1 +stream 2 +#1 example\.com:80$/);
    expect(tabs("events")).toMatch(/^ overview +\[events 1\] +stream 2 /);
    expect(tabs("stream")).toMatch(/^ overview +events 1 +\[stream 2\] +#1 example\.com:80 {2}mode auto$/);
    expect(frame({ ...p, session: session({ command: "udp" }), datagrams: [datagram()], tab: "stream" }).split("\n")[0]).toContain("[datagrams 1]");
  });
});

describe("overview", () => {
  const failed = session({
    user: "alice",
    auth_method: "userpass",
    auth_offered: "[0,2]",
    target_host: "10.0.0.1",
    target_port: 8080,
    remote_host: null,
    remote_port: null,
    attempts: '["10.0.0.1:8080"]',
    reply: 5,
    reply_code: "CONNECT_FAILED",
    errno: "ECONNREFUSED",
    status: "failed",
    close_reason: "connect-failed",
    bytes_up_received: 0,
    bytes_up_sent: 0,
    bytes_down_received: 0,
    bytes_down_sent: 0,
    captured_bytes: 0,
    tags: '{"rule":"lab"}',
    replay_of: 7,
  });

  it("shows addresses, auth, timings, reply with code and errno, status, bytes, detection, tags and replay", () => {
    const lines = text(props({ session: failed }));
    expect(lines).toContain("session 1  (run 1, #1)");
    expect(lines).toContain(`opened:     ${formatTime(T0)} (2024-05-01T12:00:00.000Z)`);
    expect(lines).toContain(`replied:    ${formatTime(T0 + 12)} (+12 ms)`);
    expect(lines).toContain(`closed:     ${formatTime(T0 + 1230)} (+1.23 s)`);
    expect(lines).toContain("duration:   1.23 s");
    expect(lines).toContain("client:     127.0.0.1:50000 → proxy 127.0.0.1:1080");
    expect(lines).toContain("protocol:   SOCKS5 CONNECT");
    expect(lines).toContain('auth:       userpass user "alice" (offered none, userpass)');
    expect(lines).toContain("target:     example.com:80 (domain)");
    expect(lines).toContain("actual:     10.0.0.1:8080 (redirected by an addon or intercept)");
    expect(lines).toContain("attempts:   10.0.0.1:8080");
    expect(lines).toContain("route:      direct");
    expect(lines).toContain("bound:      0.0.0.0:0");
    expect(lines).toContain("reply:      05 refused CONNECT_FAILED (ECONNREFUSED)");
    expect(lines).toContain("status:     failed — connect-failed");
    expect(lines).toContain("bytes up:   0 B received / 0 B sent  (client → target)");
    expect(lines).toContain("captured:   0 B");
    expect(lines).toContain("detected:   http example.com");
    expect(lines).toContain('              "method": "GET",');
    expect(lines).toContain("tags:       rule=lab");
    expect(lines).toContain("replay of:  session 7");
    expect(lines.some((l) => l.startsWith("connected:"))).toBe(false);
    expect(detailLines(props({ session: failed })).find((l) => l.text.startsWith("reply:"))).toMatchObject({ color: "red" });
  });

  it("shows how a replay's answer compares: bytes for TCP, the differing answer for UDP; and a served session's recording", () => {
    const difference = { offset: 17, expected: "72 75 6e 20 31", actual: "72 75 6e 20 32" };
    const tcp = text(props({ session: failed, comparison: { expected: 544, received: 544, difference } }));
    expect(tcp).toContain("answer:     differs at byte 17 (received 544 B, recorded 544 B)");
    expect(tcp).toContain("  recorded: 72 75 6e 20 31");
    const udp = text(props({ session: failed, comparison: { expected: 36, received: 36, difference, datagrams: { expected: 2, received: 2, answer: 0 } } }));
    expect(udp).toContain("answer:     answer 1 differs at byte 17 (received 2 datagrams, recorded 2)");
    const same = text(props({ session: failed, comparison: { expected: 5, received: 5, datagrams: { expected: 1, received: 1 } } }));
    expect(same).toContain("answer:     same as recorded (received 1 datagram, recorded 1)");
    expect(text(props({ session: session({ served_from: 3 }) }))).toContain("served from: session 3 (server replay)");
  });

  it("shows the connected address, and truncation", () => {
    const lines = text(props({ session: session({ truncated: 1, captured_bytes: 1024 }) }));
    expect(lines).toContain("connected:  93.184.216.34:80");
    expect(lines).toContain("captured:   1.0 KiB (truncated by --capture-limit)");
    expect(lines.some((l) => l.startsWith("actual:"))).toBe(false);
  });

  it("counts an open session's duration with now, and says since when without it", () => {
    const open = session({ status: "open", closed_at: null, close_reason: null });
    expect(text(props({ session: open, now: T0 + 3_000 }))).toContain("duration:   3.00 s so far");
    expect(text(props({ session: open }))).toContain("duration:   still open");
  });
});

describe("events", () => {
  it("shows time, kind, code, addon and hook, location and message, one continuation per message line", () => {
    const lines = text(
      props({
        tab: "events",
        events: [
          event(),
          event({ id: 2, kind: "addon-log", hook: null, location: null, code: null, message: "first\nsecond" }),
          event({ id: 3, kind: "anomaly", addon: null, hook: null, location: null, code: "SOCKS4_EMPTY_USERID", message: "tolerated" }),
        ],
      }),
    );
    const at = formatTime(T0 + 40);
    expect(lines).toEqual([
      `${at} hook-error threw [thrower.ts onData] at thrower.ts:5:3: boom`,
      `${at} addon-log [thrower.ts]: first`,
      "   second",
      `${at} anomaly SOCKS4_EMPTY_USERID: tolerated`,
    ]);
    expect(detailLines(props({ tab: "events", events: [event()] }))[0]).toMatchObject({ color: "red" });
    expect(text(props({ tab: "events" }))).toEqual(["(no events)"]);
  });
});

describe("stream", () => {
  const request = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
  const conversation = [
    chunk({ seq: 0, text: request }),
    chunk({ seq: 1, direction: "down", at: T0 + 50, text: "HTTP/1.1 200 OK\r\n" }),
    chunk({ seq: 2, direction: "down", at: T0 + 51, text: "\r\nhello\n" }),
  ];

  it("merges consecutive untouched chunks of one direction into a turn, with a header each", () => {
    expect(conversationTurns(conversation).map((t) => t.map((c) => c.seq))).toEqual([[0], [1, 2]]);
    expect(text(props({ tab: "stream", mode: "text", chunks: conversation }))).toEqual([
      `>> ${formatTime(T0 + 20)} client → target #0 (${request.length} bytes)`,
      "   GET / HTTP/1.1\\r",
      "   Host: example.com\\r",
      "   \\r",
      `<< ${formatTime(T0 + 50)} target → client #1–2 (25 bytes in 2 reads)`,
      "   HTTP/1.1 200 OK\\r",
      "   \\r",
      "   hello",
    ]);
  });

  it("shows hex dumps in hex mode, laid out for the width", () => {
    const lines = text(props({ tab: "stream", mode: "hex", chunks: [chunk({ text: request })] }));
    expect(lines.slice(1)).toEqual(hexDump(Buffer.from(request)).map((l) => `   ${l}`));
    const narrow = text(props({ tab: "stream", mode: "hex", chunks: [chunk({ text: request })], width: 60 }));
    expect(narrow.slice(1)).toEqual(hexDump(Buffer.from(request), { width: 8 }).map((l) => `   ${l}`));
    expect(hexWidth(77)).toBe(16);
    expect(hexWidth(76)).toBe(8);
    expect(hexWidth(10)).toBe(4);
  });

  it("in auto mode shows text as text and binary as hex, per turn", () => {
    const lines = text(props({ tab: "stream", mode: "auto", chunks: [chunk({ text: "hello\n" }), chunk({ seq: 1, direction: "down", data: binary })] }));
    expect(lines[1]).toBe("   hello");
    expect(lines[3]).toBe(`   ${hexDump(binary)[0]}`);
    // Text mode escapes what is not printable instead.
    expect(text(props({ tab: "stream", mode: "text", chunks: [chunk({ data: binary })] }))[1]).toBe("   \\x00\\x01\\x02\\xff\\x16\\x03\\x01");
  });

  it("shows a changed chunk as received and as sent, a dropped one as sent nothing, an injected one labelled", () => {
    const lines = text(
      props({
        tab: "stream",
        mode: "text",
        chunks: [
          chunk({ seq: 0, text: "password=hunter2", verdict: "replace", sent: Buffer.from("password=*******") }),
          chunk({ seq: 1, text: "more", verdict: "drop", sent: Buffer.alloc(0) }),
          chunk({ seq: 2, direction: "down", data: Buffer.alloc(0), size: 0, verdict: "inject", sent: Buffer.from("injected!") }),
        ],
      }),
    );
    expect(lines).toEqual([
      `>> ${formatTime(T0 + 20)} client → target #0 (16 bytes, changed: replace)`,
      "   as received:",
      "   password=hunter2",
      "   as sent:",
      "   password=*******",
      `>> ${formatTime(T0 + 20)} client → target #1 (4 bytes, changed: drop)`,
      "   as received:",
      "   more",
      "   as sent: nothing",
      `<< ${formatTime(T0 + 20)} target → client #2 (9 bytes, injected)`,
      "   injected!",
    ]);
  });

  it("says how much of a truncated chunk was kept, and cuts very long blocks", () => {
    expect(text(props({ tab: "stream", chunks: [chunk({ text: "abc", size: 1000 })] }))[0]).toContain("#0 (1000 bytes, 3 kept)");
    const big = Buffer.alloc(MAX_BLOCK_BYTES + 10, 0x61);
    const lines = text(props({ tab: "stream", mode: "text", chunks: [chunk({ data: big })] }));
    expect(lines.at(-1)).toBe("   … 10 more bytes (e exports the whole session)");
    expect(text(props({ tab: "stream" }))).toEqual(["(no bytes)"]);
  });

  it("lists a UDP association's datagrams with direction, peers, size, drop reason and payload", () => {
    const lines = text(
      props({
        session: session({ command: "udp" }),
        tab: "stream",
        mode: "auto",
        datagrams: [
          datagram(),
          datagram({ seq: 1, direction: "down", from_host: "8.8.8.8", from_port: 53, to_host: "127.0.0.1", to_port: 40000, data: binary, size: binary.length }),
          datagram({ seq: 2, verdict: "dropped", reason: "blocked", detail: "by rule", to_host: null, to_port: null }),
          datagram({ seq: 3, to_host: "10.0.0.53", to_port: 53, sent: Buffer.from("pong") }),
        ],
      }),
    );
    const at = formatTime(T0 + 30);
    expect(lines).toEqual([
      `>> ${at} client 127.0.0.1:40000 → 8.8.8.8:53 #0 (4 bytes)`,
      "   ping",
      `<< ${at} 8.8.8.8:53 → client 127.0.0.1:40000 #1 (7 bytes)`,
      `   ${hexDump(binary)[0]}`,
      `>> ${at} client 127.0.0.1:40000 → 8.8.8.8:53 #2 (4 bytes, dropped: blocked (by rule))`,
      "   ping",
      `>> ${at} client 127.0.0.1:40000 → 8.8.8.8:53 (sent to 10.0.0.53:53) #3 (4 bytes)`,
      "   as received:",
      "   ping",
      "   as sent:",
      "   pong",
    ]);
    expect(
      detailLines(props({ session: session({ command: "udp" }), tab: "stream", datagrams: [datagram({ verdict: "dropped", reason: "blocked" })] }))[0],
    ).toMatchObject({ color: "red" });
    expect(text(props({ session: session({ command: "udp" }), tab: "stream" }))).toEqual(["(no datagrams)"]);
  });

  it("renders the stream in the component", () => {
    const f = frame(props({ tab: "stream", mode: "text", chunks: conversation }));
    expect(f).toContain(">> ");
    expect(f).toContain("   GET / HTTP/1.1\\r");
    expect(f).toContain("<< ");
    expect(f).toContain("   hello");
  });
});

describe("wrapping and scrolling", () => {
  const many = Array.from({ length: 40 }, (_, i) => chunk({ seq: i, id: i + 1, direction: i % 2 === 0 ? "up" : "down", text: `line ${i}\n` }));
  const p = props({ tab: "stream", mode: "text", chunks: many, height: 6 });

  it("wraps long lines so every line fits the width", () => {
    const long = chunk({ text: "x".repeat(250) });
    const lines = detailLines(props({ tab: "stream", mode: "text", chunks: [long], width: 40 }));
    expect(lines.length).toBeGreaterThan(6);
    for (const l of lines) expect(displayWidth(l.text)).toBeLessThanOrEqual(40);
    for (const l of detailLines(props({ session: session({ tags: JSON.stringify({ k: "v".repeat(200) }) }), width: 30 })))
      expect(displayWidth(l.text)).toBeLessThanOrEqual(30);
  });

  it("shows height - 1 lines from scroll, and where it is", () => {
    const all = text(p);
    expect(all).toHaveLength(80);
    expect(detailPageSize(6)).toBe(5);
    const lines = frame({ ...p, scroll: 10 }).split("\n");
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(/11–15\/80$/);
    expect(lines.slice(1)).toEqual(all.slice(10, 15));
  });

  it("clamps scroll so the last page stays full", () => {
    expect(clampScroll(80, 1000, 5)).toBe(75);
    expect(clampScroll(80, -3, 5)).toBe(0);
    expect(clampScroll(3, 2, 5)).toBe(0);
    const lines = frame({ ...p, scroll: 1000 }).split("\n");
    expect(lines.slice(1)).toEqual(text(p).slice(75));
  });

  it("keeps lines of a short tab without a position marker", () => {
    expect(frame(props({ tab: "events", events: [event()], height: 10 })).split("\n")[0]).not.toMatch(/\d+–\d+\//);
  });
});

describe("every mode and tab renders within its size", () => {
  it.each(["auto", "text", "hex"] as ViewMode[])("mode %s", (mode) => {
    for (const tab of ["overview", "events", "stream"] as DetailTab[]) {
      const f = frame(
        props({ tab, mode, chunks: [chunk({ data: binary }), chunk({ seq: 1, text: "x".repeat(300) })], events: [event()], width: 50, height: 12 }),
      );
      const lines = f.split("\n");
      expect(lines.length).toBe(12);
      for (const l of lines) expect(displayWidth(l)).toBeLessThanOrEqual(50);
    }
  });
});

describe("overview of a TLS session", () => {
  const tls: TlsRow = {
    session_id: 1,
    at: T0,
    intercepted: 1,
    decided_by: "default",
    sni: "example.com",
    alpn_offered: '["h2","http/1.1"]',
    versions_offered: '["TLSv1.3"]',
    client_version: "TLSv1.3",
    client_cipher: "TLS_AES_128_GCM_SHA256",
    client_alpn: "h2",
    upstream_version: "TLSv1.3",
    upstream_cipher: "TLS_AES_128_GCM_SHA256",
    upstream_alpn: "h2",
    cert_subject: "CN=example.com",
    cert_issuer: "CN=Test Root",
    cert_sans: '["DNS:example.com"]',
    cert_valid_from: "2026-01-01T00:00:00.000Z",
    cert_valid_to: "2027-01-01T00:00:00.000Z",
    cert_fingerprint: "AB:CD",
    verification: "ok",
    failure_side: null,
    failure_code: null,
    failure_message: null,
  };

  it("draws the TLS line and its facts in a group of their own", () => {
    const shown = frame(props({ tls }));
    expect(shown).toMatch(
      /\n\ntls: +TLS 1\.3 · h2 · example\.com \(intercepted\)\n {2}decided: +default \(run --tls\)\n {2}client: +TLS 1\.3, TLS_AES_128_GCM_SHA256, ALPN h2\n/,
    );
    expect(shown).toMatch(/ {2}verified: +ok/);
    expect(frame(props())).not.toContain("tls:");
  });

  it("colours a failed handshake red, and TLS events magenta", () => {
    const failed = { ...tls, failure_side: "client", failure_code: "client-rejected-certificate", failure_message: "alert unknown_ca" };
    const lines = detailLines(props({ tls: failed }));
    expect(lines.find((l) => l.text.startsWith("tls:"))).toEqual({
      text: "tls:        TLS 1.3 · h2 · example.com (failed: client-rejected-certificate)",
      color: "red",
    });
    const tlsEvent = event({
      kind: "tls",
      addon: null,
      hook: null,
      location: null,
      code: "passthrough",
      message: "TLS passthrough (filter: --tls-hosts / --tls-passthrough)",
    });
    const eventLine = detailLines(props({ tab: "events", events: [tlsEvent], width: 200 }))[0]!;
    expect(eventLine.color).toBe("magenta");
    expect(eventLine.text).toMatch(/tls passthrough: TLS passthrough \(filter: --tls-hosts \/ --tls-passthrough\)$/);
  });
});
