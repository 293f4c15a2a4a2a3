/**
 * The TUI's two ways in, loaded only when a terminal UI is wanted (Ink is slow to import).
 *
 * `socksmith run` on a terminal: the proxy with the TUI attached. Log lines cannot go to the
 * terminal under Ink, so they feed the status bar; the TUI reads the capture file the recorder
 * writes (WAL lets one writer and readers work at once). Quitting the TUI stops the proxy.
 */
import { render } from "ink";
import { formatEndpoint } from "../engine/index.js";
import { CaptureReader } from "../store/reader.js";
import { App } from "../tui/app.js";
import type { LiveStatus } from "../tui/types.js";
import { fileReplay, liveReplay } from "./tui-replay.js";
import { startProxy, type RunOptions, type Started } from "./proxy.js";

export async function runWithTui(options: RunOptions, started: Started): Promise<void> {
  let lastError: string | undefined;
  let lastWarning: string | undefined;
  let lastAddonError: string | undefined;
  const proxy = await startProxy(
    { ...options, quiet: true },
    {
      out: () => {},
      err: (line) => {
        if (/^(SIGINT|SIGTERM)/.test(line)) return;
        if (/addon/.test(line)) lastAddonError = line.replace(/^error: /, "");
        else if (line.startsWith("warn: ")) lastWarning = line.slice("warn: ".length);
        else lastError = line.replace(/^error: /, "");
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
  const live = (): LiveStatus => ({
    listen: proxy.bound.map(formatEndpoint),
    open: proxy.sessionCount,
    bytesPerSecond: rate,
    addons: proxy.addons,
    ...(proxy.serverReplay === undefined ? {} : { serverReplay: proxy.serverReplay }),
    ...(lastAddonError === undefined ? {} : { lastAddonError }),
    ...(lastError === undefined ? {} : { lastError }),
    ...(lastWarning === undefined ? {} : { lastWarning }),
  });
  const app = render(<App source={reader} live={live} follow replay={liveReplay(reader, proxy)} />, { exitOnCtrlC: true });
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
