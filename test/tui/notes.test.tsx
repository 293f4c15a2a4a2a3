/**
 * Issue 11 part 7: the status bar shows an addon's log lines as information, not as "addon
 * error:", and notes go away after a while or on the next key; hook failures stay errors, and
 * errors about the proxy's state stay until they change.
 */
import { render } from "ink-testing-library";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { noteOf } from "../../src/cli/tui-runner.js";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";
import { INFO_MS, ISSUE_MS, visibleNotes } from "../../src/tui/notes.js";
import type { LiveStatus } from "../../src/tui/types.js";
import { statusLines } from "../../src/tui/views/index.js";
import { plain } from "./views/fixtures.js";

describe("noteOf: a log line as a status note, by its level", () => {
  it("reads an addon's ctx.log and load notices as information, whatever their words", () => {
    expect(noteOf("info: [tagger] #3 addon saw an error page")).toEqual({ kind: "info", text: "[tagger] #3 addon saw an error page" });
    expect(noteOf("info: addon tagger loaded from ./tagger.ts: onRequest")).toEqual({ kind: "info", text: "addon tagger loaded from ./tagger.ts: onRequest" });
    expect(noteOf('{"event":"log","level":"info","message":"[x] hello addon error","addon":"x"}')).toEqual({ kind: "info", text: "[x] hello addon error" });
    expect(noteOf("socksmith.db: marked 2 sessions of an earlier run as interrupted")?.kind).toBe("info");
  });

  it("reads hook and reload failures as addon errors, the proxy's own as errors, warn and WARNING as warnings", () => {
    expect(noteOf("error: addon thrower: onData threw at thrower.ts:5:3: boom (session #2)")).toEqual({
      kind: "addonError",
      text: "addon thrower: onData threw at thrower.ts:5:3: boom (session #2)",
    });
    expect(noteOf("error: ERROR: capture stopped: disk full.")?.kind).toBe("error");
    expect(noteOf("warn: session #2: server replay: no recording")?.kind).toBe("warning");
    expect(noteOf("WARNING: x.db has no successful CONNECT or UDP session to answer from")?.kind).toBe("warning");
    expect(noteOf("SIGTERM: stopping")).toBeUndefined();
  });
});

describe("visibleNotes and the status bar", () => {
  const base: LiveStatus = { listen: ["127.0.0.1:1080"], open: 0, bytesPerSecond: 0, addons: ["tagger.ts"] };
  const stats = { sessions: 0, open: 0, failed: 0, denied: 0, bytes: 0, fileBytes: 0 };

  it("shows information without an error label, and hook failures as addon errors", () => {
    const lines = statusLines({ file: "x.db", stats, live: { ...base, lastInfo: { text: "[tagger] #3 hello", at: 0 } }, shown: 0, follow: false });
    expect(lines[1]).toEqual([{ text: "[tagger] #3 hello", color: "cyan" }]);
    const failed = statusLines({
      file: "x.db",
      stats,
      live: { ...base, lastAddonError: { text: "addon t: onData threw at t.ts:1:1: x", at: 0 } },
      shown: 0,
      follow: false,
    });
    expect(failed[1]![0]).toMatchObject({ text: "addon error: addon t: onData threw at t.ts:1:1: x", color: "red" });
  });

  it("drops information after INFO_MS, warnings and addon errors after ISSUE_MS, all of them once a key came after; keeps errors", () => {
    const live: LiveStatus = {
      ...base,
      lastInfo: { text: "i", at: 1000 },
      lastWarning: { text: "w", at: 1000 },
      lastAddonError: { text: "a", at: 1000 },
      lastError: { text: "capture stopped", at: 1000 },
    };
    expect(Object.keys(visibleNotes(live, 1001, 0))).toEqual(expect.arrayContaining(["lastInfo", "lastWarning", "lastAddonError", "lastError"]));
    const later = visibleNotes(live, 1000 + INFO_MS, 0);
    expect(later.lastInfo).toBeUndefined();
    expect(later.lastWarning).toBeDefined();
    const much = visibleNotes(live, 1000 + ISSUE_MS, 0);
    expect([much.lastWarning, much.lastAddonError]).toEqual([undefined, undefined]);
    expect(much.lastError).toEqual({ text: "capture stopped", at: 1000 });
    const keyed = visibleNotes(live, 1500, 1200);
    expect([keyed.lastInfo, keyed.lastWarning, keyed.lastAddonError, keyed.lastError?.text]).toEqual([undefined, undefined, undefined, "capture stopped"]);
    // A note newer than the key shows.
    expect(visibleNotes({ ...live, lastInfo: { text: "new", at: 1300 } }, 1500, 1200).lastInfo?.text).toBe("new");
  });
});

describe("the App's notes", () => {
  const root = mkdtempSync(join(tmpdir(), "socksmith-notes-"));
  const file = join(root, "notes.db");
  let reader: CaptureReader;
  beforeAll(() => {
    openCapture(file).close();
    reader = new CaptureReader(file);
  });
  afterAll(() => {
    reader.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("shows an addon's log line as information, clears it on the next key, and shows an old one never", async () => {
    let live: LiveStatus = {
      listen: ["127.0.0.1:1080"],
      open: 0,
      bytesPerSecond: 0,
      addons: ["tagger.ts"],
      lastInfo: { text: "[tagger] #1 hello", at: Date.now() },
    };
    const ui = render(<App source={reader} live={() => live} pollMs={20} />);
    await vi.waitFor(() => expect(plain(ui.lastFrame())).toContain("[tagger] #1 hello"));
    expect(plain(ui.lastFrame())).not.toContain("error");
    ui.stdin.write("j");
    await vi.waitFor(() => expect(plain(ui.lastFrame())).not.toContain("[tagger] #1 hello"));
    // A hook failure after the key shows, as an addon error.
    live = { ...live, lastAddonError: { text: "addon t: onData threw at t.ts:1:1: boom", at: Date.now() + 1 } };
    await vi.waitFor(() => expect(plain(ui.lastFrame())).toContain("addon error: addon t: onData threw at t.ts:1:1: boom"));
    // An information line from long ago is not shown at all.
    const { lastAddonError: _shown, ...rest } = live;
    live = { ...rest, lastInfo: { text: "stale", at: Date.now() - INFO_MS - 1 } };
    await new Promise((r) => setTimeout(r, 100));
    expect(plain(ui.lastFrame())).not.toContain("stale");
    ui.unmount();
  });
});
