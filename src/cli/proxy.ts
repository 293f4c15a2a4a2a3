/**
 * A started proxy: the engine with its capture recorder, session log, addons and server replay,
 * as `socksmith run` builds it, headless or under the TUI.
 */
import { realpathSync } from "node:fs";
import { basename } from "node:path";
import { ListenError, SocksEngine, allowAllHooks, combineObservers, formatEndpoint, type Credentials, type Endpoint, type Logger } from "../engine/index.js";
import type { DestinationRules, RequestInfo, Route } from "../engine/index.js";
import { CliError } from "./errors.js";
import { isLoopback } from "./options.js";
import { Recorder } from "../store/recorder.js";
import { CaptureError } from "../store/database.js";
import { VERSION } from "./version.js";
import { SessionLog, logLine, type LogFormat } from "./session-log.js";
import { startAddons, type AddonSettings, type RunningAddons } from "./addons.js";
import { openReader, sharedCaptureWarning } from "./capture-file.js";
import { formatFilter, type Filter } from "../filter/index.js";
import type { CaptureReader } from "../store/reader.js";
import { Recordings } from "../replay/recordings.js";
import { ServerReplay } from "../replay/server-replay.js";
import { hookLocation } from "../hooks/loader.js";
import type { AddonInstance } from "../hooks/dispatcher.js";
import { ReplayMarks } from "../hooks/replay-marks.js";
import type { HookName } from "../hooks/api.js";
import { startWatchdog, type WatchedAddon } from "./watchdog.js";
import { installLastResort } from "./last-resort.js";
import { addonLocation } from "../hooks/loader.js";
import { HOOK_CODES } from "./watchdog-shared.js";
import { startTls, type RunningTls, type TlsRunOptions } from "./tls-setup.js";
import { startIntercept } from "./intercept-setup.js";
import type { InterceptBinding } from "../tui/intercept.js";

export interface RunOptions {
  listen: Endpoint[];
  /** `--allow` / `--deny` in command-line order; undefined without any. */
  rules?: DestinationRules | undefined;
  /** `--upstream` / `--route`: the route of a request no addon routed; undefined: direct. */
  route?: ((request: RequestInfo) => Route) | undefined;
  /** `--intercept EXPR`: what to pause for a person (the TUI answers). */
  intercept?: { readonly text: string; readonly filter: Filter } | undefined;
  /** How the routes read, for the start-up notice (`--upstream` chain and the number of `--route`s). */
  routeText?: string | undefined;
  addons: string[];
  settings: AddonSettings;
  hookTimeoutMs: number;
  credentials: Credentials;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxSessions: number;
  bindTimeoutMs: number;
  maxUdpAssociations: number;
  udpIdleTimeoutMs: number;
  udpAllowUnsolicited: boolean;
  udpMaxPeers: number;
  graceMs: number;
  logFormat: LogFormat;
  quiet: boolean;
  /** The capture file; undefined with --no-capture. */
  capture: string | undefined;
  /** Payload bytes kept per session; undefined keeps all. */
  captureLimit: number | undefined;
  /** What a write error during capture does: log and go on relaying, or stop the proxy. */
  onCaptureError: "continue" | "stop";
  /** Answer from the recordings of this capture file instead of dialling (server replay). */
  serverReplay: string | undefined;
  replayMiss: "deny" | "forward";
  replayReuse: boolean;
  /** Only sessions this filter matches answer (server replay). */
  replayFilter: Filter | undefined;
  /**
   * With addons, the watchdog ends the process once a hook has blocked the event loop this long
   * (`--max-block`); undefined or 0 = never (blocks are still reported, and SIGINT/SIGTERM still
   * stop the process).
   */
  maxBlockMs?: number | undefined;
  /** `--tls` and its options; undefined: tunnels stay opaque. */
  tls?: TlsRunOptions | undefined;
}

/** Where the command writes: stdout for the session log, stderr for notices. */
export interface Terminal {
  out(line: string): void;
  err(line: string): void;
}

