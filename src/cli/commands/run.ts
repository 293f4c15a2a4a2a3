/** `socksmith run`: start the proxy. */
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { formatRoute, type RequestInfo, type Route } from "../../engine/index.js";
import { Credentials, DEFAULTS, DestinationRules, parseCredential, parseCredentialFile, type RuleSource } from "../../engine/index.js";
import { usageError } from "../errors.js";
import { parseCount, parseDuration, parseListen, parseSize } from "../options.js";
import type { LogFormat } from "../session-log.js";
import { parseSettings } from "../addons.js";
import { loadTui } from "../load-tui.js";
import { filterOption } from "../capture-file.js";
import { startProxy, type RunOptions, type Started, type Terminal } from "../proxy.js";
import { resolveTlsOptions, type RawTlsOptions } from "../tls-setup.js";
import { parseRoute, parseRouteRule, routeChooser } from "../routes.js";
import { interceptOption } from "../intercept-setup.js";
import { defaultCaDir } from "../../tls/ca-dir.js";
import { releaseYoungGeneration } from "../launch-heap.js";

interface RawRunOptions extends RawTlsOptions {
  listen?: string[];
  addon?: string[];
  set?: string[];
  hookTimeout: string;
  maxBlock: string;
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
  upstream?: string[];
  route?: string[];
  intercept?: string;
  /** `--allow` and `--deny` (collectRule): each entry keeps its place on the command line. */
  allow?: OrderedRule[];
  deny?: OrderedRule[];
}

/** A rule and where it came on the command line: first match wins across both flags. */
interface OrderedRule extends RuleSource {
  readonly seq: number;
}

