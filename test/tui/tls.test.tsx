/**
 * Issue 13 in the TUI: the status bar counts the hosts whose client distrusts the socksmith CA
 * (live only), the list marks TLS sessions (intercepted, passed through, failed) from one query
 * per window, and `e` exports the session's tls row like `show --json`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { liveStatus } from "../../src/cli/tui-runner.js";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";
import type { CaptureStats, LiveStatus, SessionSource, TlsRow } from "../../src/tui/types.js";
import { SessionList, sessionListLines, statusLines, tlsMarker } from "../../src/tui/views/index.js";
import { displayWidth } from "../../src/tui/views/text.js";
import { T0, plain, session } from "./views/fixtures.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-tui-tls-"));
const file = join(root, "tls.db");
let reader: CaptureReader;

/** Sessions 1 (plain HTTP), 2 (intercepted), 3 (passed through), 4 (failed: the client rejected the CA). */
beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const insert = db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, reply, status, close_reason, bytes_up_received, bytes_down_received)
     VALUES (?, 1, ?, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', 'connect', 'domain', ?, 443, ?, 443, 0, 'ok', 'completed', 18, 11)`,
  );
  const tls = db.prepare(
    `INSERT INTO tls (session_id, at, intercepted, decided_by, sni, alpn_offered, versions_offered, client_version, client_alpn, failure_side, failure_code,
       failure_message) VALUES (?, ?, ?, ?, ?, '["h2","http/1.1"]', '["TLSv1.3"]', ?, ?, ?, ?, ?)`,
  );
  const t = Date.UTC(2026, 10, 22, 8, 0, 0);
  const hosts = ["plain.example", "mitm.example", "pass.example", "pinned.example"];
  hosts.forEach((host, i) => insert.run(i + 1, i + 1, t + i * 1000, t + i * 1000 + 20, host, host));
  tls.run(2, t + 1001, 1, "default", "mitm.example", "TLSv1.3", "h2", null, null, null);
  tls.run(3, t + 2001, 0, "filter", "pass.example", null, null, null, null, null);
  tls.run(
    4,
    t + 3001,
    1,
    "default",
    "pinned.example",
    null,
    null,
    "client",
    "client-rejected",
    "the client does not trust the socksmith CA for pinned.example",
  );
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

const tick = () => new Promise((r) => setTimeout(r, 60));
const settled = (check: () => void) => vi.waitFor(check, { timeout: 15_000, interval: 20 });

const stats: CaptureStats = { sessions: 4, open: 0, failed: 0, denied: 0, bytes: 100, fileBytes: 4096 };
const live: LiveStatus = { listen: ["127.0.0.1:1080"], open: 1, bytesPerSecond: 2048, addons: [] };
const barText = (props: Parameters<typeof statusLines>[0]) => statusLines(props).map((line) => line.map((s) => s.text).join(""));

describe("the status bar counts the hosts that distrust the CA", () => {
  it("says how many, in yellow, before the throughput (which a narrow terminal cuts first)", () => {
    const [first] = statusLines({ file: "x.db", stats, live: { ...live, tlsDistrusted: 2 }, shown: 4, follow: false });
    expect(first!.map((s) => s.text).join("")).toBe(
      "listening 127.0.0.1:1080  1 open / 4 sessions  2 hosts distrust the CA  2.0 KiB/s  capture x.db (4.0 KiB)",
    );
    expect(first!.find((s) => s.text === "2 hosts distrust the CA")).toMatchObject({ color: "yellow" });
    expect(barText({ file: "x.db", stats, live: { ...live, tlsDistrusted: 1 }, shown: 4, follow: false })[0]).toContain("  1 host distrusts the CA  ");
  });

  it("says nothing while no host distrusts it, nor without --tls, nor when browsing a file", () => {
    for (const status of [{ ...live, tlsDistrusted: 0 }, live]) {
      expect(barText({ file: "x.db", stats, live: status, shown: 4, follow: false }).join("\n")).not.toMatch(/distrust/);
    }
    expect(barText({ file: "x.db", stats, shown: 4, follow: false }).join("\n")).not.toMatch(/distrust/);
  });

  it("reads the running proxy's count on every poll (tui-runner's liveStatus)", () => {
    let distrusted = 0;
    const proxy = { bound: [{ host: "127.0.0.1", port: 1080 }], sessionCount: 3, addons: ["a.ts"], serverReplay: undefined, tlsDistrusted: () => distrusted };
    expect(liveStatus(proxy, 10, {})).toEqual({ listen: ["127.0.0.1:1080"], open: 3, bytesPerSecond: 10, addons: ["a.ts"], tlsDistrusted: 0 });
    distrusted = 2;
    expect(liveStatus(proxy, 10, { warning: { text: "w", at: 5 } })).toMatchObject({ tlsDistrusted: 2, lastWarning: { text: "w", at: 5 } });
  });

  it("shows in the running TUI and follows the count", async () => {
    let distrusted = 1;
    const ui = render(<App source={reader} live={() => ({ ...live, tlsDistrusted: distrusted })} pollMs={20} exportDir={root} />);
    await settled(() => expect(plain(ui.lastFrame())).toContain("1 host distrusts the CA"));
    distrusted = 3;
    await settled(() => expect(plain(ui.lastFrame())).toContain("3 hosts distrust the CA"));
    ui.unmount();
  });
});

