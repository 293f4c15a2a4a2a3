/** The filter bar, the status bar, the help overlay and the empty and error states. */
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { BINDINGS } from "../../../src/tui/keys.js";
import type { CaptureStats, LiveStatus } from "../../../src/tui/types.js";
import { EmptyState, ErrorState, FilterBar, HelpOverlay, StatusBar, caretOffset, statusLines } from "../../../src/tui/views/index.js";
import { plain } from "./fixtures.js";

describe("FilterBar", () => {
  it("shows the / prompt and the text", () => {
    const { lastFrame } = render(<FilterBar text="host:*.example.com" cursor={18} />);
    // The cursor is an inverse cell after the text (a trailing space without colour).
    expect(plain(lastFrame()).trimEnd()).toBe("/host:*.example.com");
  });

  it("puts a caret under the error's column and the message below", () => {
    const { lastFrame } = render(<FilterBar text="port:80 hots:x" cursor={14} error={{ column: 9, message: "unknown field 'hots' — did you mean 'host'?" }} />);
    const [line, caret, message] = plain(lastFrame()).split("\n");
    expect(line!.trimEnd()).toBe("/port:80 hots:x");
    expect(caret!.indexOf("^")).toBe(line!.indexOf("hots"));
    expect(message).toBe("unknown field 'hots' — did you mean 'host'?");
  });

  it("puts the caret past the end for something missing at the end", () => {
    const { lastFrame } = render(<FilterBar text="port:" cursor={5} error={{ column: 6, message: "port: needs a value" }} />);
    expect(plain(lastFrame()).split("\n")[1]).toBe("      ^");
  });

  it("keeps the caret under its column after control and wide characters", () => {
    expect(caretOffset("a\tb", 3)).toBe(3);
    expect(caretOffset("日本 x", 4)).toBe(1 + 5);
    const { lastFrame } = render(<FilterBar text={"\x1b[2Jx y"} cursor={0} error={{ column: 7, message: "bad" }} />);
    const [line, caret] = plain(lastFrame()).split("\n");
    expect(line).not.toContain("\x1b");
    expect(caret!.indexOf("^")).toBe(line!.indexOf("y"));
  });
});

const stats: CaptureStats = { sessions: 120, open: 3, failed: 4, denied: 1, bytes: 1_000_000, fileBytes: 1_234_567 };
const live: LiveStatus = { listen: ["127.0.0.1:1080", "[::1]:1080"], open: 2, bytesPerSecond: 12_800, addons: ["tagger.ts", "thrower.ts"] };

