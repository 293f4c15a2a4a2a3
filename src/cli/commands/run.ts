/** `socksmith run`: start the proxy. */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { Command, Option } from "commander";
import {
  Credentials,
  DEFAULTS,
  ListenError,
  SocksEngine,
  combineObservers,
  formatEndpoint,
  parseCredential,
  parseCredentialFile,
  type Endpoint,
  type Logger,
  allowAllHooks,
} from "../../engine/index.js";
import { CliError, usageError } from "../errors.js";
import { isLoopback, parseCount, parseDuration, parseListen, parseSize } from "../options.js";
import { Recorder } from "../../store/recorder.js";
import { CaptureError } from "../../store/database.js";
import { VERSION } from "../version.js";
import { SessionLog, type LogFormat } from "../session-log.js";
import { parseSettings, startAddons, type AddonSettings, type RunningAddons } from "../addons.js";
import { loadTui } from "../load-tui.js";
import { filterOption, openReader } from "../capture-file.js";
import { formatFilter, type Filter } from "../../filter/index.js";
import type { CaptureReader } from "../../store/reader.js";
import { Recordings } from "../../replay/recordings.js";
import { ServerReplay } from "../../replay/server-replay.js";

export interface RunOptions {
  listen: Endpoint[];
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
}

/** Where the command writes: stdout for the session log, stderr for notices. */
export interface Terminal {
  out(line: string): void;
  err(line: string): void;
}

interface RawRunOptions {
  listen?: string[];
  addon?: string[];
  set?: string[];
  hookTimeout: string;
  auth?: string[];
  authFile?: string;
  handshakeTimeout: string;
  connectTimeout: string;
  idleTimeout: string;
  maxSessions: string;
  bindTimeout: string;
  maxUdpAssociations: string;
  udpIdleTimeout: string;
  udpAllowUnsolicited?: boolean;
  udpMaxPeers: string;
  shutdownGrace: string;
  logFormat: LogFormat;
  quiet?: boolean;
  headless?: boolean;
  capture: string | false;
  captureLimit?: string;
  onCaptureError: "continue" | "stop";
  serverReplay?: string;
  replayMiss?: "deny" | "forward";
  replayReuse?: boolean;
  replayFilter?: string;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

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
  /** Payload bytes relayed so far (counted by the recorder; 0 without capture). */
  bytesSeen(): number;
  /** Marks the session that connects from `clientPort` as a replay of `original`; resolves with its capture id. */
  markReplay(clientPort: number, original: number): Promise<number>;
}

export type Started = (proxy: RunningProxy, options: RunOptions) => Promise<void>;

export function runCommand(terminal: Terminal, started: Started): Command {
  return new Command("run")
    .description("start the proxy (on a terminal with the TUI, otherwise headless)")
    .option("-l, --listen <host:port>", "address to listen on, repeatable (default 127.0.0.1:1080)", collect)
    .option("-s, --addon <file>", "load a TypeScript addon, repeatable (hook order = flag order); reloaded when saved", collect)
    .option("--set <addon.option=value>", "set an addon option, repeatable", collect)
    .option("--hook-timeout <duration>", "time an addon hook may take before it counts as no opinion", "5s")
    .option("--auth <user:pass>", "require username/password; repeatable", collect)
    .option("--auth-file <file>", "require username/password from a file of USER:PASS lines")
    .option("--handshake-timeout <duration>", "time allowed for the SOCKS handshake", `${DEFAULTS.handshakeTimeoutMs / 1000}s`)
    .option("--connect-timeout <duration>", "time allowed to resolve and connect to a target", `${DEFAULTS.connectTimeoutMs / 1000}s`)
    .option("--idle-timeout <duration>", "close tunnels idle this long in both directions; 0 = never", `${DEFAULTS.idleTimeoutMs / 1000}s`)
    .option("--max-sessions <n>", "sessions open at once; more are refused at accept", String(DEFAULTS.maxSessions))
    .option("--bind-timeout <duration>", "how long a BIND waits for its inbound connection", `${DEFAULTS.bindTimeoutMs / 1000}s`)
    .option("--max-udp-associations <n>", "UDP associations open at once", String(DEFAULTS.maxUdpAssociations))
    .option("--udp-idle-timeout <duration>", "end a UDP association after this long without a datagram; 0 = only when its TCP connection ends", "0")
    .option("--udp-allow-unsolicited", "relay datagrams from hosts the client never sent to (default: drop them)")
    .option("--udp-max-peers <n>", "distinct remote hosts one UDP association may send to", String(DEFAULTS.udpMaxPeers))
    .option("-w, --capture <file>", "capture every session and datagram to this SQLite file", "socksmith.db")
    .option("--no-capture", "do not capture")
    .option("--capture-limit <bytes>", "payload bytes kept per session (e.g. 1m); byte counts stay exact")
    .addOption(new Option("--on-capture-error <action>", "when writing the capture fails: log loudly and keep relaying, or stop").choices(["continue", "stop"]).default("continue"))
    .option("--server-replay <file>", "answer clients from the sessions recorded in this capture file instead of dialling (offline mock)")
    .addOption(new Option("--replay-miss <action>", "with --server-replay, a request nothing recorded answers: deny it (0x02, the default) or handle it as usual").choices(["deny", "forward"]))
    .option("--replay-reuse", "with --server-replay, let a recording answer more than once")
    .option("--replay-filter <expr>", "with --server-replay, only the sessions this filter matches answer")
    .option("--shutdown-grace <duration>", "on Ctrl-C, how long open sessions may finish", "5s")
    .addOption(new Option("--log-format <format>", "session log format").choices(["text", "json"]).default("text"))
    .option("-q, --quiet", "no per-session log lines")
    .option("--headless", "no TUI: one log line per session (the default without a terminal)")
    .action(async (raw: RawRunOptions) => {
      const options = resolveRunOptions(raw);
      const interactive = raw.headless !== true && process.stdin.isTTY === true && process.stdout.isTTY === true;
      if (raw.headless !== true && !interactive) terminal.err("socksmith: no terminal, running headless (--headless hides this notice)");
      if (interactive && options.capture === undefined) terminal.err("socksmith: the TUI shows the capture; with --no-capture it runs headless");
      if (!interactive || options.capture === undefined) {
        const proxy = await startProxy(options, terminal);
        await started(proxy, options);
        return;
      }
      const { runWithTui } = await loadTui();
      await runWithTui(options, started);
    });
}

