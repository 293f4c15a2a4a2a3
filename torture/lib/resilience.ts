/**
 * What the files and the disk do to a running proxy: an addon saved in place over and over
 * while traffic runs (reload storm), `kill -9` in the middle of a capture, and a capture file
 * that cannot grow (disk full, provoked with RLIMIT_FSIZE: `prlimit --fsize` with SIGXFSZ
 * ignored, so a write past the limit fails with EFBIG as on a full disk; no mount needed).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { MiB, runCli, sleep, startCli } from "./proxy-process.js";
import { echoThrough, tunnel, type Place } from "./scenarios.js";
import { echoServer, exactDownload, httpServer, pool } from "./servers.js";

/** An addon that denies one port and passes every chunk through onData; `version` and padding vary. */
function stormAddon(forbiddenPort: number, version: number): string {
  const padding = Array.from({ length: 200 }, (_, i) => `// ${version}:${i} ${"-".repeat(80)}`).join("\n");
  return [
    `// version ${version}`,
    `export default {`,
    `  name: "storm",`,
    `  onRequest: (r) => (r.port === ${forbiddenPort} ? { deny: 2 } : undefined),`,
    `  onData: (chunk) => (chunk.data.length < 0 ? { drop: true } : undefined),`,
    `};`,
    padding,
    ``,
  ].join("\n");
}

/**
 * Saves `text` in place the way a plain editor does: truncate, then write in two halves with a
 * turn of the event loop between, so a reader can see the file empty or half written.
 */
async function saveInPlace(file: string, text: string): Promise<void> {
  const fd = openSync(file, "w");
  try {
    const half = Math.floor(text.length / 2);
    writeSync(fd, text.slice(0, half));
    await new Promise((resolve) => setImmediate(resolve));
    writeSync(fd, text.slice(half));
  } finally {
    closeSync(fd);
  }
}

export interface StormRun {
  saves: number;
  reloads: number;
  /** Requests to the denied port, and how many got through (must be none). */
  forbiddenTried: number;
  forbiddenAllowed: number;
  downloads: number;
  downloadsExact: number;
  downloadMiB: number;
  alive: boolean;
  seconds: number;
}

/**
 * `saves` in-place saves of a deny-one-port addon, one every `everyMs`, while `downloads`
 * downloads of `size` bytes run (byte-exact?) and requests to the denied port keep coming.
 */
