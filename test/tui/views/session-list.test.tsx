/** The session list: cells, selection, colours by status, and lines that fit any width. */
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { formatTime } from "../../../src/format/index.js";
import { SessionList, layoutColumns, sessionColumns, sessionListLines, sessionTone, viaMarker } from "../../../src/tui/views/index.js";
import { displayWidth } from "../../../src/tui/views/text.js";
import { T0, plain, session } from "./fixtures.js";

const redirected = session({ id: 2, target_host: "10.0.0.1", target_port: 8080, tags: '{"rule":"lab","env":"dev"}' });
const refused = session({
  id: 3,
  status: "failed",
  reply: 5,
  reply_code: "CONNECT_FAILED",
  errno: "ECONNREFUSED",
  close_reason: "connect-failed",
  remote_host: null,
  remote_port: null,
  bytes_up_received: 0,
  bytes_down_received: 0,
  protocol: null,
  sni: null,
});
const open = session({ id: 4, status: "open", close_reason: null, closed_at: null, protocol: "tls", sni: "api.example.com" });
const rows = [session(), redirected, refused, open];

describe("sessionColumns", () => {
  it("gives the cells of a plain session", () => {
    expect(sessionColumns(session(), T0)).toEqual({
      id: "1",
      time: formatTime(T0),
      client: "127.0.0.1:50000",
      version: "5",
      command: "connect",
      target: "example.com:80",
      via: "",
      status: "ok",
      up: "100 B",
      down: "2.0 KiB",
      duration: "1.23 s",
      tls: "",
      proto: "http example.com",
      tags: "",
    });
  });

  it("shows a redirect as requested → actual, and tags as key=value", () => {
    const cells = sessionColumns(redirected, T0);
    expect(cells.target).toBe("example.com:80 → 10.0.0.1:8080");
    expect(cells.tags).toBe("rule=lab env=dev");
  });

  it("shows a failure as its reply, a denial and a pre-reply failure in words", () => {
    expect(sessionColumns(refused, T0).status).toBe("05 refused");
    expect(sessionColumns(session({ status: "denied", reply: 2 }), T0).status).toBe("denied 02 not allowed");
    expect(sessionColumns(session({ status: "denied", reply: null }), T0).status).toBe("denied");
    expect(sessionColumns(session({ status: "failed", reply: null, close_reason: "protocol-error" }), T0).status).toBe("failed (protocol-error)");
    expect(sessionColumns(session({ version: "4", status: "failed", reply: 5 }), T0).status).toBe("91 refused");
    expect(sessionColumns(session({ status: "interrupted", close_reason: "interrupted", closed_at: null }), T0)).toMatchObject({
      status: "interrupted",
      duration: "?",
    });
  });

  it("counts an open session's duration up to now", () => {
    expect(sessionColumns(open, T0 + 5_000).duration).toBe("5.00 s");
    expect(sessionColumns(open, T0 + 125_000).duration).toBe("2m 05s");
  });

  it("shows IPv6 clients in brackets and a session without a request as dashes", () => {
    const early = session({
      client_host: "::1",
      version: null,
      command: null,
      requested_host: null,
      requested_port: null,
      target_host: null,
      reply: null,
      status: "failed",
      close_reason: "handshake-timeout",
      protocol: null,
      sni: null,
    });
    expect(sessionColumns(early, T0)).toMatchObject({
      client: "[::1]:50000",
      version: "-",
      command: "-",
      target: "-",
      status: "failed (handshake-timeout)",
      proto: "",
    });
  });

  it("colours by status: failed, denied and interrupted alike, open apart", () => {
    expect(rows.map(sessionTone)).toEqual(["ok", "ok", "failed", "open"]);
    expect(sessionTone(session({ status: "denied" }))).toBe("failed");
    expect(sessionTone(session({ status: "interrupted" }))).toBe("failed");
  });
});

