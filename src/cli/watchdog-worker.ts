/**
 * The watchdog worker's entry (bundled to dist/watchdog-worker.js; see watchdog.ts for why it
 * exists). It runs on its own thread and event loop, so it keeps running while an addon's
 * `while (true) {}` holds the main thread:
 * - every HEARTBEAT_MS it reads the main thread's heartbeat; once it has not moved for
 *   `reportAfterMs` it writes one line to stderr naming the hook that holds the thread (addon,
 *   hook, where the hook is written, session, file), again every REPEAT_MS while it lasts; when
 *   the loop runs again it tells the main thread, which logs it as the proxy logs anything;
 * - it receives SIGINT and SIGTERM itself (the main thread's listeners cannot run while it is
 *   blocked): a signal the main thread has not seen within `signalWaitMs` ends the process;
 * - with `exitAfterMs`, a block that lasts that long ends the process.
 * Writes go straight to fd 2 with writeSync: a worker's process.stderr is relayed through the
 * main thread, which is exactly what is blocked. Ending the process from a worker: process.exit
 * here would only end this thread, so the process is killed with SIGKILL (exit status 137), the
 * one way to stop a thread that runs JavaScript and never yields.
 */
import { writeSync } from "node:fs";
import { constants } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import {
  BEAT,
  HEARTBEAT_MS,
  SIGNAL_NAMES,
  WATCHED_SIGNALS,
  lastHookCall,
  type WatchdogData,
  type WatchdogMessage,
  type WatchdogReport,
  type WatchedAddon,
  type WatchedSignal,
} from "./watchdog-shared.js";

/** While a block lasts, how often it is reported again. */
const REPEAT_MS = 10_000;

if (parentPort === null) throw new Error("watchdog-worker must run in a worker thread");
const data = workerData as WatchdogData;
const state = new Int32Array(data.state);
let addons: readonly WatchedAddon[] = [];
let sessionBase = 0;

parentPort.on("message", (message: WatchdogMessage) => {
  switch (message.type) {
    case "addons":
      addons = message.addons;
      break;
    case "session-base":
      sessionBase = message.base;
      break;
    default: {
      const never: never = message;
      return never;
    }
  }
});

// --- output ------------------------------------------------------------------------------------

function log(level: "info" | "error", message: string, fields: Record<string, unknown> = {}): void {
  const line = data.format === "json" ? JSON.stringify({ event: "log", level, message, ...fields }) : `${level}: ${message}`;
  try {
    writeSync(2, `${line}\n`);
  } catch {
    // stderr closed: nothing to tell anyone.
  }
}

