/**
 * Security: strings and bytes from the wire (hosts, user names, SNI, tags, payload) and from
 * addons never reach the terminal raw: no ESC, no other C0/C1 control, no bidi override.
 */
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import type { DetailTab, ViewMode } from "../../../src/tui/types.js";
import {
  EmptyState,
  ErrorState,
  FilterBar,
  HelpOverlay,
  SessionDetail,
  SessionList,
  StatusBar,
  detailLines,
  sessionColumns,
} from "../../../src/tui/views/index.js";
import { T0, chunk, datagram, event, hasRawControl, plain, session } from "./fixtures.js";

// Retitle the window, clear the screen, a CSI as one C1 byte, a bidi override, a BEL.
const EVIL = "x\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\x00";
const evilBytes = Buffer.from(`GET /${EVIL} HTTP/1.1\r\n`, "utf8");

const hostile = session({
  client_host: `10.0.0.1${EVIL}`,
  requested_host: `host${EVIL}.example`,
  target_host: `redirect${EVIL}`,
  remote_host: `remote${EVIL}`,
  bound_host: `bound${EVIL}`,
  user: `user${EVIL}`,
  auth_method: "userpass",
  sni: `sni${EVIL}`,
  protocol: "tls",
  protocol_info: JSON.stringify({ alpn: [`h2${EVIL}`] }),
  tags: JSON.stringify({ [`k${EVIL}`]: `v${EVIL}` }),
  reply_code: `CODE${EVIL}`,
  errno: `E${EVIL}`,
  reply: 5,
  status: "failed",
  close_reason: `reason${EVIL}`,
  close_errno: `CE${EVIL}`,
  attempts: JSON.stringify([`a${EVIL}`]),
  requested_type: `t${EVIL}`,
});

function expectSafe(frame: string | undefined) {
  const text = plain(frame);
  expect(text.length).toBeGreaterThan(0);
  expect(hasRawControl(text), JSON.stringify(text)).toBe(false);
}

describe("no control character reaches the frame", () => {
  it("in the list", () => {
    expectSafe(render(<SessionList rows={[hostile]} selectedId={hostile.id} width={400} height={3} now={T0} />).lastFrame());
    for (const cell of Object.values(sessionColumns(hostile, T0))) expect(hasRawControl(cell)).toBe(false);
    expect(sessionColumns(hostile, T0).target).toContain("hostx\\x1b]0;pwned\\x07");
  });

  it("in every tab and mode of the detail view", () => {
    const chunks = [
      chunk({ data: evilBytes }),
      chunk({ seq: 1, direction: "down", data: evilBytes, verdict: "replace", sent: evilBytes }),
      chunk({ seq: 2, verdict: "inject", data: Buffer.alloc(0), size: 0, sent: evilBytes }),
    ];
    const events = [event({ message: `boom${EVIL}\nsecond${EVIL}`, location: `a.ts${EVIL}:1`, addon: `add${EVIL}`, hook: "onData", code: `c${EVIL}` })];
    for (const tab of ["overview", "events", "stream"] as DetailTab[]) {
      for (const mode of ["auto", "text", "hex"] as ViewMode[]) {
        const props = { session: hostile, events, chunks, datagrams: [], tab, mode, scroll: 0, width: 300, height: 80 };
        expectSafe(render(<SessionDetail {...props} />).lastFrame());
        for (const line of detailLines(props)) expect(hasRawControl(line.text), line.text).toBe(false);
      }
    }
    const udp = session({ command: "udp" });
    const datagrams = [
      datagram({ data: evilBytes, peer_host: `peer${EVIL}`, from_host: `from${EVIL}`, to_host: `to${EVIL}` }),
      datagram({ seq: 1, verdict: "dropped", reason: `r${EVIL}`, detail: `d${EVIL}`, sent: evilBytes }),
    ];
    expectSafe(
      render(
        <SessionDetail session={udp} events={[]} chunks={[]} datagrams={datagrams} tab="stream" mode="text" scroll={0} width={300} height={40} />,
      ).lastFrame(),
    );
  });

  it("shows the escapes readably instead", () => {
    const lines = detailLines({
      session: hostile,
      events: [],
      chunks: [chunk({ data: evilBytes })],
      datagrams: [],
      tab: "stream",
      mode: "text",
      width: 300,
    }).map((l) => l.text);
    expect(lines[1]).toBe("   GET /x\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b31m\\xe2\\x80\\xaeevil\\x00 HTTP/1.1\\r");
    const overview = detailLines({ session: hostile, events: [], chunks: [], datagrams: [], tab: "overview", mode: "auto", width: 300 }).map((l) => l.text);
    expect(overview.find((l) => l.startsWith("auth:"))).toContain("userx\\u001b]0;pwned\\u0007");
    expect(overview.find((l) => l.startsWith("detected:"))).toContain("sni" + "x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u{202e}evil\\x00");
  });

  it("in the status bar, filter bar, help and error boxes", () => {
    const stats = { sessions: 1, open: 0, failed: 1, denied: 0, bytes: 0, fileBytes: 0 };
    expectSafe(
      render(
        <StatusBar
          file={`cap${EVIL}.db`}
          stats={stats}
          live={{
            listen: [`l${EVIL}`],
            open: 0,
            bytesPerSecond: 0,
            addons: [`a${EVIL}.ts`],
            lastAddonError: { text: `a.ts:1:1: ${EVIL}`, at: 0 },
            lastError: { text: `e${EVIL}`, at: 0 },
            lastInfo: { text: `i${EVIL}`, at: 0 },
            lastWarning: { text: `w${EVIL}`, at: 0 },
          }}
          filter={`host:${EVIL}`}
          shown={0}
          follow={false}
          message={`m${EVIL}`}
        />,
      ).lastFrame(),
    );
    expectSafe(render(<StatusBar file={`cap${EVIL}.db`} stats={stats} shown={0} follow={false} />).lastFrame());
    expectSafe(render(<FilterBar text={`host:${EVIL}`} cursor={3} error={{ column: 6, message: `bad ${EVIL}` }} />).lastFrame());
    expectSafe(render(<HelpOverlay bindings={[{ keys: `k${EVIL}`, description: `d${EVIL}` }]} />).lastFrame());
    expectSafe(render(<ErrorState message={`oops ${EVIL}\nline 2`} />).lastFrame());
    expectSafe(render(<EmptyState kind="no-sessions" listen={[`l${EVIL}`]} />).lastFrame());
  });

  it("even from a crafted capture file whose enum columns hold anything", () => {
    const crafted = session({ version: `5${EVIL}` as never, command: `connect${EVIL}` as never, status: `ok${EVIL}` as never, auth_method: `m${EVIL}` });
    const chunks = [chunk({ direction: `up${EVIL}` as never, verdict: `replace${EVIL}` as never, sent: Buffer.from("x") })];
    const events = [event({ kind: `kind${EVIL}` as never })];
    expectSafe(render(<SessionList rows={[crafted]} selectedId={undefined} width={300} height={3} now={T0} />).lastFrame());
    for (const tab of ["overview", "events", "stream"] as DetailTab[]) {
      expectSafe(
        render(
          <SessionDetail session={crafted} events={events} chunks={chunks} datagrams={[]} tab={tab} mode="auto" scroll={0} width={300} height={40} />,
        ).lastFrame(),
      );
    }
  });
});