/** A started proxy, as the shutdown logic needs it. */
export interface RunningProxy {
  readonly sessionCount: number;
  /** Stops accepting, lets sessions finish for up to graceMs, then closes them; then the addons. */
  stop(graceMs: number): Promise<void>;
  /** Closes every open session now. */
  destroyAll(): void;
  /** Settles with an error when the proxy must stop by itself (capture failed with --on-capture-error stop). */
  readonly fatal: Promise<CliError>;
  /** The addresses it listens on. */
  readonly bound: readonly Endpoint[];
  /** The capture file, when capturing. */
  readonly captureFile: string | undefined;
  readonly addons: readonly string[];
  /** The capture file answered from with --server-replay. */
  readonly serverReplay: string | undefined;
  /** `--intercept`: the queue of paused items and the filter, for the TUI; absent without it. */
  readonly intercept?: InterceptBinding;
  /** Hosts whose clients rejected the socksmith CA this run (0 without --tls). */
  tlsDistrusted(): number;
  /** The socksmith CA certificate (PEM file) its leaves come from, with --tls: a replay through this proxy trusts it. */
  readonly tlsCaPath: string | undefined;
  /** Payload bytes relayed so far (counted by the recorder; 0 without capture). */
  bytesSeen(): number;
  /** Marks the session that connects from `clientPort` as a replay of `original`; resolves with its capture id. */
  markReplay(clientPort: number, original: number): Promise<number>;
}

export type Started = (proxy: RunningProxy, options: RunOptions) => Promise<void>;