describe("StatusBar", () => {
  it("when browsing a file says so, read-only, with its size and counts", () => {
    const { lastFrame } = render(<StatusBar file="old.db" stats={stats} shown={120} follow={false} />);
    const frame = plain(lastFrame());
    expect(frame.split("\n")).toHaveLength(1);
    expect(frame).toMatch(/^browsing old\.db \(read-only, 1\.2 MiB\) {2}3 open \/ 120 sessions {2}4 failed {2}1 denied/);
    expect(frame).toMatch(/\? keys$/);
    expect(frame).not.toContain("FOLLOW");
    expect(frame).not.toContain("listening");
  });

  it("when live shows listen addresses, live open count, throughput, capture file, addons and FOLLOW", () => {
    const lines = statusLines({ file: "socksmith.db", stats, live, shown: 120, follow: true });
    expect(lines).toHaveLength(1);
    const text = lines[0]!.map((s) => s.text).join("");
    expect(text).toBe(
      "listening 127.0.0.1:1080, [::1]:1080  FOLLOW  2 open / 120 sessions  4 failed  1 denied  12.5 KiB/s  capture socksmith.db (1.2 MiB)  addons tagger.ts, thrower.ts",
    );
    expect(lines[0]!.find((s) => s.text === "FOLLOW")).toMatchObject({ inverse: true });
    expect(lines[0]!.find((s) => s.text === "4 failed")).toMatchObject({ color: "red" });
    const { lastFrame } = render(<StatusBar file="socksmith.db" stats={stats} live={live} shown={120} follow />);
    expect(plain(lastFrame())).toMatch(/^listening 127\.0\.0\.1:1080, \[::1\]:1080 {2}FOLLOW/);
    // The line is longer than the terminal: cut, with the hint still at the right.
    expect(plain(lastFrame())).toMatch(/… \? keys$/);
  });

  it("says when the proxy answers from a recording (server replay), and shows the last warning in yellow", () => {
    const missed = "session #2: server replay: no recording of localhost:80 left: denied with 0x02";
    const lines = statusLines({
      file: "mock.db",
      stats,
      live: { ...live, serverReplay: "api.db", lastWarning: { text: missed, at: 0 } },
      shown: 1,
      follow: false,
    });
    expect(lines[1]).toEqual([{ text: `warning: ${missed}`, color: "yellow" }]);
    expect(lines[0]!.map((s) => s.text).join("")).toMatch(/^listening 127\.0\.0\.1:1080, \[::1\]:1080 {2}serving from api\.db {2}2 open/);
    expect(lines[0]!.find((s) => s.text === "serving from api.db")).toMatchObject({ color: "magenta" });
  });

  it("shows the active filter with the number shown", () => {
    const { lastFrame } = render(<StatusBar file="x.db" stats={stats} shown={7} filter="status:failed" follow={false} />);
    expect(plain(lastFrame())).toMatch(/^browsing x\.db \(read-only, 1\.2 MiB\) {2}filter status:failed \(7 shown\) {2}3 open/);
  });

  it("shows a message and the last addon error (file:line visible) on a second line", () => {
    const { lastFrame } = render(
      <StatusBar
        file="x.db"
        stats={stats}
        live={{
          ...live,
          lastAddonError: { text: "/home/me/project/addons/thrower.ts:5:3: boom", at: 0 },
          lastError: { text: "capture stopped: disk full", at: 0 },
        }}
        shown={1}
        follow={false}
        message="exported session 3 to ./socksmith-3.json"
      />,
    );
    const second = plain(lastFrame()).split("\n")[1];
    expect(second).toMatch(/^exported session 3 to \.\/socksmith-3\.json {2}addon error: thrower\.ts:5:3: boom {2}error: capture stopped/);
    const lines = statusLines({ file: "x.db", stats, live: { ...live, lastAddonError: { text: "a.ts:1:1: x", at: 0 } }, shown: 1, follow: false });
    expect(lines[1]).toEqual([{ text: "addon error: a.ts:1:1: x", color: "red" }]);
  });
});

describe("HelpOverlay", () => {
  it("lists every binding of the keys table in a box", () => {
    const { lastFrame } = render(<HelpOverlay bindings={BINDINGS} />);
    const frame = plain(lastFrame());
    expect(frame).toMatch(/^╭─+╮/);
    for (const b of BINDINGS) expect(frame).toMatch(new RegExp(`│ ${b.keys.replace(/[?]/g, "\\?")} +${b.description.replace(/[().*?]/g, "\\$&")}`));
  });
});

describe("EmptyState and ErrorState", () => {
  it("says where to point a client when nothing was captured yet", () => {
    expect(plain(render(<EmptyState kind="no-sessions" listen={["127.0.0.1:1080"]} />).lastFrame())).toContain(
      "no sessions yet — point a client at 127.0.0.1:1080",
    );
    expect(plain(render(<EmptyState kind="no-sessions" />).lastFrame())).toContain("no sessions in this capture yet");
  });

  it("says the filter matches nothing", () => {
    expect(plain(render(<EmptyState kind="no-match" />).lastFrame())).toContain("no sessions match the filter");
  });

  it("boxes an error message", () => {
    const frame = plain(render(<ErrorState message={"cannot read x.db:\nfile is not a database"} />).lastFrame());
    expect(frame).toContain("│ error");
    expect(frame).toContain("│ cannot read x.db:");
    expect(frame).toContain("│ file is not a database");
  });
});