describe("SessionList", () => {
  it("draws a header and one line per row, oldest at the top, the selection marked", () => {
    const { lastFrame } = render(<SessionList rows={rows} selectedId={3} width={100} height={10} now={T0 + 5_000} />);
    const lines = plain(lastFrame()).split("\n");
    expect(lines[0]).toMatch(/^ {2}ID +TIME +.*TARGET +STATUS/);
    expect(lines[1]).toMatch(/^ {3}1 /);
    expect(lines[2]).toContain("example.com:80 → 10.0.0.1:8080");
    expect(lines[2]).toContain("rule=la");
    expect(lines[3]).toMatch(/^> +3 .*05 refused/);
    expect(lines[4]).toMatch(/open .*5\.00 s tls api\./);
    expect(lines.filter((l) => l.startsWith(">"))).toHaveLength(1);
    // The list keeps its height, so the status bar stays put.
    expect(lines).toHaveLength(10);
  });

  it("draws only height - 1 rows", () => {
    const { lastFrame } = render(<SessionList rows={rows} selectedId={undefined} width={100} height={3} now={T0} />);
    expect(plain(lastFrame()).split("\n")).toHaveLength(3);
    expect(plain(lastFrame())).not.toContain("05 refused");
  });

  it("never exceeds the width nor wraps, at any width", () => {
    const wide = session({
      id: 123456,
      client_host: "2001:db8:85a3::8a2e:370:7334",
      requested_host: "a-very-long-subdomain.of-a-very-long-domain-name.example.com",
      target_host: "another-very-long-host-name.internal.example.net",
      tags: '{"a":"1","bee":"a long tag value that goes on","日本":"語"}',
      protocol: "tls",
      sni: "a-very-long-subdomain.of-a-very-long-domain-name.example.com",
      bytes_down_received: 123_456_789,
    });
    const all = [...rows, wide];
    for (let width = 1; width <= 100; width += width < 30 ? 1 : 3) {
      const { lastFrame, unmount } = render(<SessionList rows={all} selectedId={123456} width={width} height={all.length + 1} now={T0} />);
      const lines = plain(lastFrame()).split("\n");
      expect(lines, `width ${width}`).toHaveLength(all.length + 1);
      for (const line of lines) expect(displayWidth(line), `width ${width}: ${line}`).toBeLessThanOrEqual(width);
      unmount();
    }
    for (let width = 1; width <= 240; width += 7) {
      const { header, lines } = sessionListLines(all, 123456, width, T0);
      for (const line of [header, ...lines]) expect(displayWidth(line)).toBeLessThanOrEqual(width);
    }
  });

  it("truncates target, protocol and tags first, then drops the least useful columns", () => {
    const cells = rows.map((s) => sessionColumns(s, T0));
    const keys = (width: number) => layoutColumns(cells, width).map((c) => c.key);
    expect(keys(200)).toEqual(["id", "time", "client", "version", "command", "target", "status", "up", "down", "duration", "proto", "tags"]);
    expect(keys(100)).toEqual(expect.arrayContaining(["id", "time", "target", "status", "tags"]));
    expect(keys(40)).toContain("target");
    expect(keys(40)).toContain("status");
    // The target keeps enough room for a redirect at 100 columns.
    expect(layoutColumns(cells, 100).find((c) => c.key === "target")!.width).toBe("example.com:80 → 10.0.0.1:8080".length);
  });

  it("leaves out columns no row fills", () => {
    const cells = [sessionColumns(session({ protocol: null, sni: null }), T0)];
    expect(layoutColumns(cells, 200).map((c) => c.key)).not.toContain("tags");
    expect(layoutColumns(cells, 200).map((c) => c.key)).not.toContain("proto");
    expect(layoutColumns(cells, 200).map((c) => c.key)).not.toContain("via");
  });
});

describe("the upstream marker (VIA)", () => {
  const proxied = session({ id: 5, route: '["socks5h://10.0.0.2:1080","http://proxy.corp:3128"]' });
  const oneHop = session({ id: 6, route: '["http://[2001:db8::1]:3128"]' });

  it("is the first hop as host:port, +N for the rest; nothing when direct or the column holds no hop", () => {
    expect(viaMarker(proxied)).toBe("10.0.0.2:1080+1");
    expect(viaMarker(oneHop)).toBe("[2001:db8::1]:3128");
    expect(viaMarker(session())).toBe("");
    expect(viaMarker(session({ route: "[]" }))).toBe("");
    expect(viaMarker(session({ route: "{" }))).toBe("");
    // Hostile text from a crafted file is made safe in the cell.
    expect(sessionColumns(session({ route: '["http://\\u001b[2J:1"]' }), T0).via).toBe("\\x1b[2J:1");
  });

  it("shows after the target when a row on screen went through an upstream, and goes early when narrow", () => {
    const { header, lines } = sessionListLines([session(), proxied], undefined, 200, T0);
    expect(header).toMatch(/TARGET +VIA +STATUS/);
    expect(lines[1]).toMatch(/example\.com:80 +10\.0\.0\.2:1080\+1 +ok/);
    // The direct row has an empty cell: its status lines up under STATUS.
    expect(lines[0]!.indexOf(" ok ")).toBe(lines[1]!.indexOf(" ok "));
    const cells = [session(), proxied].map((s) => sessionColumns(s, T0));
    const keys = (width: number) => layoutColumns(cells, width).map((c) => c.key);
    expect(keys(200)).toContain("via");
    // Narrow: VIA goes after the version and the command, before the client.
    let dropped = 0;
    for (let width = 20; width <= 200; width++) {
      const shown = keys(width);
      if (shown.includes("via")) expect(shown, `at ${width}`).toContain("client");
      if (!shown.includes("via")) {
        dropped++;
        expect(shown, `at ${width}`).not.toContain("command");
        expect(shown, `at ${width}`).not.toContain("version");
      }
    }
    expect(dropped).toBeGreaterThan(0);
    // And there is a width where it has gone while the client stays.
    expect([...Array(181).keys()].map((i) => keys(20 + i)).some((shown) => shown.includes("client") && !shown.includes("via"))).toBe(true);
    expect(keys(200)).toEqual(["id", "time", "client", "version", "command", "target", "via", "status", "up", "down", "duration", "proto"]);
  });
});
