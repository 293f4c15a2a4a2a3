/**
 * The TUI's two ways in, loaded only when a terminal UI is wanted (Ink is slow to import).
 *
 * `socksmith run` on a terminal: the proxy with the TUI attached. Log lines cannot go to the
 * terminal under Ink, so they feed the status bar; the TUI reads the capture file the recorder
 * writes (WAL lets one writer and readers work at once). Quitting the TUI stops the proxy.
 * The TUI reads the capture on the relay's thread, so it reads in bounded pages (detail-window.ts)
 * and exports asynchronously (export-session.ts): opening a multi-GB session does not stall relaying.
 */
import { render } from "ink";
import { formatEndpoint } from "../engine/index.js";
import { CaptureReader } from "../store/reader.js";
import { App } from "../tui/app.js";
import type { LiveNote, LiveStatus } from "../tui/types.js";
import { fileReplay, liveReplay } from "./tui-replay.js";
import { startProxy, type RunningProxy, type RunOptions, type Started } from "./proxy.js";

/** Which status-bar note a log line is (see ../tui/notes.ts for how long each shows). */
export type NoteKind = "info" | "warning" | "addonError" | "error";

/**
 * A log line as the TUI's status bar shows it: by its level, never by its words. `info:` lines
 * (an addon's ctx.log, "addon x loaded") are information; `error: addon …` lines are addon errors
 * (a hook failed, a reload failed); other `error:` lines are the proxy's own problems; `warn:`
 * lines and WARNING notices are warnings; other notices are information. JSON log lines
 * (--log-format json) are read by their level. Signal notices are left out (the TUI is closing).
 */
export function noteOf(line: string): { kind: NoteKind; text: string } | undefined {
  if (/^(SIGINT|SIGTERM)/.test(line)) return undefined;
  let level: string | undefined;
  let text = line;
  const prefixed = /^(info|warn|error): /.exec(line);
  if (prefixed !== null) {
    level = prefixed[1];
    text = line.slice(prefixed[0].length);
  } else if (line.startsWith("{")) {
    try {
      const parsed = JSON.parse(line) as { level?: unknown; message?: unknown };
      if (typeof parsed.message === "string") {
        text = parsed.message;
        level = typeof parsed.level === "string" ? parsed.level : undefined;
      }
    } catch {
      // Not JSON after all: a notice.
    }
  }
  switch (level) {
    case "error":
      return { kind: text.startsWith("addon ") ? "addonError" : "error", text };
    case "warn":
      return { kind: "warning", text };
    default:
      return { kind: /^WARNING\b/.test(text) ? "warning" : "info", text };
  }
}

/** The running proxy's figures and its latest notes, as the status bar reads them (on every poll). */
export function liveStatus(
  proxy: Pick<RunningProxy, "bound" | "sessionCount" | "addons" | "serverReplay" | "tlsDistrusted">,
  bytesPerSecond: number,
  notes: Partial<Record<NoteKind, LiveNote>>,
): LiveStatus {
  return {
    listen: proxy.bound.map(formatEndpoint),
    open: proxy.sessionCount,
    bytesPerSecond,
    addons: proxy.addons,
    tlsDistrusted: proxy.tlsDistrusted(),
    ...(proxy.serverReplay === undefined ? {} : { serverReplay: proxy.serverReplay }),
    ...(notes.addonError === undefined ? {} : { lastAddonError: notes.addonError }),
    ...(notes.error === undefined ? {} : { lastError: notes.error }),
    ...(notes.warning === undefined ? {} : { lastWarning: notes.warning }),
    ...(notes.info === undefined ? {} : { lastInfo: notes.info }),
  };
}

export async function runWithTui(options: RunOptions, started: Started): Promise<void> {
  const notes: Partial<Record<NoteKind, LiveNote>> = {};
  const proxy = await startProxy(
    { ...options, quiet: true },
    {
      out: () => {},
      err: (line) => {
        const note = noteOf(line);
        if (note !== undefined) notes[note.kind] = { text: note.text, at: Date.now() };
      },
    },
  );
  const reader = new CaptureReader(proxy.captureFile!);
  let rate = 0;
  let last = { at: Date.now(), bytes: proxy.bytesSeen() };
  const sampler = setInterval(() => {
    const now = { at: Date.now(), bytes: proxy.bytesSeen() };
    rate = ((now.bytes - last.bytes) * 1000) / Math.max(1, now.at - last.at);
    last = now;
  }, 1000);
  const live = (): LiveStatus => liveStatus(proxy, rate, notes);
  const app = render(
    <App source={reader} live={live} follow replay={liveReplay(reader, proxy)} {...(proxy.intercept === undefined ? {} : { intercept: proxy.intercept })} />,
    { exitOnCtrlC: true },
  );
  // A signal (SIGTERM) stops the proxy through the usual path; quitting the TUI stops it here.
  const signalled = started(proxy, options).then(() => {
    app.unmount();
    return "signal" as const;
  });
  const how = await Promise.race([app.waitUntilExit().then(() => "quit" as const), signalled]);
  clearInterval(sampler);
  if (how === "quit") await proxy.stop(options.graceMs);
  reader.close();
}

/** `socksmith tui FILE`: the TUI over a capture file, read-only; resolves when it is closed. */
export async function browseWithTui(reader: CaptureReader, follow: boolean): Promise<void> {
  const app = render(<App source={reader} follow={follow} replay={fileReplay(reader)} />, { exitOnCtrlC: true });
  await app.waitUntilExit();
}