export async function reloadStorm(
  place: Place,
  opts: { saves: number; everyMs: number; downloads: number; size: number; parallel: number },
): Promise<StormRun> {
  const started = Date.now();
  const http = await httpServer();
  const forbidden = await echoServer();
  const file = join(place.cwd, "storm.ts");
  await saveInPlace(file, stormAddon(forbidden.port, 0));
  const proxy = await startCli(["-s", file], place);
  let forbiddenTried = 0;
  let forbiddenAllowed = 0;
  let storming = true;
  try {
    const storm = (async () => {
      for (let i = 1; i <= opts.saves; i++) {
        await saveInPlace(file, stormAddon(forbidden.port, i));
        await sleep(opts.everyMs);
      }
      storming = false;
    })();
    const probes = (async () => {
      while (storming) {
        forbiddenTried++;
        try {
          const s = await tunnel(proxy.port, forbidden.port, 5000);
          forbiddenAllowed++;
          s.destroy();
        } catch {
          // Denied: what must happen.
        }
        await sleep(5);
      }
    })();
    const results = await pool(opts.downloads, opts.parallel, () => exactDownload(proxy.port, http.port, opts.size));
    await storm;
    await probes;
    // The last save is what runs in the end: still denying.
    await sleep(1500);
    forbiddenTried++;
    await tunnel(proxy.port, forbidden.port, 5000).then(
      (s) => {
        forbiddenAllowed++;
        s.destroy();
      },
      () => {},
    );
    const reloads = proxy.stderr.filter((l) => /addon storm reloaded/.test(l)).length;
    return {
      saves: opts.saves,
      reloads,
      forbiddenTried,
      forbiddenAllowed,
      downloads: results.length,
      downloadsExact: results.filter((r) => r.ok).length,
      downloadMiB: (results.length * opts.size) / MiB,
      alive: proxy.alive(),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    storming = false;
    await proxy.stop();
    await http.close();
    await forbidden.close();
  }
}

export interface KillRun {
  /** `socksmith sessions FILE --json` after the kill: exit code and the sessions. */
  sessionsCode: number | string;
  sessions: Array<Record<string, unknown>>;
  /** Bytes each open tunnel had sent (and seen echoed) before the kill, and what the capture holds of them. */
  sentPerTunnel: number;
  capturedUp: number[];
  /** The next `run` on the file: its notice about interrupted sessions. */
  reopenNotice: string | undefined;
  /** The sessions' states after that run. */
  statesAfter: string[];
}

/**
 * Opens `tunnels` tunnels through a capturing proxy, echoes `bytes` through each, waits
 * `settleMs` (longer than the capture's flush interval), then SIGKILLs the proxy with the
 * tunnels still open. Reads the capture back with the CLI.
 */
export async function killMidCapture(place: Place, opts: { tunnels: number; bytes: number; settleMs: number }): Promise<KillRun> {
  const echo = await echoServer();
  const proxy = await startCli(["-q"], place);
  const open = [];
  try {
    for (let i = 0; i < opts.tunnels; i++) {
      const s = await tunnel(proxy.port, echo.port);
      s.on("error", () => {});
      open.push(s);
      for (let sent = 0; sent < opts.bytes; sent += 16 * 1024) await echoThrough(s, Buffer.alloc(Math.min(16 * 1024, opts.bytes - sent), 0x41 + i));
    }
    await sleep(opts.settleMs);
    proxy.child.kill("SIGKILL");
    await proxy.exit;
  } finally {
    for (const s of open) s.destroy();
    await echo.close();
  }
  const listed = await runCli(["sessions", "socksmith.db", "--json", "--all"], place.cwd);
  let sessions: Array<Record<string, unknown>> = [];
  try {
    sessions = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
  } catch {
    sessions = [];
  }
  const capturedUp: number[] = [];
  for (const s of sessions) {
    const shown = await runCli(["show", String(s.id), "socksmith.db", "--json"], place.cwd);
    try {
      const detail = JSON.parse(shown.stdout) as { chunks?: Array<{ direction: string; data: string }> };
      capturedUp.push((detail.chunks ?? []).filter((c) => c.direction === "up").reduce((n, c) => n + Buffer.from(c.data, "base64").length, 0));
    } catch {
      capturedUp.push(-1);
    }
  }
  // The next run on the same file marks what the killed run left open.
  const again = await startCli(["-q"], place);
  const reopenNotice = again.stderr.find((l) => /interrupted/.test(l));
  await again.stop();
  const after = await runCli(["sessions", "socksmith.db", "--json", "--all"], place.cwd);
  let statesAfter: string[] = [];
  try {
    statesAfter = (JSON.parse(after.stdout) as Array<Record<string, unknown>>).map((s) => String(s.state ?? s.status ?? s.reason ?? "?"));
  } catch {
    statesAfter = [`unreadable: ${after.stderr}`];
  }
  return { sessionsCode: listed.code, sessions, sentPerTunnel: opts.bytes, capturedUp, reopenNotice, statesAfter };
}

export interface DiskFullRun {
  limitBytes: number;
  downloads: number;
  downloadsExact: number;
  downloadMiB: number;
  /** The proxy's line about the capture failing. */
  captureError: string | undefined;
  alive: boolean;
  exitCode: number | string;
}

/**
 * The proxy under `prlimit --fsize=limit` (files it writes cannot grow past it: EFBIG, as on a
 * full disk) with capture on; `downloads` downloads of `size` bytes through it, in two rounds
 * (the second after the capture failed).
 */
export async function diskFull(place: Place, opts: { limitBytes: number; downloads: number; size: number }): Promise<DiskFullRun> {
  const http = await httpServer();
  // `trap '' XFSZ` is inherited through exec: the write fails with EFBIG instead of the signal
  // killing the process (the default action of SIGXFSZ).
  const wrapper = ["prlimit", `--fsize=${opts.limitBytes}`, "sh", "-c", `trap '' XFSZ; exec "$@"`, "sh"];
  const proxy = await startCli([], { ...place, wrapper });
  try {
    const first = await pool(Math.ceil(opts.downloads / 2), 2, () => exactDownload(proxy.port, http.port, opts.size));
    const deadline = Date.now() + 5000;
    let captureError: string | undefined;
    while (captureError === undefined && Date.now() < deadline) {
      captureError = proxy.stderr.find((l) => /capture/i.test(l) && /error|stopped|fail/i.test(l));
      await sleep(50);
    }
    const second = await pool(Math.floor(opts.downloads / 2), 2, () => exactDownload(proxy.port, http.port, opts.size));
    const all = [...first, ...second];
    const alive = proxy.alive();
    return {
      limitBytes: opts.limitBytes,
      downloads: all.length,
      downloadsExact: all.filter((r) => r.ok).length,
      downloadMiB: (all.length * opts.size) / MiB,
      captureError,
      alive,
      exitCode: await proxy.stop(),
    };
  } finally {
    await proxy.stop();
    await http.close();
  }
}
