/**
 * Hot reload for one addon: watches every file its bundle used and, when one changes, loads the
 * next version and offers it to the caller (STYLE.md 10: build, evaluate, validate, then swap;
 * on failure the running version stays).
 *
 * Contract:
 * - Watched: the `inputs` of the running version: the entry and every file it imports, wherever
 *   they live. A successful reload replaces the set with the new version's inputs (an import
 *   added or removed); a failed one leaves it as it was.
 * - Saves of every usual kind count: in-place writes, atomic saves (write a temp file, rename it
 *   over) and vim-style saves (rename away, write anew). A write is acted on once the file has
 *   been stable for 50 ms, so a half-written file is never loaded. A deleted file is a failed
 *   reload; recreating it reloads again.
 * - One load at a time. Changes that arrive during a load are coalesced: that load's result is
 *   discarded (never reported) and one more load follows, so the last edit always wins and
 *   listeners never see a stale version.
 * - `reloaded(next, previous)` gets a validated version numbered `previous.version + 1`; by the
 *   time it is called, `current` is `next`. Swapping it in (onLoad, onDispose) is the caller's
 *   job: the watcher runs no hook. `failed(error, current)` gets the AddonError; `current`
 *   stays. A listener must not throw (if one does, it is rethrown as an uncaught exception).
 * - After `close()` resolves, no event is delivered and nothing is watched.
 */
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { watch, type FSWatcher } from "chokidar";
import { AddonError, loadAddon, type LoadedAddon } from "./loader.js";

export interface AddonWatcherEvents {
  /** A new version validated and ready to swap in. */
  reloaded(next: LoadedAddon, previous: LoadedAddon): void;
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
      // chokidar fires after the first write of a burst (research/ecosystem.md §4): wait for
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

  /** Loads until a load starts after the last change, then reports that one. */
  async #reload(): Promise<void> {
    let outcome: LoadedAddon | AddonError;
    let from: Fingerprints;
    do {
      this.#stale = false;
      from = await fingerprints(this.#watched);
      outcome = await loadAddon(this.#current.file, this.#settings, this.#current.version + 1).catch((err: unknown) =>
        err instanceof AddonError ? err : new AddonError("LOAD_FAILED", this.#current.file, String(err), { cause: err }),
      );
      if (this.#closed) return;
    } while (this.#stale);

    this.#loadedFrom = from;
    this.#recheck = setTimeout(() => void this.#verify(), RECHECK_AFTER_MS).unref();
    const previous = this.#current;
    if (outcome instanceof AddonError) {
      this.#events.failed(outcome, previous);
      return;
    }
    this.#watch(outcome.inputs);
    this.#current = outcome;
    this.#events.reloaded(outcome, previous);
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

async function fingerprints(files: Iterable<string>): Promise<Fingerprints> {
  const print = (s: Stats | undefined) => (s === undefined ? "missing" : `${s.ino}:${s.size}:${s.mtimeMs}`);
  const entries = await Promise.all([...files].map(async (file) => [file, print(await stat(file).catch(() => undefined))] as const));
  return new Map(entries);
}
