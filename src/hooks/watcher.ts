/**
 * Hot reload for one addon: watches every file its bundle used and, when one changes, loads the
 * next version and offers it to the caller (transactional: build, evaluate, validate, then swap;
 * on failure the running version stays).
 *
 * Contract:
 * - Watched: the `inputs` of the running version: the entry and every file it imports, wherever
 *   they live. A successful reload replaces the set with the new version's inputs (an import
 *   added or removed); a failed one leaves it as it was.
 * - Saves of every usual kind count: in-place writes, atomic saves (write a temp file, rename it
 *   over) and vim-style saves (rename away, write anew). A write is acted on once the file has
 *   been stable for 50 ms. A deleted file is a failed reload; recreating it reloads again.
 * - Never fails open (issue 11 part 4). An in-place save passes through states that bundle fine
 *   (an empty file exports nothing; a truncated one may parse), so what a load read is checked:
 *   - the watched files are fingerprinted before and after each load; a load during which one
 *     changed is discarded and the files are loaded again;
 *   - a load that is doubtful (it failed, or it lacks a hook the running version has, or it
 *     exports nothing at all) is acted on only if it began from *settled* files (fingerprints
 *     unchanged over SETTLE_MS) and they stayed so through the load; otherwise the watcher waits
 *     for them to settle and loads again. So a genuine edit that removes a hook takes effect
 *     about SETTLE_MS later; a half-saved file is never swapped in or reported as broken;
 *   - a version that exports nothing (no hook, no name, no options: an empty file) is a failed
 *     reload (INVALID_EXPORT), not an addon that allows everything.
 * - One load at a time, and no load while the caller swaps a version in (see `reloaded`).
 *   Changes that arrive meanwhile are coalesced into one more load, so the last edit always wins
 *   and listeners never see a stale version.
 * - `reloaded(next, previous)` gets a validated version numbered `previous.version + 1`; by the
 *   time it is called, `current` is `next`. Swapping it in (onLoad, onDispose) is the caller's
 *   job: the watcher runs no hook. It may return a promise: the watcher waits for it (so swaps
 *   never overlap and each version is disposed once), and if it resolves `false` the version
 *   was refused (say, its onLoad threw): `current` is `previous` again. `failed(error, current)`
 *   gets the AddonError; `current` stays. A listener must not throw (if one does, or its promise
 *   rejects, that is rethrown as an uncaught exception).
 * - After `close()` resolves, no event is delivered, nothing is watched and no swap is under way.
 */
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { watch, type FSWatcher } from "chokidar";
import { AddonError, loadAddon, type LoadedAddon } from "./loader.js";

export interface AddonWatcherEvents {
  /**
   * A new version validated and ready to swap in. A promise holds further loads until it
   * settles; `false` means the caller refused the version (`current` goes back to `previous`).
   */
  reloaded(next: LoadedAddon, previous: LoadedAddon): void | Promise<boolean | void>;
  /** The edit is broken; `current` keeps running. */
  failed(error: AddonError, current: LoadedAddon): void;
  /**
   * The file system watcher itself failed (e.g. the OS limit on watches). Optional: without
   * it such errors are dropped, and watching goes on where it still can.
   */
  watchFailed?(error: Error, current: LoadedAddon): void;
}

/**
 * How long after a load the watched files are checked once more against what they were when
 * the load began. chokidar 5 drops some vim-style saves made within ~50 ms of its previous
 * event (measured: 7 of 20 back-to-back saves, none of in-place or atomic ones); a formatter
 * that rewrites the file just after the editor saved does exactly that. The check turns such
 * a dropped save into a reload instead of a silently stale addon.
 */
const RECHECK_AFTER_MS = 300;

/**
 * How long the watched files must stay unchanged before a doubtful load (failed, fewer hooks,
 * nothing exported) counts. Longer than chokidar's 50 ms stability wait and than any file
 * timestamp granularity (a jiffy, ≤ 10 ms), so a write after it always changes the fingerprint.
 */
export const SETTLE_MS = 150;

/** What identifies a file's content without reading it: inode, size, modification time. */
type Fingerprints = ReadonlyMap<string, string>;

export class AddonWatcher {
  /**
   * Resolves once the initial files are being watched; an edit made before then may go
   * unnoticed. Files added by a reload are watched a few milliseconds after `reloaded`.
   */
  readonly ready: Promise<void>;

