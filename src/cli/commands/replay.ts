/**
 * `socksmith replay ID… [FILE]`: client replay of captured sessions (src/replay/client-replay.ts).
 * A session intercepted with `run --tls` is replayed inside a new TLS connection (recorded SNI and
 * ALPN), the target's certificate checked against Node's roots and `--upstream-ca` (`--insecure`
 * skips the check). Exit 0 when every replay ran to the end, whether or not the answers matched; 1 otherwise.
 */
import { Command, Option } from "commander";
import { formatEndpoint } from "../../engine/index.js";
import { formatBytes } from "../../format/index.js";
import type { ClientReplayResult, ReplayedTls, Via } from "../../replay/client-replay.js";
import { notReplayable, replaySession } from "../../replay/replay-session.js";
import { recordReplay } from "../../replay/record.js";
import { CaptureError } from "../../store/database.js";
import { DEFAULT_CAPTURE, captureProblem, clean, filterOption, openReader } from "../capture-file.js";
import type { SessionRow } from "../../store/schema.js";
import { CliError, usageError } from "../errors.js";
import { parseDuration, parseListen } from "../options.js";
import { readCaFile } from "../tls-setup.js";
import { VERSION } from "../version.js";
import type { Terminal } from "../proxy.js";

interface RawOptions {
  target?: string;
  via?: string;
  pace: "turns" | "original" | "none";
  quiet: string;
  json?: boolean;
  record: boolean;
  filter?: string;
  upstreamCa?: string;
  insecure?: boolean;
}

export function replayCommand(terminal: Terminal): Command {
  return new Command("replay")
    .description("send captured sessions' client bytes (CONNECT) or datagrams (UDP) again and compare the answers with the recording")
    .argument("[ids-and-file...]", "session ids, then optionally the capture file (default socksmith.db)")
    .option("--filter <expr>", "replay every session the filter matches (oldest first; replays themselves are left out)")
    .option("--target <host:port>", "connect here instead of the recorded target")
    .option("--via <url>", "go through a SOCKS5 proxy, e.g. socks5://127.0.0.1:1080 or socks5://user:pass@host:port")
    .addOption(
      new Option("--pace <pace>", "turns: wait for each answer; original: recorded timing; none: all at once")
        .choices(["turns", "original", "none"])
        .default("turns"),
    )
    .option("--quiet <duration>", "how long without a new byte counts as the server having answered", "500ms")
    .option("--json", "print the results as JSON")
    .option("--no-record", "do not record the replays in the capture file")
    .option("--upstream-ca <file>", "for sessions intercepted with --tls: trust these PEM CA certificates too, beside Node's roots")
    .option("--insecure", "for sessions intercepted with --tls: accept any certificate")
    .action(async (args: string[], raw: RawOptions) => {
      const last = args[args.length - 1];
      const file = last !== undefined && !/^\d+$/.test(last) ? last : DEFAULT_CAPTURE;
      const idTexts = file === last ? args.slice(0, -1) : args;
      const bad = idTexts.find((x) => !/^\d+$/.test(x));
      if (bad !== undefined) throw usageError(`replay: ${JSON.stringify(bad)} is not a session id`);
      const filter = filterOption(raw.filter);
      if (idTexts.length === 0 && filter === undefined) throw usageError("replay: give session ids, or --filter EXPR to pick sessions");
      const target = raw.target === undefined ? undefined : parseListen(raw.target);
      const via = raw.via === undefined ? undefined : parseVia(raw.via);
      const quietMs = parseDuration(raw.quiet, "--quiet");
      const trust = { ...(raw.upstreamCa === undefined ? {} : { ca: readCaFile(raw.upstreamCa) }), insecure: raw.insecure === true };
      const reader = openReader(file);
      const results: (ClientReplayResult & { recordedAs?: number; notRecorded?: string })[] = [];
      try {
        const chosen: SessionRow[] = [];
        for (const idText of idTexts) {
          const session = reader.session(Number(idText));
          if (session === undefined) throw new CliError(`${file}: no session ${idText}`, 1);
          const why = notReplayable(session);
          if (why !== undefined) throw new CliError(why, 1);
          chosen.push(session);
        }
        if (filter !== undefined) {
          // Read them all first: the reader cannot run other queries while one iterates.
          const matching = [...reader.allSessions({ filter })].filter(
            (s) => s.replay_of === null && notReplayable(s) === undefined && !chosen.some((c) => c.id === s.id),
          );
          if (matching.length === 0 && chosen.length === 0) throw new CliError(`${file}: no CONNECT or UDP session matches ${raw.filter}`, 1);
          chosen.push(...matching);
        }
        for (const session of chosen) {
          const result = await replaySession(reader, session, {
            pace: raw.pace,
            quietMs,
            trust,
            ...(target === undefined ? {} : { target }),
            ...(via === undefined ? {} : { via }),
          });
          let recordedAs: number | undefined;
          let notRecorded: string | undefined;
          if (raw.record) {
            try {
              recordedAs = recordReplay(file, session, result, VERSION);
            } catch (err) {
              if (!(err instanceof CaptureError)) throw err;
              notRecorded = notRecordedReason(err);
            }
          }
          results.push({ ...result, ...(recordedAs === undefined ? {} : { recordedAs }), ...(notRecorded === undefined ? {} : { notRecorded }) });
        }
      } finally {
        reader.close();
      }
      if (raw.json === true) {
        // Without the payloads: `show --json` has those.
        terminal.out(
          JSON.stringify(
            results.map(({ chunks: _chunks, udp, ...r }) => ({ ...r, ...(udp === undefined ? {} : { udp: { ...udp, datagrams: undefined } }) })),
            null,
            2,
          ),
        );
      } else {
        for (const r of results) for (const line of describe(r)) terminal.out(line);
      }
      if (results.some((r) => !r.completed))
        throw new CliError(`${results.filter((r) => !r.completed).length} of ${results.length} replays did not complete`, 1);
    });
}