const row = (overrides: Partial<TlsRow>): TlsRow => ({
  session_id: 1,
  at: T0,
  intercepted: 1,
  decided_by: "default",
  sni: "example.com",
  alpn_offered: "[]",
  versions_offered: "[]",
  client_version: null,
  client_cipher: null,
  client_alpn: null,
  upstream_version: null,
  upstream_cipher: null,
  upstream_alpn: null,
  cert_subject: null,
  cert_issuer: null,
  cert_sans: null,
  cert_valid_from: null,
  cert_valid_to: null,
  cert_fingerprint: null,
  verification: null,
  failure_side: null,
  failure_code: null,
  failure_message: null,
  ...overrides,
});

describe("the session list marks TLS sessions", () => {
  it("as mitm, pass or fail, in the filter's three states", () => {
    expect(tlsMarker(row({ intercepted: 1 }))).toBe("mitm");
    expect(tlsMarker(row({ intercepted: 0 }))).toBe("pass");
    expect(tlsMarker(row({ intercepted: 1, failure_code: "upstream-certificate" }))).toBe("fail");
    expect(tlsMarker(row({ intercepted: 0, failure_code: "client-rejected" }))).toBe("fail");
    expect(tlsMarker(undefined)).toBe("");
  });

  it("in a TLS column before PROTO, present only when a row on screen has a tls row, within any width", () => {
    const rows = [session({ id: 1 }), session({ id: 2, protocol: "tls", sni: "api.example.com" })];
    const tls = new Map([[2, row({ session_id: 2, intercepted: 0 })]]);
    const { header, lines } = sessionListLines(rows, 1, 160, T0, tls);
    expect(header).toMatch(/ DUR TLS {2}PROTO/);
    expect(lines[1]).toMatch(/ pass tls api\.example\.com$/);
    expect(lines[0]).toMatch(/1\.23 s {6}http example\.com$/);
    expect(sessionListLines(rows, 1, 160, T0).header).not.toContain("TLS");
    for (let width = 1; width <= 160; width += 3) {
      const { lastFrame, unmount } = render(<SessionList rows={rows} selectedId={2} width={width} height={4} now={T0} tls={tls} />);
      for (const line of plain(lastFrame()).split("\n")) expect(displayWidth(line), `width ${width}: ${line}`).toBeLessThanOrEqual(width);
      unmount();
    }
  });

  it("reads the tls rows of the visible window in one query per poll, never one session at a time", async () => {
    const windows: number[][] = [];
    let single = 0;
    const source: SessionSource = Object.create(reader, {
      tlsFor: { value: (ids: readonly number[]) => (windows.push([...ids]), reader.tlsFor(ids)) },
      tls: { value: (id: number) => (single++, reader.tls(id)) },
    });
    const ui = render(<App source={source} follow pollMs={20} exportDir={root} />);
    await settled(() => expect(plain(ui.lastFrame())).toMatch(/pinned\.example:443 +ok .* fail/));
    const frame = plain(ui.lastFrame()).split("\n");
    expect(frame[0]).toMatch(/ TLS$/);
    expect(frame.find((l) => l.includes("plain.example"))).toMatch(/ms$/);
    expect(frame.find((l) => l.includes("mitm.example"))).toMatch(/ mitm$/);
    expect(frame.find((l) => l.includes("pass.example"))).toMatch(/ pass$/);
    expect(windows.length).toBeGreaterThan(0);
    for (const ids of windows) expect(ids).toEqual([1, 2, 3, 4]);
    expect(single).toBe(0);
    ui.unmount();
  });
});

describe("e exports the session's tls row", () => {
  it("as show --json does: the tls object, or null for a session without one", async () => {
    const ui = render(<App source={reader} follow pollMs={20} exportDir={root} />);
    await tick();
    ui.stdin.write("e");
    await settled(() => expect(ui.lastFrame()).toContain("exported session 4"));
    const pinned = JSON.parse(readFileSync(join(root, "socksmith-4.json"), "utf8"));
    expect(pinned.tls).toMatchObject({
      intercepted: true,
      decidedBy: "default",
      hello: { sni: "pinned.example", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3"] },
      failure: { side: "client", code: "client-rejected" },
    });
    expect(Object.keys(pinned).slice(-4)).toEqual(["tls", "events", "chunks", "datagrams"]);
    for (const key of ["k", "k", "k", "e"]) {
      ui.stdin.write(key);
      await tick();
    }
    await settled(() => expect(ui.lastFrame()).toContain("exported session 1"));
    expect(JSON.parse(readFileSync(join(root, "socksmith-1.json"), "utf8")).tls).toBeNull();
    ui.unmount();
  });
});
