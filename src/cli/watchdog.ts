/**
 * The watchdog (issue 11 part 8): what happens when an addon hook never returns.
 *
 * Hooks run on the main thread, synchronously when they answer at once (that is what keeps the
 * relay fast). A hook stuck in `while (true) {}` therefore blocks the event loop: no socket is
 * served, no timer fires, and the main thread's SIGINT/SIGTERM listeners never run, so the
 * proxy could not even be stopped. JavaScript cannot be interrupted from inside its own thread,
 * so the watchdog lives in a worker thread (watchdog-worker.ts) that shares a few integers with
 * the main thread (layout in watchdog-shared.ts):
 * - `activity` is the dispatcher's HookActivity: `enter`/`leave` write which addon, hook and
 *   session is running (four Int32Array writes, no allocation, no call out: a few ns per call);
 * - a heartbeat timer (HEARTBEAT_MS, unref'd) proves the event loop turns;
 * - the main thread counts the SIGINT/SIGTERM it sees, so the worker can tell a signal the
 *   main thread is handling (graceful shutdown, as before) from one it never will.
 * What the worker does with a block: see watchdog-worker.ts. Why not run hooks where they can
 * be stopped (a worker per addon, or `vm` timeouts): every hook call would cross threads or
 * start a timer thread, which costs more per chunk than the relay itself, and sync answers
 * could no longer stay sync. The watchdog costs nothing per call beyond those writes.
 *
 * Without the worker's bundle (dist/watchdog-worker.js, built by scripts/build.mjs) there is no
 * watchdog: `startWatchdog` returns undefined and the proxy runs as before.
 */
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { HookActivity } from "../hooks/dispatcher.js";
import {
  BEAT,
  HEARTBEAT_MS,
  SIGNAL_NAMES,
  WATCHED_SIGNALS,
  createWatchdogState,
  hookActivity,
  type WatchdogData,
  type WatchdogMessage,
  type WatchdogReport,
  type WatchedAddon,
} from "./watchdog-shared.js";

export type { WatchedAddon } from "./watchdog-shared.js";

export interface WatchdogOptions {
  /** Log a blocked event loop once it has lasted this long (default 2000 ms). */
  readonly reportAfterMs?: number;
  /** End the process once a block has lasted this long; 0 or absent = never (a debugger may be paused). */
  readonly exitAfterMs?: number;
  /** How long the main thread has to see a SIGINT/SIGTERM before the watchdog ends the process (default 2000 ms). */
  readonly signalWaitMs?: number;
  /** The format of the lines it writes to stderr (as the proxy's own log). */
  readonly format: "text" | "json";
  /** The proxy's log, for what can wait until the main thread runs again (a block has ended). */
  readonly log?: (level: "info" | "warn", message: string, fields: Record<string, unknown>) => void;
}

export interface Watchdog {
  /** Pass to the dispatcher (`DispatcherOptions.activity`). */
  readonly activity: HookActivity;
  /** The addons in dispatcher order; call at start and after every swap. */
  addons(addons: readonly WatchedAddon[]): void;
  /** Sessions are shown as `base + engine id` (the capture's ids). */
  sessionBase(base: number): void;
  /** Stops the heartbeat, the signal counting and the worker. Idempotent. */
  stop(): Promise<void>;
}

/** dist/watchdog-worker.js: next to the CLI bundle, or built from the sources (tests). */
function workerFile(): URL | undefined {
  const beside = new URL("./watchdog-worker.js", import.meta.url);
  if (existsSync(beside)) return beside;
  const built = new URL("../../dist/watchdog-worker.js", import.meta.url);
  return existsSync(built) ? built : undefined;
}

export function startWatchdog(options: WatchdogOptions): Watchdog | undefined {
  const file = workerFile();
  if (file === undefined) return undefined;
  const state = createWatchdogState();
  const data: WatchdogData = {
    state: state.buffer as SharedArrayBuffer,
    reportAfterMs: options.reportAfterMs ?? 2_000,
    exitAfterMs: options.exitAfterMs ?? 0,
    signalWaitMs: options.signalWaitMs ?? 2_000,
    format: options.format,
  };
  // No inherited execArgv: flags meant for the CLI's own entry (say --input-type) can stop a worker from starting.
  const worker = new Worker(file, { workerData: data, execArgv: [] });
  worker.unref(); // never what keeps the process alive
  worker.on("error", (err) => process.stderr.write(`error: watchdog stopped: ${err.message}\n`));
  worker.on("message", (report: WatchdogReport) => {
    switch (report.type) {
      case "unblocked":
        options.log?.("warn", `the event loop runs again after ${(report.blockedMs / 1000).toFixed(1)} s blocked`, { blockedMs: report.blockedMs });
        break;
      default: {
        const never: never = report.type;
        return never;
      }
    }
  });

  const heartbeat = setInterval(() => Atomics.add(state, BEAT, 1), HEARTBEAT_MS);
  heartbeat.unref();
  // Counting only: the proxy's own listeners (main.ts) decide what a signal does.
  const counters = SIGNAL_NAMES.map((signal) => {
    const count = () => void Atomics.add(state, WATCHED_SIGNALS[signal], 1);
    process.on(signal, count);
    return () => process.off(signal, count);
  });

  const post = (message: WatchdogMessage) => worker.postMessage(message);
  let stopped: Promise<void> | undefined;
  return {
    activity: hookActivity(state),
    addons: (addons) => post({ type: "addons", addons }),
    sessionBase: (base) => post({ type: "session-base", base }),
    stop() {
      stopped ??= (async () => {
        clearInterval(heartbeat);
        for (const off of counters) off();
        await worker.terminate();
      })();
      return stopped;
    },
  };
}