export async function startProxy(options: RunOptions, terminal: Terminal): Promise<RunningProxy> {
  const json = options.logFormat === "json";
  const logger: Logger = {
    log(level, message, fields) {
      if (level === "debug") return;
      // Addon messages and hook errors quote addon and wire text: escaped like the session lines.
      terminal.err(logLine(options.logFormat, level, message, fields));
    },
  };
  let fatal!: (error: CliError) => void;
  const fatalPromise = new Promise<CliError>((resolve) => (fatal = resolve));
  let recorder: Recorder | undefined;
  if (options.capture !== undefined) {
    const file = options.capture;
    try {
      recorder = new Recorder(file, {
        ...(options.captureLimit === undefined ? {} : { captureLimit: options.captureLimit }),
        listen: options.listen.map(formatEndpoint),
        version: VERSION,
        failed: (error) => {
          const stop = options.onCaptureError === "stop";
          logger.log(
            "error",
            `ERROR: capture stopped: ${error.message}. ${stop ? "Stopping the proxy (--on-capture-error stop)." : "The proxy goes on relaying without capture."}`,
            { capture: file },
          );
          if (stop) fatal(new CliError(`capture failed: ${error.message}`, 1));
        },
      });
    } catch (err) {
      if (err instanceof CaptureError) throw new CliError(`${err.message} (use -w FILE for another file, or --no-capture)`, 1);
      throw err;
    }
    if (recorder.interrupted > 0) {
      terminal.err(`${file}: marked ${recorder.interrupted} session${recorder.interrupted === 1 ? "" : "s"} of an earlier run as interrupted`);
    }
    const shared = sharedCaptureWarning(file);
    if (shared !== undefined) terminal.err(shared);
  }
  const sessionLog = options.quiet
    ? undefined
    : new SessionLog(options.logFormat, terminal.out, recorder === undefined ? undefined : (id) => recorder.sessionId(id));
  let addons: RunningAddons | undefined;
  // Addon hooks run on this thread: one that never returns must not make the proxy unkillable.
  const watchdog =
    options.addons.length > 0
      ? startWatchdog({ format: options.logFormat, exitAfterMs: options.maxBlockMs ?? 0, log: (level, message, fields) => logger.log(level, message, fields) })
      : undefined;
  if (recorder !== undefined) watchdog?.sessionBase(recorder.sessionId(0));
  // Which sessions are replays, for addons' `session.replay` and for intercept (a replay is never paused): marked here and by server replay.
  const replays = options.addons.length > 0 || options.intercept !== undefined ? new ReplayMarks() : undefined;
  if (options.addons.length > 0) {
    try {
      addons = await startAddons(
        options.addons,
        options.settings,
        options.hookTimeoutMs,
        {
          info: (message, fields) => logger.log("info", message, fields),
          error: (message, fields) => logger.log("error", message, fields),
          tagged: (session, key, value) => {
            sessionLog?.tagged(session, key, value);
            recorder?.tagged(session, key, value);
          },
          hookFailed: (f) => recorder?.hookFailed({ ...f, code: f.kind }),
          displayId: (id) => recorder?.sessionId(id) ?? id,
          logged: (session, addon, message) => recorder?.addonLogged({ ...(session === undefined ? {} : { session }), addon, message }),
        },
        {
          ...(replays === undefined ? {} : { replays }),
          ...(watchdog === undefined ? {} : { activity: watchdog.activity, changed: (loaded) => watchdog.addons(loaded.map(watched)) }),
        },
      );
    } catch (err) {
      await watchdog?.stop();
      await recorder?.close();
      throw err;
    }
  }
  let serverReplay: { runner: ServerReplay; reader: CaptureReader } | undefined;
  if (options.serverReplay !== undefined) {
    try {
      serverReplay = startServerReplay(options, { addons, replays, recorder, logger, terminal });
    } catch (err) {
      await addons?.close();
      await watchdog?.stop();
      await recorder?.close();
      throw err;
    }
  }
  let tls: RunningTls | undefined;
  if (options.tls !== undefined) {
    try {
      tls = await startTls(options.tls, options.handshakeTimeoutMs, logger);
    } catch (err) {
      serverReplay?.reader.close();
      await addons?.close();
      await watchdog?.stop();
      await recorder?.close();
      throw err;
    }
  }
  const baseHooks = serverReplay?.runner ?? addons?.dispatcher;
  // Interactive intercept runs after the addons (and server replay): a person sees what they produced.
  const intercept =
    options.intercept === undefined
      ? undefined
      : startIntercept(options.intercept, baseHooks ?? allowAllHooks, replays, (session, what) => recorder?.intercepted(session, what));
  const observers = [
    ...(sessionLog === undefined ? [] : [sessionLog]),
    ...(recorder === undefined ? [] : [recorder]),
    ...(addons === undefined ? [] : [addons.dispatcher.observer]),
    ...(serverReplay === undefined ? [] : [serverReplay.runner.observer]),
    ...(intercept === undefined ? [] : [intercept.runner.observer]),
  ];
  const engine = new SocksEngine({
    listen: options.listen,
    credentials: options.credentials,
    ...(options.rules === undefined ? {} : { rules: options.rules }),
    ...(options.route === undefined ? {} : { route: options.route }),
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxSessions: options.maxSessions,
    bindTimeoutMs: options.bindTimeoutMs,
    maxUdpAssociations: options.maxUdpAssociations,
    udpIdleTimeoutMs: options.udpIdleTimeoutMs,
    udpAllowUnsolicited: options.udpAllowUnsolicited,
    udpMaxPeers: options.udpMaxPeers,
    logger,
    ...(tls === undefined ? {} : { tls: tls.interceptor }),
    ...(observers.length === 0 ? {} : { observer: combineObservers(observers) }),
    ...(intercept !== undefined ? { hooks: intercept.runner } : baseHooks === undefined ? {} : { hooks: baseHooks }),
  });
  // Addon code can throw from its own timers or leave a rejection unawaited; neither may end
  // the proxy (docs/architecture.md, "Trust rules"). Reported with the addon's file:line when its stack shows one.
  const removeLastResort = installLastResort({
    attribute: (error) => {
      for (const instance of addons?.dispatcher.loaded ?? []) {
        const location = addonLocation(error, instance.file);
        if (location !== undefined) return { name: instance.name, location };
      }
      return undefined;
    },
    report: ({ kind, addon, message, stack }) => {
      const what = kind === "exception" ? "uncaught exception" : "unhandled rejection";
      if (addon === undefined) {
        logger.log("error", `${what} (not from an addon; please report it): ${message}${stack === undefined ? "" : `\n${stack}`}`, { kind });
        return;
      }
      logger.log("error", `addon ${addon.name}: ${what} at ${addon.location}: ${message}`, { addon: addon.name, kind, location: addon.location });
      recorder?.addonLogged({ addon: addon.name, message: `${what} at ${addon.location}: ${message}` });
    },
    suppressed: (count) => logger.log("error", `${count} more uncaught errors in the last 10 s (not shown)`),
  });
  let bound: Endpoint[];
  try {
    bound = await engine.start();
  } catch (err) {
    removeLastResort();
    await addons?.close();
    await watchdog?.stop();
    await recorder?.close();
    await tls?.close();
    serverReplay?.reader.close();
    if (err instanceof ListenError) throw new CliError(err.message, 1);
    throw err;
  }
  const auth = options.credentials.size > 0 ? `username/password (${options.credentials.size} user${options.credentials.size === 1 ? "" : "s"})` : "no auth";
  for (const address of bound) {
    terminal.out(
      json
        ? JSON.stringify({ event: "listening", address: address.host, port: address.port, auth: options.credentials.size > 0, capture: recorder?.file ?? null })
        : `socksmith listening on ${formatEndpoint(address)} (SOCKS4/4a/5, ${auth}${recorder === undefined ? ", not capturing" : `, capturing to ${recorder.file}`})`,
    );
    if (!isLoopback(address.host) && options.credentials.size === 0) {
      terminal.err(
        `WARNING: listening on ${formatEndpoint(address)} without authentication: anyone who can reach this address can use the proxy. Add --auth USER:PASS or listen on 127.0.0.1.`,
      );
    }
  }
  if (options.routeText !== undefined) terminal.err(`upstream: ${options.routeText}`);
  if (tls !== undefined) {
    const t = options.tls!;
    terminal.err(
      `TLS interception on: leaf certificates from the CA in ${tls.caPath} (clients must trust it: socksmith ca)` +
        `${t.upstreamInsecure ? "; targets' certificates are NOT verified (--upstream-insecure)" : ""}${t.keylog === undefined ? "" : `; key log: ${t.keylog}`}`,
    );
  }
  return {
    get sessionCount() {
      return engine.sessionCount;
    },
    stop: async (graceMs) => {
      // Nobody will answer what is held now: it goes on as it was.
      intercept?.binding.queue.setActive(false);
      intercept?.runner.queue.releaseAll();
      await engine.stop(graceMs);
      await addons?.close(); // onDispose hooks: still watched
      await watchdog?.stop();
      await recorder?.close();
      await tls?.close();
      removeLastResort();
      serverReplay?.reader.close();
    },
    destroyAll: () => engine.destroyAll(),
    fatal: fatalPromise,
    bound,
    captureFile: recorder?.file,
    addons: options.addons.map((file) => basename(file)),
    serverReplay: options.serverReplay,
    bytesSeen: () => recorder?.bytesSeen ?? 0,
    tlsDistrusted: () => tls?.distrustedCount() ?? 0,
    ...(intercept === undefined ? {} : { intercept: intercept.binding }),
    tlsCaPath: tls?.caPath,
    markReplay: (clientPort, original) => {
      replays?.clientReplay(clientPort, original);
      return recorder?.replayFrom(clientPort, original) ?? Promise.reject(new Error("not capturing"));
    },
  };
}