let ruleSeq = 0;
const collectRule =
  (action: RuleSource["action"]) =>
  (text: string, previous: OrderedRule[] | undefined): OrderedRule[] => [...(previous ?? []), { action, text, seq: ruleSeq++ }];

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function runCommand(terminal: Terminal, started: Started): Command {
  return new Command("run")
    .description("start the proxy (on a terminal with the TUI, otherwise headless)")
    .option("-l, --listen <host:port>", "address to listen on, repeatable (default 127.0.0.1:1080)", collect)
    .option("-s, --addon <file>", "load a TypeScript addon, repeatable (hook order = flag order); reloaded when saved", collect)
    .option("--set <addon.option=value>", "set an addon option, repeatable", collect)
    .option("--hook-timeout <duration>", "time an addon hook may take before it counts as no opinion", "5s")
    .option(
      "--max-block <duration>",
      "with addons: end the process once one hook has blocked the event loop this long (0: never; a block is always reported)",
      "0",
    )
    .option(
      "--upstream <url>",
      "go through this proxy (socks5h://, socks5://, socks4a://, socks4://, http://; [user:pass@]); repeat for a chain, in order",
      collect,
    )
    .option("--route <expr=url>", "requests this filter matches go through URL[,URL…] (or `direct`); repeatable, first match wins, else --upstream", collect)
    .option(
      "--allow <rule>",
      "let clients reach this destination (CIDR, host glob, :port, host:port); repeatable, first --allow/--deny match wins",
      collectRule("allow"),
    )
    .option("--deny <rule>", "refuse this destination (REP 02); repeatable, checked on names and the addresses they resolve to", collectRule("deny"))
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
    .addOption(
      new Option("--on-capture-error <action>", "when writing the capture fails: log loudly and keep relaying, or stop")
        .choices(["continue", "stop"])
        .default("continue"),
    )
    .option("--server-replay <file>", "answer clients from the sessions recorded in this capture file instead of dialling (offline mock)")
    .addOption(
      new Option(
        "--replay-miss <action>",
        "with --server-replay, a request nothing recorded answers: deny it (0x02, the default) or handle it as usual",
      ).choices(["deny", "forward"]),
    )
    .option("--replay-reuse", "with --server-replay, let a recording answer more than once")
    .option("--replay-filter <expr>", "with --server-replay, only the sessions this filter matches answer")
    .option("--intercept <expr>", "pause what this filter matches (stage:request|up|down|datagram) for you to edit, resume or kill in the TUI")
    .option("--tls", "intercept TLS: decrypt CONNECT tunnels that begin with a ClientHello, with leaf certificates from the socksmith CA")
    .option("--tls-hosts <expr>", "with --tls, intercept only tunnels this filter matches (sni:, host:, port:); the rest pass through")
    .option("--tls-passthrough <expr>", "with --tls, never intercept tunnels this filter matches (wins over --tls-hosts)")
    .option("--ca-dir <dir>", "where the socksmith CA lives (default $XDG_CONFIG_HOME/socksmith or ~/.socksmith)")
    .option("--upstream-ca <file>", "with --tls, also trust these PEM CA certificates when verifying targets")
    .option("--upstream-insecure", "with --tls, do not verify targets' certificates (recorded on each session)")
    .option("--no-tls-auto-passthrough", "with --tls, keep intercepting hosts whose clients rejected the socksmith CA")
    .option("--tls-keylog <file>", "with --tls, append NSS key log lines for both sides (default: $SSLKEYLOGFILE)")
    .option("--shutdown-grace <duration>", "on Ctrl-C, how long open sessions may finish", "5s")
    .addOption(new Option("--log-format <format>", "session log format").choices(["text", "json"]).default("text"))
    .option("-q, --quiet", "no per-session log lines")
    .option("--headless", "no TUI: one log line per session (the default without a terminal)")
    .action(async (raw: RawRunOptions) => {
      const options = resolveRunOptions(raw);
      // Small semi-spaces cost handshakes a little GC but spare TLS interception V8's full
      // collections for the buffers of decrypted records (launch-heap.ts).
      if (options.tls === undefined) releaseYoungGeneration();
      const interactive = raw.headless !== true && process.stdin.isTTY === true && process.stdout.isTTY === true;
      if (options.intercept !== undefined && (!interactive || options.capture === undefined)) {
        throw usageError(
          `--intercept needs the TUI to answer what it pauses${!interactive ? " (and a terminal: this is not one)" : " (it shows the capture: drop --no-capture)"}`,
        );
      }
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
  if (raw.intercept !== undefined && raw.headless === true) throw usageError("--intercept needs the TUI to answer what it pauses: drop --headless");
  if (raw.serverReplay === undefined) {
    const stray =
      raw.replayMiss !== undefined
        ? "--replay-miss"
        : raw.replayReuse === true
          ? "--replay-reuse"
          : raw.replayFilter !== undefined
            ? "--replay-filter"
            : undefined;
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
    let entries: ReturnType<typeof parseCredentialFile>;
    try {
      entries = parseCredentialFile(text, raw.authFile);
    } catch (err) {
      throw usageError(`--auth-file: ${(err as Error).message}`);
    }
    if (entries.length === 0) throw usageError(`--auth-file: ${raw.authFile} has no USER:PASS lines`);
    for (const { user, password } of entries) credentials.add(user, password);
  }
  const ordered = [...(raw.allow ?? []), ...(raw.deny ?? [])].sort((a, b) => a.seq - b.seq);
  for (const { action, text } of ordered) {
    try {
      new DestinationRules([{ action, text }]);
    } catch (err) {
      throw usageError(`--${action}: ${(err as Error).message}`);
    }
  }
  const rules = ordered.length === 0 ? undefined : new DestinationRules(ordered.map(({ action, text }) => ({ action, text })));
  return {
    listen,
    rules,
    ...routeOptions(raw.upstream ?? [], raw.route ?? []),
    ...(raw.intercept === undefined ? {} : { intercept: { text: raw.intercept, filter: interceptOption(raw.intercept) } }),
    addons: raw.addon ?? [],
    settings: parseSettings(raw.set ?? []),
    hookTimeoutMs: positive(parseDuration(raw.hookTimeout, "--hook-timeout"), "--hook-timeout"),
    maxBlockMs: parseDuration(raw.maxBlock, "--max-block"),
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
    tls: resolveTlsOptions(raw, defaultCaDir(), process.env),
  };
}

function positive(ms: number, option: string): number {
  if (ms <= 0) throw usageError(`${option}: must be more than 0`);
  return ms;
}

/** `--upstream` (a chain, in order) and `--route` rules: the engine's default route, and a notice. */
function routeOptions(upstream: string[], routes: string[]): { route?: (request: RequestInfo) => Route; routeText?: string } {
  const chain = parseRoute(upstream.join(","), "--upstream");
  const rules = routes.map(parseRouteRule);
  const route = routeChooser(chain, rules);
  if (route === undefined) return {};
  const text = `${chain.length === 0 ? "direct" : formatRoute(chain)}${rules.length === 0 ? "" : ` unless one of ${rules.length} --route rule${rules.length === 1 ? "" : "s"} matches`}`;
  return { route, routeText: text };
}
