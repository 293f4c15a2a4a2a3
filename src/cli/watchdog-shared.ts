/**
 * What the main thread and the watchdog worker share (issue 11 part 8): the layout of the
 * shared Int32Array, the hook codes, and the messages. No imports with side effects: this file
 * is bundled into both.
 *
 * The main thread writes, the worker only reads:
 * - BEAT: incremented every HEARTBEAT_MS by a main-thread timer; a value that stops changing
 *   means the main event loop is blocked.
 * - ACTIVE / ADDON / HOOK / SESSION: the synchronous hook call in progress (ACTIVE = 1), written
 *   by `HookActivity.enter` and cleared by `leave`. ADDON is the addon's index in the
 *   dispatcher (-1 when unknown), HOOK an index in HOOK_CODES (-1 before the first call),
 *   SESSION the engine's session id
 *   (-1 for none: onLoad, onDispose). They stay as they were after `leave`: the last hook called.
 * - ACK_SIGINT / ACK_SIGTERM: how many of each signal the main thread's own listener has seen.
 *   The worker counts the signals it receives; one the main thread has not seen within
 *   `signalWaitMs` was sent to a blocked process.
 */
import type { HookName } from "../hooks/api.js";
import type { HookActivity } from "../hooks/dispatcher.js";
import { HOOK_NAMES } from "../hooks/hook-names.js";

export const BEAT = 0;
export const ACTIVE = 1;
export const ADDON = 2;
export const HOOK = 3;
export const SESSION = 4;
export const ACK_SIGINT = 5;
export const ACK_SIGTERM = 6;
export const SLOTS = 7;

/** How often the main thread's heartbeat ticks (and the worker looks). */
export const HEARTBEAT_MS = 100;

/** Hook names by code; the code is the index (the one hook list; it has no side effects, so the worker may bundle it). */
export { HOOK_NAMES as HOOK_CODES } from "../hooks/hook-names.js";

/** The signals the watchdog acts on, with their ACK slot. */
export const WATCHED_SIGNALS = { SIGINT: ACK_SIGINT, SIGTERM: ACK_SIGTERM } as const;
export type WatchedSignal = keyof typeof WATCHED_SIGNALS;
/** The keys of WATCHED_SIGNALS, as a list. */
export const SIGNAL_NAMES = Object.keys(WATCHED_SIGNALS) as WatchedSignal[];

/** A fresh state for the main thread to share: no hook has run yet (ADDON, HOOK, SESSION -1), BEAT and the ACKs 0. */
export function createWatchdogState(): Int32Array {
  const state = new Int32Array(new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT));
  state[ADDON] = -1;
  state[HOOK] = -1;
  state[SESSION] = -1;
  return state;
}

const HOOK_CODE = Object.fromEntries(HOOK_NAMES.map((hook, code) => [hook, code])) as Record<HookName, number>;

/** The main thread's writes of the hook call in progress: the dispatcher's HookActivity over `state`. */
export function hookActivity(state: Int32Array): HookActivity {
  return {
    // Plain stores, not Atomics.store (a full fence each: ~23 ns per hook call against ~4 ns,
    // measured): the worker reads them only after the thread has been stuck for seconds.
    enter(addon, hook, session) {
      state[ADDON] = addon;
      state[HOOK] = HOOK_CODE[hook];
      state[SESSION] = session ?? -1;
      state[ACTIVE] = 1;
    },
    leave() {
      state[ACTIVE] = 0;
    },
  };
}

/** What the worker reads of the hook call in progress (`active`) or the last one. */
export interface HookCall {
  readonly active: boolean;
  /** The addon's index in the dispatcher; -1: a version's onLoad, run before it takes its place. */
  readonly addon: number;
  /** undefined for a code that is no hook (not written by `hookActivity`). */
  readonly hook: HookName | undefined;
  /** The engine's session id; -1 for none. */
  readonly session: number;
}

/** The worker's read of what `hookActivity` wrote; undefined before any hook has run. */
export function lastHookCall(state: Int32Array): HookCall | undefined {
  const active = Atomics.load(state, ACTIVE) === 1;
  const code = state[HOOK]!;
  if (code < 0) return undefined;
  return { active, addon: state[ADDON]!, hook: HOOK_NAMES[code], session: state[SESSION]! };
}

/** What the worker is started with (`workerData`). */
export interface WatchdogData {
  readonly state: SharedArrayBuffer;
  /** Log a block once it has lasted this long. */
  readonly reportAfterMs: number;
  /** Exit the process once a block has lasted this long; 0 = never. */
  readonly exitAfterMs: number;
  /** How long the main thread has to see a SIGINT/SIGTERM before the worker acts on it. */
  readonly signalWaitMs: number;
  readonly format: "text" | "json";
}

/** One loaded addon, as block reports name it. */
export interface WatchedAddon {
  readonly name: string;
  readonly file: string;
  /** Where each of its hooks is written (`file.ts:line:column`), when known. */
  readonly hooks: Readonly<Partial<Record<HookName, string>>>;
}

/** Main thread → worker. */
export type WatchdogMessage =
  /** The addons in dispatcher order (sent at start and after every swap). */
  | { readonly type: "addons"; readonly addons: readonly WatchedAddon[] }
  /** Session ids are shown as `base + engine id` (the capture's numbering). */
  | { readonly type: "session-base"; readonly base: number };

/** Worker → main thread: a block that was reported has ended (the main thread logs it). */
export type WatchdogReport = { readonly type: "unblocked"; readonly blockedMs: number };