/** An addon as the watchdog names it: name, file, and where each of its hooks is written. */
function watched(instance: AddonInstance): WatchedAddon {
  const hooks: Partial<Record<HookName, string>> = {};
  for (const hook of HOOK_CODES) {
    const where = typeof instance.addon[hook] === "function" ? hookLocation(instance.addon, hook) : undefined;
    if (where !== undefined) hooks[hook] = where;
  }
  return { name: instance.name, file: instance.file, hooks };
}

/** `--server-replay FILE`: the recordings, and the hook runner that answers from them. */
function startServerReplay(
  options: RunOptions,
  with_: { addons: RunningAddons | undefined; replays: ReplayMarks | undefined; recorder: Recorder | undefined; logger: Logger; terminal: Terminal },
): { runner: ServerReplay; reader: CaptureReader } {
  const file = options.serverReplay!;
  const { addons, replays, recorder, logger, terminal } = with_;
  const reader = openReader(file);
  let recordings: Recordings;
  try {
    recordings = new Recordings(reader, options.replayFilter);
  } catch (err) {
    reader.close();
    throw new CliError(`--server-replay ${file}: ${(err as Error).message}`, 1);
  }
  const c = recordings.counts;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const misses = options.replayMiss === "deny" ? "anything else is denied (0x02)" : "anything else goes out as usual";
  terminal.out(
    options.logFormat === "json"
      ? JSON.stringify({
          event: "server-replay",
          file,
          tcp: c.tcp,
          targets: c.targets,
          udp: c.udp,
          truncated: c.truncated,
          miss: options.replayMiss,
          reuse: options.replayReuse,
        })
      : `server replay from ${file}${options.replayFilter === undefined ? "" : ` (filter ${formatFilter(options.replayFilter)})`}: ${plural(c.tcp, "TCP recording")} of ${plural(c.targets, "destination")}, ${plural(c.udp, "UDP exchange")}${options.replayReuse ? " (each answers any number of times)" : " (each answers once)"}; ${misses}`,
  );
  if (c.truncated > 0) terminal.err(`server replay: left out ${plural(c.truncated, "session")} cut short by --capture-limit`);
  if (c.tcp + c.udp === 0) terminal.err(`WARNING: ${file} has no successful CONNECT or UDP session to answer from`);
  const runner = new ServerReplay(recordings, addons?.dispatcher ?? allowAllHooks, {
    miss: options.replayMiss,
    reuse: options.replayReuse,
    serving: (id, of) => replays?.servedFrom(id, of),
    served: (id, of) => recorder?.served(id, of, sameFile(file, recorder.file) ? undefined : file),
    missed: (id, what) => logger.log("warn", `session #${recorder?.sessionId(id) ?? id}: server replay: ${what}`),
  });
  return { runner, reader };
}

/** Whether two paths name the same file (both exist: the replayed one, the capture being written). */
function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}