/** The synchronous hook call in progress, or the last one, as words and as log fields. */
function running(): { text: string; fields: Record<string, unknown> } {
  const call = lastHookCall(state);
  if (call === undefined) return { text: "before any addon hook ran", fields: { inHook: false } };
  const { active, addon: index, session } = call;
  const hook = call.hook ?? "a hook";
  const addon = addons[index];
  // -1: a version's onLoad, run before it takes its place.
  const name = addon?.name ?? (index >= 0 ? `#${index + 1}` : "(a version being loaded)");
  const where = addon?.hooks[hook as keyof WatchedAddon["hooks"]];
  const shown = session >= 0 ? sessionBase + session : undefined;
  const fields = {
    addon: name,
    hook,
    ...(shown === undefined ? {} : { session: shown }),
    ...(addon === undefined ? {} : { file: addon.file }),
    ...(where === undefined ? {} : { location: where }),
  };
  if (!active) {
    return {
      text: `not in a synchronous addon hook (an addon's async code, or socksmith itself; the last hook called was addon ${name}'s ${hook})`,
      fields: { inHook: false, ...fields },
    };
  }
  const at = where ?? addon?.file;
  return {
    text: `in addon ${name}'s ${hook}${at === undefined ? "" : ` (${at})`}${shown === undefined ? "" : ` for session #${shown}`}`,
    fields: { inHook: true, ...fields },
  };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function exit(why: string, blockedMs: number, extra: Record<string, unknown>): never {
  const { text, fields } = running();
  const message = `${why} while the event loop has been blocked for ${seconds(blockedMs)} ${text}: exiting now`;
  log("error", message, { ...fields, blockedMs: Math.round(blockedMs), ...extra });
  process.kill(process.pid, "SIGKILL");
  // Not reached: SIGKILL cannot be caught.
  throw new Error("SIGKILL did not end the process");
}

// --- signals -----------------------------------------------------------------------------------

/** Signals received here, per signal, and when the oldest one the main thread has not seen arrived. */
const received: Record<WatchedSignal, number> = { SIGINT: 0, SIGTERM: 0 };
const waitingSince: Partial<Record<WatchedSignal, number>> = {};

function checkSignals(now: number, blocked: number): void {
  for (const signal of SIGNAL_NAMES) {
    const since = waitingSince[signal];
    if (since === undefined) continue;
    if (Atomics.load(state, WATCHED_SIGNALS[signal]) >= received[signal]) {
      delete waitingSince[signal]; // the main thread has it: its own shutdown takes over
    } else if (now - since >= data.signalWaitMs) {
      exit(`${signal} received`, blocked, { signal });
    }
  }
}

interface SignalHandle {
  onsignal: (signum: number) => void;
  start(signum: number): number;
}

/**
 * Worker threads get no `process.on("SIGTERM")` (Node delivers signals to the main thread's
 * listeners only). Node's own signal handle does work on any thread's event loop: libuv's
 * process-wide handler wakes every loop that has a handle for the signal, so the main thread's
 * listeners still run as before. It is reached through process.binding (deprecated, no
 * warning printed); where it is gone, blocks are still reported, and --max-block still ends
 * them.
 */
function listenForSignals(): boolean {
  const quiet = process.noDeprecation;
  try {
    process.noDeprecation = true;
    const binding = (process as unknown as { binding(name: string): { Signal?: new () => SignalHandle } }).binding("signal_wrap");
    const Signal = binding.Signal;
    if (typeof Signal !== "function") return false;
    for (const signal of SIGNAL_NAMES) {
      const handle = new Signal();
      handle.onsignal = () => {
        received[signal]++;
        waitingSince[signal] ??= performance.now();
      };
      if (handle.start(constants.signals[signal]) !== 0) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    process.noDeprecation = quiet;
  }
}

const signalsWork = listenForSignals();

// --- the heartbeat -----------------------------------------------------------------------------

let lastBeat = Atomics.load(state, BEAT);
let lastChange = performance.now();
/** When the current block was last reported (undefined: not reported). */
let reportedAt: number | undefined;

function blockedFor(now: number): number {
  const beat = Atomics.load(state, BEAT);
  if (beat !== lastBeat) {
    // Told through the main thread (it runs again), so it goes where the proxy's log goes (the TUI too).
    if (reportedAt !== undefined) parentPort!.postMessage({ type: "unblocked", blockedMs: Math.round(now - lastChange) } satisfies WatchdogReport);
    lastBeat = beat;
    lastChange = now;
    reportedAt = undefined;
  }
  // One heartbeat interval is normal: the beat is due, not late.
  return Math.max(0, now - lastChange - HEARTBEAT_MS);
}

setInterval(() => {
  const now = performance.now();
  const blocked = blockedFor(now);
  if (data.exitAfterMs > 0 && blocked >= data.exitAfterMs) exit(`--max-block ${seconds(data.exitAfterMs)} reached`, blocked, {});
  if (blocked >= data.reportAfterMs && (reportedAt === undefined || now - reportedAt >= REPEAT_MS)) {
    reportedAt = now;
    const { text, fields } = running();
    const stops = signalsWork ? "SIGINT/SIGTERM still stop the process" : "SIGINT/SIGTERM cannot stop it on this Node.js (kill -9 can)";
    const limit = data.exitAfterMs > 0 ? `; it exits after ${seconds(data.exitAfterMs)}` : "";
    const message = `the event loop has been blocked for ${seconds(blocked)} ${text}: nothing else runs until it returns (${stops}${limit})`;
    log("error", message, { ...fields, blockedMs: Math.round(blocked) });
  }
  checkSignals(now, blocked);
}, HEARTBEAT_MS);