function describe(r: ClientReplayResult & { recordedAs?: number; notRecorded?: string }): string[] {
  const where = `${formatEndpoint(r.target)}${r.via === undefined ? "" : ` via ${formatEndpoint(r.via)}`}${r.tls === undefined ? "" : ` ${overTls(r.tls)}`}`;
  const notice = r.notice === undefined ? [] : [`  ${r.notice}`];
  if (!r.completed) return [clean(`replay of #${r.original} → ${where}: failed: ${r.error ?? "?"}`), ...notice];
  const lines =
    r.udp === undefined
      ? [
          `replay of #${r.original} → ${where}: sent ${formatBytes(r.sent)}${r.sent === r.recordedSent ? "" : ` of ${formatBytes(r.recordedSent)} recorded (the other side closed first)`} in ${r.turns} turn${r.turns === 1 ? "" : "s"}; ` +
            `received ${formatBytes(r.received)} (recorded ${formatBytes(r.expected)}): ${r.match ? "same as recorded" : `differs at byte ${r.difference!.offset}`}`,
        ]
      : [
          `replay of #${r.original} (UDP) → ${where}: sent ${r.udp.sent === r.turns ? plural(r.udp.sent, "datagram") : `${r.udp.sent} of ${plural(r.turns, "datagram")}`}; received ${plural(r.udp.received, "answer")} ` +
            `(recorded ${r.udp.expected}): ${r.match ? "same as recorded" : `answer ${r.udp.differingAnswer! + 1} differs at byte ${r.difference!.offset}`}`,
        ];
  if (r.difference !== undefined) {
    lines.push(`  recorded: ${r.difference.expected || "(end)"}`);
    lines.push(`  now:      ${r.difference.actual || "(end)"}`);
  }
  lines.push(...notice);
  if (r.recordedAs !== undefined) lines.push(`  recorded as session #${r.recordedAs}`);
  if (r.notRecorded !== undefined) lines.push(clean(`  not recorded: ${r.notRecorded}`));
  return lines;
}

/** "over TLS (SNI example.com, ALPN h2)": the negotiated ALPN once known, else what was offered. */
export function overTls(tls: ReplayedTls): string {
  const alpn = tls.version !== undefined ? (tls.alpn ?? "none") : tls.offered.length === 0 ? "none" : tls.offered.join(",");
  return clean(`over TLS (SNI ${tls.sni ?? "none"}, ALPN ${alpn}${tls.verified === false ? ", certificate not checked" : ""})`);
}

/** Why a replay could not be recorded, and what `replay` itself offers about it. */
function notRecordedReason(err: CaptureError): string {
  const problem = captureProblem(err);
  // Another socksmith writes the file: a replay --via that proxy is captured by it instead.
  return err.code === "EBUSY" ? `${problem}; stop it, replay --via it (it captures the replay), or use --no-record` : problem;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `socks5://[user:pass@]host:port`. */
export function parseVia(text: string): Via {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`--via: ${JSON.stringify(text)} is not a URL like socks5://127.0.0.1:1080`);
  }
  if (url.protocol !== "socks5:" && url.protocol !== "socks5h:") throw usageError(`--via: only socks5:// proxies are supported (got ${url.protocol})`);
  if (url.port === "") throw usageError(`--via: ${JSON.stringify(text)} needs a port`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    host,
    port: Number(url.port),
    ...(url.username === "" ? {} : { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }),
  };
}