  #current: LoadedAddon;
  readonly #settings: Readonly<Record<string, string>> | undefined;
  readonly #events: AddonWatcherEvents;
  readonly #files: FSWatcher;
  #watched: Set<string>;
  /** The load in progress, if any. */
  #loading: Promise<void> | undefined;
  /** A change arrived during the load in progress. */
  #stale = false;
  /** The watched files as they were when the last completed load began. */
  #loadedFrom: Fingerprints = new Map();
  #recheck: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(loaded: LoadedAddon, settings: Readonly<Record<string, string>> | undefined, events: AddonWatcherEvents) {
    this.#current = loaded;
    this.#settings = settings;
    this.#events = events;
    this.#watched = new Set(loaded.inputs);
    this.#files = watch([...this.#watched], {
      ignoreInitial: true,
      // chokidar fires after the first write of a burst: wait for
      // the file to hold still instead, so the last write of a save is what gets loaded.
      awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
      // Turns the unlink + add of an atomic or vim-style save into one change.
      atomic: true,
    });
    this.ready = new Promise((resolve) => this.#files.once("ready", () => resolve()));
    this.#files.on("all", (event) => {
      if (event === "change" || event === "add" || event === "unlink") this.#changed();
    });
    this.#files.on("error", (error) => {
      if (!this.#closed) this.#events.watchFailed?.(error instanceof Error ? error : new Error(String(error)), this.#current);
    });
  }

  /** The running version: the one loaded first, then the last successful reload. */
  get current(): LoadedAddon {
    return this.#current;
  }

  /** Stops watching; waits for a load in progress (its result is dropped). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#recheck);
    await this.#files.close();
    await this.#loading;
  }

  #changed(): void {
    if (this.#closed) return;
    clearTimeout(this.#recheck);
    if (this.#loading !== undefined) {
      this.#stale = true;
      return;
    }
    this.#loading = this.#reload()
      // A listener that throws is the caller's bug: surface it as such, not as a rejection
      // that would also make close() fail.
      .catch((err: unknown) =>
        process.nextTick(() => {
          throw err;
        }),
      )
      .finally(() => {
        this.#loading = undefined;
      });
  }

  /**
   * Loads until a load is trustworthy (see the contract), reports it, waits for the caller's
   * swap, and goes again if files changed meanwhile.
   */
  async #reload(): Promise<void> {
    /** Fingerprints the files held for SETTLE_MS, when the watcher waited for that. */
    let settled: Fingerprints | undefined;
    for (;;) {
      this.#stale = false;
      const from = await fingerprints(this.#watched);
      // A late change event for a save this watcher already loaded: the files are exactly
      // what the current version came from, so loading them again would only run onLoad and
      // onDispose once more (and report a reload that changed nothing).
      if (samePrints(from, this.#loadedFrom)) return;
      const fromSettled = settled !== undefined && samePrints(from, settled);
      settled = undefined;
      let outcome: LoadedAddon | AddonError = await loadAddon(this.#current.file, this.#settings, this.#current.version + 1).catch((err: unknown) =>
        err instanceof AddonError ? err : new AddonError("LOAD_FAILED", this.#current.file, String(err), { cause: err }),
      );
      if (this.#closed) return;
      const to = await fingerprints(this.#watched);
      if (this.#closed) return;
      if (!(outcome instanceof AddonError) && exportsNothing(outcome)) {
        outcome = new AddonError("INVALID_EXPORT", outcome.file, "exports nothing: no hooks, name or options (an empty or half-saved file?)");
      }
      // Changed during the load (what was read may be any mix of before and after), or doubtful
      // and not known to come from files at rest: let them settle, then load again.
      const changed = this.#stale || !samePrints(from, to);
      if (changed || (!fromSettled && (outcome instanceof AddonError || dropsHooks(this.#current, outcome)))) {
        settled = await this.#settle(to);
        if (settled === undefined) return; // closed
        continue;
      }

      const previous = this.#current;
      if (outcome instanceof AddonError) {
        this.#events.failed(outcome, previous);
      } else {
        this.#watch(outcome.inputs);
        this.#current = outcome;
        const swapped = await this.#events.reloaded(outcome, previous);
        if (swapped === false && this.#current === outcome) {
          this.#current = previous;
          this.#watch(previous.inputs);
        }
      }
      if (this.#closed) return;
      // What the version now current (or refused) was read from: a change event that arrived
      // meanwhile loads again only if the files differ from it.
      this.#loadedFrom = from;
      if (!this.#stale) {
        clearTimeout(this.#recheck);
        this.#recheck = setTimeout(() => void this.#verify(), RECHECK_AFTER_MS).unref();
        return;
      }
    }
  }

  /**
   * Waits until the watched files hold still for SETTLE_MS, starting from `print`; returns
   * their fingerprints then, or undefined once closed.
   */
  async #settle(print: Fingerprints): Promise<Fingerprints | undefined> {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      if (this.#closed) return undefined;
      const now = await fingerprints(this.#watched);
      if (this.#closed) return undefined;
      if (samePrints(now, print)) return now;
      print = now;
    }
  }

  /** Reloads if a watched file differs from when the last load began (a dropped event). */
  async #verify(): Promise<void> {
    const before = this.#loadedFrom;
    // Files new to this version were not fingerprinted; their watches are fresh.
    const now = await fingerprints([...before.keys()].filter((file) => this.#watched.has(file)));
    if (this.#closed || this.#loading !== undefined || before !== this.#loadedFrom) return;
    for (const [file, print] of now) {
      if (before.get(file) !== print) return this.#changed();
    }
  }

  /** Makes the watched set exactly `inputs`. */
  #watch(inputs: readonly string[]): void {
    const next = new Set(inputs);
    const added = inputs.filter((file) => !this.#watched.has(file));
    const removed = [...this.#watched].filter((file) => !next.has(file));
    if (removed.length > 0) this.#files.unwatch(removed);
    if (added.length > 0) this.#files.add(added);
    this.#watched = next;
  }
}

function samePrints(a: Fingerprints, b: Fingerprints): boolean {
  if (a.size !== b.size) return false;
  for (const [file, print] of a) if (b.get(file) !== print) return false;
  return true;
}

/** `next` lacks a hook `running` has: the kind of version a half-saved file produces. */
function dropsHooks(running: LoadedAddon, next: LoadedAddon): boolean {
  return running.hooks.some((hook) => !next.hooks.includes(hook));
}

/** Nothing at all: what an empty file (or one cut before its export) evaluates to. */
function exportsNothing(loaded: LoadedAddon): boolean {
  return loaded.hooks.length === 0 && Object.keys(loaded.addon).length === 0;
}

async function fingerprints(files: Iterable<string>): Promise<Fingerprints> {
  const print = (s: Stats | undefined) => (s === undefined ? "missing" : `${s.ino}:${s.size}:${s.mtimeMs}`);
  const entries = await Promise.all([...files].map(async (file) => [file, print(await stat(file).catch(() => undefined))] as const));
  return new Map(entries);
}
