/**
 * Addons for `run`: loads every `-s` file (with its `--set` options), builds the dispatcher,
 * watches the files and swaps in new versions as they are saved, and reports what addons do.
 */
import { basename, extname } from "node:path";
import { compileProblem } from "../hooks/bundle.js";
import { Dispatcher, type AddonInstance, type HookActivity, type HookFailure } from "../hooks/dispatcher.js";
import type { ReplayLookup } from "../hooks/replay-marks.js";
import { AddonError, addonLocation, loadAddon, type LoadedAddon } from "../hooks/loader.js";
import { AddonWatcher } from "../hooks/watcher.js";
import { CliError, usageError } from "./errors.js";

/** Where addon activity is reported (the CLI's log). */
export interface AddonLog {
  info(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A session was tagged (shown on its log line). */
  tagged(session: number, key: string, value: string): void;
  /** A hook failed (already logged through `error`). */
  hookFailed?(failure: HookFailure): void;
  /** The number a session is shown with in log lines (its capture id when capturing). */
  displayId?(engineId: number): number;
  /** An addon called ctx.log (already logged through `info`). */
  logged?(session: number | undefined, addon: string, message: string): void;
}

export interface RunningAddons {
  readonly dispatcher: Dispatcher;
  close(): Promise<void>;
}

/** What else watches the addons (the watchdog, see proxy.ts). */
export interface AddonObservers {
  /** Told around every synchronous hook call (`DispatcherOptions.activity`). */
  readonly activity?: HookActivity;
  /** Which sessions are replays (`DispatcherOptions.replays`; the proxy's ReplayMarks). */
  readonly replays?: ReplayLookup;
  /** The addons in hook order: once started, and after every swap. */
  changed?(addons: readonly AddonInstance[]): void;
}

/** `--set ADDON.OPTION=VALUE` values, by addon, then option. */
export type AddonSettings = ReadonlyMap<string, Readonly<Record<string, string>>>;

export function parseSettings(values: readonly string[]): Map<string, Record<string, string>> {
  const settings = new Map<string, Record<string, string>>();
  for (const text of values) {
    const match = /^([^.=\s]+)\.([^=\s]+)=(.*)$/s.exec(text);
    if (match === null) throw usageError(`--set: expected ADDON.OPTION=VALUE, got ${JSON.stringify(text)}`);
    const [, addon, option, value] = match as unknown as [string, string, string, string];
    settings.set(addon, { ...settings.get(addon), [option]: value });
  }
  return settings;
}

/** The name an addon file goes by before it is loaded (its own `name` may differ). */
function fileStem(file: string): string {
  return basename(file, extname(file));
}

/** One line for an addon error: `file:line:column: message` (1-based), as compilers print. */
export function describeAddonError(error: AddonError): string {
  const where = error.line === undefined ? error.file : `${error.file}:${error.line}:${error.column ?? 1}`;
  return `${where}: ${error.message}`;
}

/**
 * Loads the addons, in `-s` order. A file that fails to load stops the start (exit 1) with its
 * file:line:column; `--set` for an addon that is not loaded is a usage error (exit 2).
 */
export async function startAddons(
  files: readonly string[],
  settings: AddonSettings,
  hookTimeoutMs: number,
  log: AddonLog,
  observers: AddonObservers = {},
): Promise<RunningAddons> {
  const loaded: LoadedAddon[] = [];
  const settingsFor = (addon: LoadedAddon | string): Readonly<Record<string, string>> | undefined =>
    typeof addon === "string" ? settings.get(fileStem(addon)) : (settings.get(addon.name) ?? settings.get(fileStem(addon.file)));
  for (const file of files) {
    try {
      let addon = await loadAddon(file, settingsFor(file));
      // `--set` may name the addon by its declared name rather than its file.
      if (addon.name !== fileStem(file) && settings.has(addon.name)) addon = await loadAddon(file, settingsFor(addon));
      loaded.push(addon);
    } catch (err) {
      if (err instanceof AddonError) throw new CliError(`addon ${describeAddonError(err)}`, 1);
      throw err;
    }
  }
  // The loader checked Module#_compile on first use; where it does not work, addons still load
  // another way, and the user should know why the addon's folder gets temporary files.
  const compile = compileProblem();
  if (compile !== undefined) {
    log.error(
      `WARNING: addons are evaluated by writing and requiring a .cjs beside each addon (slower; the folder must be writable): ` +
        `Module#_compile does not work on Node ${process.version}: ${compile}`,
    );
  }
  for (const name of settings.keys()) {
    if (!loaded.some((a) => a.name === name || fileStem(a.file) === name)) {
      throw usageError(`--set: no addon named ${JSON.stringify(name)} (loaded: ${loaded.map((a) => a.name).join(", ") || "none"})`);
    }
  }

  const shown = (id: number): number => log.displayId?.(id) ?? id;
  const dispatcher = new Dispatcher(loaded, {
    hookTimeoutMs,
    ...(observers.activity === undefined ? {} : { activity: observers.activity }),
    ...(observers.replays === undefined ? {} : { replays: observers.replays }),
    locate: addonLocation,
    events: {
      hookFailed: (f: HookFailure) => {
        const kind = f.kind === "timed-out" ? `timed out after ${hookTimeoutMs} ms` : f.kind === "invalid" ? "gave an invalid answer" : f.kind;
        const what = `${f.hook} ${kind}${f.location === undefined ? "" : ` at ${f.location}`}: ${f.message}`;
        log.error(`addon ${f.addon}: ${what}${f.session === undefined ? "" : ` (session #${shown(f.session)})`}`, {
          addon: f.addon,
          hook: f.hook,
          session: f.session,
          kind: f.kind,
          location: f.location,
        });
        log.hookFailed?.(f);
      },
      tagged: (session, _addon, key, value) => log.tagged(session, key, value),
      logged: (session, addon, message) => {
        log.info(`[${addon}]${session === undefined ? "" : ` #${shown(session)}`} ${message}`, { addon, session });
        log.logged?.(session, addon, message);
      },
    },
  });
  observers.changed?.(dispatcher.loaded);
  await dispatcher.start();
  for (const addon of loaded) log.info(`addon ${addon.name} loaded from ${addon.file}: ${addon.hooks.join(", ") || "no hooks"}`);

  const watchers = loaded.map(
    (addon, index) =>
      new AddonWatcher(addon, settingsFor(addon), {
        // Returned, so the watcher waits for the swap: swaps of one addon never overlap (the
        // last save wins, each version's onDispose runs once) and a refused version is not current.
        reloaded: async (next) => {
          const swapped = await dispatcher.replace(index, next);
          if (swapped) observers.changed?.(dispatcher.loaded);
          if (swapped) log.info(`addon ${next.name} reloaded (version ${next.version}): ${next.hooks.join(", ") || "no hooks"}`);
          else log.error(`addon ${next.name}: version ${next.version} failed in onLoad; keeping the running version`);
          return swapped;
        },
        failed: (error, current) => log.error(`addon ${current.name}: ${describeAddonError(error)}; keeping version ${current.version}`),
        watchFailed: (error: Error) => log.error(`addon ${addon.name}: watching its files failed: ${error.message}`),
      }),
  );
  return {
    dispatcher,
    close: async () => {
      await Promise.all(watchers.map((w) => w.close()));
      await dispatcher.stop();
    },
  };
}