export function resolveRunOptions(raw: RawRunOptions): RunOptions {
  if (raw.serverReplay === undefined) {
    const stray = raw.replayMiss !== undefined ? "--replay-miss" : raw.replayReuse === true ? "--replay-reuse" : raw.replayFilter !== undefined ? "--replay-filter" : undefined;
    if (stray !== undefined) throw usageError(`${stray} only applies with --server-replay FILE`);
  }
  const listen = (raw.listen ?? ["127.0.0.1:1080"]).map(parseListen);
  const credentials = new Credentials();
  try {
    for (const text of raw.auth ?? []) {
      const { user, password } = parseCredential(text);
      credentials.add(user, password);
    }
  } catch (err) {
    throw usageError(`--auth: ${(err as Error).message}`);
  }
  if (raw.authFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(raw.authFile, "utf8");
    } catch (err) {
      throw usageError(`--auth-file: cannot read ${raw.authFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let entries;
    try {
      entries = parseCredentialFile(text, raw.authFile);
    } catch (err) {
      throw usageError(`--auth-file: ${(err as Error).message}`);
    }
    if (entries.length === 0) throw usageError(`--auth-file: ${raw.authFile} has no USER:PASS lines`);
    for (const { user, password } of entries) credentials.add(user, password);
  }
  return {
    listen,
    addons: raw.addon ?? [],
    settings: parseSettings(raw.set ?? []),
    hookTimeoutMs: positive(parseDuration(raw.hookTimeout, "--hook-timeout"), "--hook-timeout"),
    credentials,
    handshakeTimeoutMs: positive(parseDuration(raw.handshakeTimeout, "--handshake-timeout"), "--handshake-timeout"),
    connectTimeoutMs: positive(parseDuration(raw.connectTimeout, "--connect-timeout"), "--connect-timeout"),
    idleTimeoutMs: parseDuration(raw.idleTimeout, "--idle-timeout"),
    maxSessions: parseCount(raw.maxSessions, "--max-sessions", 1),
    bindTimeoutMs: positive(parseDuration(raw.bindTimeout, "--bind-timeout"), "--bind-timeout"),
    maxUdpAssociations: parseCount(raw.maxUdpAssociations, "--max-udp-associations", 0),
    udpIdleTimeoutMs: parseDuration(raw.udpIdleTimeout, "--udp-idle-timeout"),
    udpAllowUnsolicited: raw.udpAllowUnsolicited === true,
    udpMaxPeers: parseCount(raw.udpMaxPeers, "--udp-max-peers", 1),
    graceMs: parseDuration(raw.shutdownGrace, "--shutdown-grace"),
    logFormat: raw.logFormat,
    quiet: raw.quiet === true,
    capture: raw.capture === false ? undefined : raw.capture,
    captureLimit: raw.captureLimit === undefined ? undefined : parseSize(raw.captureLimit, "--capture-limit"),
    onCaptureError: raw.onCaptureError,
    serverReplay: raw.serverReplay,
    replayMiss: raw.replayMiss ?? "deny",
    replayReuse: raw.replayReuse === true,
    replayFilter: filterOption(raw.replayFilter, "--replay-filter"),
  };
}

function positive(ms: number, option: string): number {
  if (ms <= 0) throw usageError(`${option}: must be more than 0`);
  return ms;
}

export async function startProxy(options: RunOptions, terminal: Terminal): Promise<RunningProxy> {
  const json = options.logFormat === "json";
  const logger: Logger = {
    log(level, message, fields) {
      if (level === "debug") return;
      terminal.err(json ? JSON.stringify({ event: "log", level, message, ...fields }) : `${level}: ${message}`);
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
          logger.log("error", `ERROR: capture stopped: ${error.message}. ${stop ? "Stopping the proxy (--on-capture-error stop)." : "The proxy goes on relaying without capture."}`, { capture: file });
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
  }
  const sessionLog = options.quiet ? undefined : new SessionLog(options.logFormat, terminal.out, recorder === undefined ? undefined : (id) => recorder.sessionId(id));
  let addons: RunningAddons | undefined;
  if (options.addons.length > 0) {
    try {
      addons = await startAddons(options.addons, options.settings, options.hookTimeoutMs, {
        info: (message, fields) => logger.log("info", message, fields),
        error: (message, fields) => logger.log("error", message, fields),
        tagged: (session, key, value) => {
          sessionLog?.tagged(session, key, value);
          recorder?.tagged(session, key, value);
        },
        hookFailed: (f) => recorder?.hookFailed({ ...f, code: f.kind }),
        displayId: (id) => recorder?.sessionId(id) ?? id,
        logged: (session, addon, message) => recorder?.addonLogged({ ...(session === undefined ? {} : { session }), addon, message }),
      });
    } catch (err) {
      await recorder?.close();
      throw err;
    }
  }
  let serverReplay: { runner: ServerReplay; reader: CaptureReader } | undefined;
  if (options.serverReplay !== undefined) {
    try {
      serverReplay = startServerReplay(options, { addons, recorder, logger, terminal });
    } catch (err) {
      await addons?.close();
      await recorder?.close();
      throw err;
    }
  }
  const observers = [
    ...(sessionLog === undefined ? [] : [sessionLog]),
    ...(recorder === undefined ? [] : [recorder]),
    ...(addons === undefined ? [] : [addons.dispatcher.observer]),
    ...(serverReplay === undefined ? [] : [serverReplay.runner.observer]),
  ];
  const engine = new SocksEngine({
    listen: options.listen,
    credentials: options.credentials,
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
    ...(observers.length === 0 ? {} : { observer: combineObservers(observers) }),
    ...(serverReplay !== undefined ? { hooks: serverReplay.runner } : addons === undefined ? {} : { hooks: addons.dispatcher }),
  });
  let bound: Endpoint[];
  try {
    bound = await engine.start();
  } catch (err) {
    await addons?.close();
    await recorder?.close();
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
  return {
    get sessionCount() {
      return engine.sessionCount;
    },
    stop: async (graceMs) => {
      await engine.stop(graceMs);
      await addons?.close();
      await recorder?.close();
      serverReplay?.reader.close();
    },
    destroyAll: () => engine.destroyAll(),
    fatal: fatalPromise,
    bound,
    captureFile: recorder?.file,
    addons: options.addons.map((file) => basename(file)),
    serverReplay: options.serverReplay,
    bytesSeen: () => recorder?.bytesSeen ?? 0,
    markReplay: (clientPort, original) => {
      addons?.dispatcher.clientReplay(clientPort, original);
      return recorder?.replayFrom(clientPort, original) ?? Promise.reject(new Error("not capturing"));
    },
  };
}

/** `--server-replay FILE`: the recordings, and the hook runner that answers from them. */
function startServerReplay(
  options: RunOptions,
  with_: { addons: RunningAddons | undefined; recorder: Recorder | undefined; logger: Logger; terminal: Terminal },
): { runner: ServerReplay; reader: CaptureReader } {
  const file = options.serverReplay!;
  const { addons, recorder, logger, terminal } = with_;
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
      ? JSON.stringify({ event: "server-replay", file, tcp: c.tcp, targets: c.targets, udp: c.udp, truncated: c.truncated, miss: options.replayMiss, reuse: options.replayReuse })
      : `server replay from ${file}${options.replayFilter === undefined ? "" : ` (filter ${formatFilter(options.replayFilter)})`}: ${plural(c.tcp, "TCP recording")} of ${plural(c.targets, "destination")}, ${plural(c.udp, "UDP exchange")}${options.replayReuse ? " (each answers any number of times)" : " (each answers once)"}; ${misses}`,
  );
  if (c.truncated > 0) terminal.err(`server replay: left out ${plural(c.truncated, "session")} cut short by --capture-limit`);
  if (c.tcp + c.udp === 0) terminal.err(`WARNING: ${file} has no successful CONNECT or UDP session to answer from`);
  const runner = new ServerReplay(recordings, addons?.dispatcher ?? allowAllHooks, {
    miss: options.replayMiss,
    reuse: options.replayReuse,
    serving: (id, handle, of) => addons?.dispatcher.servedFrom(id, handle, of),
    served: (id, of) => recorder?.served(id, of),
    missed: (id, what) => logger.log("warn", `session #${recorder?.sessionId(id) ?? id}: server replay: ${what}`),
  });
  return { runner, reader };
}
