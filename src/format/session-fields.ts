/**
 * One description of a captured session, worded once for every view of it: its facts as labelled
 * fields in a fixed order (`sessionFields`), its title (`sessionTitle`), its events as lines
 * (`eventLines`) and the heading of each turn and datagram of its stream (`turnHeading`,
 * `datagramHeading`). `socksmith show` prints them as text, the TUI's detail view draws them as its
 * overview, events and stream tabs; a renderer only decides layout (columns, blank lines between
 * groups, indentation, how much payload) and colour (by `tone`), never which facts appear or how
 * they read.
 *
 * Pure and total: a crafted capture file (JSON columns that are not JSON, enum columns holding
 * anything) gives text, never a throw. Every label, value and line returned is terminal-safe
 * (safe-text.ts): hosts, user names, SNI, tags and addon messages come from the wire or addons.
 */
import type { ChunkRow, DatagramRow, EventRow, SessionRow, TlsRow } from "../model/capture-rows.js";
import { formatBytes, formatDuration, formatTime } from "./quantities.js";
import { safeText } from "./safe-text.js";
import { formatEndpoint, formatReply } from "./socks.js";

/**
 * Which part of the description a field belongs to; renderers may separate groups (the TUI puts a
 * blank line between them). In order: how a replay relates to its recording, when things happened,
 * who talked to whom, how it ended and what was moved, what was detected, what TLS interception
 * learned, what addons tagged.
 */
export type FieldGroup = "replay" | "timing" | "addresses" | "outcome" | "detection" | "tls" | "tags";

/**
 * What a field's value means to a reader, for renderers that colour: `failure` (a failed reply or
 * status), `attention` (still open, truncated, datagrams not captured, a replay that differs),
 * `addon` (an addon's doing: a redirect, tags), `good` (a replay answered as recorded), `muted`
 * (a comparison still running). Absent: a plain fact.
 */
export type FieldTone = "failure" | "attention" | "addon" | "good" | "muted";

/** One labelled fact: `label: value`, then `detail` lines under the value. */
export interface SessionField {
  readonly group: FieldGroup;
  /** Lower case, no colon: `opened`, `served from`. A sub-field of the one before starts with two spaces (`  recorded`). */
  readonly label: string;
  /** One line, terminal-safe. */
  readonly value: string;
  /** Further lines belonging to the value (e.g. the detected protocol's facts as pretty JSON), terminal-safe. */
  readonly detail?: readonly string[];
  readonly tone?: FieldTone;
}

/** A replay's answer against the recording (the TUI computes it from both sessions' bytes). */
export interface ReplayComparison {
  readonly expected: number;
  readonly received: number;
  /** Still comparing (a big session is compared in steps): the counts so far. */
  readonly pending?: boolean;
  /** Absent when the answers are the same. */
  readonly difference?: { readonly offset: number; readonly expected: string; readonly actual: string };
  /** UDP: counts are answers (datagrams), and the difference is in answer `answer` (0-based). */
  readonly datagrams?: { readonly expected: number; readonly received: number; readonly answer?: number };
}

export interface SessionFieldOptions {
  /** For how long an open session has lasted (ms since the epoch); without it an open session is "still open". */
  readonly now?: number;
  /** For a replay: how its answer compares with the recording's (placed right under "replay of"). */
  readonly comparison?: ReplayComparison;
  /** The session's `tls` row (the reader's `tls(id)`), when it has one: the `tls` group. */
  readonly tls?: TlsRow;
}

/** `session 12  (run 3, #4)`: the store's id, the run, the engine's id as the log printed it. */
export function sessionTitle(s: SessionRow): string {
  return `session ${s.id}  (run ${s.run_id}, #${s.engine_id})`;
}

/** The session's facts, in the order every view shows them. Optional facts are left out when absent. */
export function sessionFields(s: SessionRow, options: SessionFieldOptions = {}): SessionField[] {
  const fields: SessionField[] = [];
  const add = (group: FieldGroup, label: string, value: string, more: Pick<SessionField, "detail" | "tone"> = {}) =>
    fields.push({ group, label, value, ...more });

  // A replay says so first, with how its answer compares: that is why one opens it.
  if (s.replay_of !== null) add("replay", "replay of", `session ${s.replay_of}`);
  if (options.comparison !== undefined) {
    comparisonFields(options.comparison, (label, value, tone) => add("replay", label, value, tone === undefined ? {} : { tone }));
  }
  if (s.served_from !== null) add("replay", "served from", `session ${s.served_from} (server replay)`);

  const since = (at: number) => `${formatTime(at)} (+${formatDuration(at - s.opened_at)})`;
  add("timing", "opened", `${formatTime(s.opened_at)} (${isoTime(s.opened_at)})`);
  if (s.requested_at !== null) add("timing", "requested", since(s.requested_at));
  if (s.replied_at !== null) add("timing", "replied", since(s.replied_at));
  if (s.closed_at !== null) add("timing", "closed", since(s.closed_at));
  if (s.status === "open") {
    add("timing", "duration", options.now === undefined ? "still open" : `${durationText(s, options.now)} so far`, { tone: "attention" });
  } else if (s.closed_at === null) add("timing", "duration", "? (its end was not recorded)");
  else add("timing", "duration", durationText(s, s.closed_at));

  add("addresses", "client", `${endpointText(s.client_host, s.client_port)} → proxy ${endpointText(s.local_host, s.local_port)}`);
  add("addresses", "protocol", `SOCKS${safeText(s.version ?? "?")} ${s.command === null ? "(no request)" : safeText(s.command.toUpperCase())}`);
  if (s.auth_method !== null) {
    const offered = offeredMethods(s.auth_offered);
    const user = s.user === null ? "" : ` user ${safeText(JSON.stringify(s.user))}`;
    add("addresses", "auth", `${safeText(s.auth_method)}${user}${offered === "" ? "" : ` (offered ${offered})`}`);
  }
  if (s.requested_host !== null) {
    add("addresses", "target", `${endpointText(s.requested_host, s.requested_port)}${s.requested_type === null ? "" : ` (${safeText(s.requested_type)})`}`);
  }
  if (isRedirected(s)) add("addresses", "actual", `${endpointText(s.target_host, s.target_port)} (redirected by an addon or intercept)`, { tone: "addon" });
  // Once there was a request: a session that never asked for anything went nowhere, directly or not.
  if (s.command !== null || s.route !== null) add("addresses", "route", routeText(s.route));
  if (s.remote_host !== null) add("addresses", "connected", endpointText(s.remote_host, s.remote_port));
  const attempts = stringList(s.attempts);
  if (attempts !== "") add("addresses", "attempts", attempts);
  if (s.bound_host !== null) add("addresses", "bound", endpointText(s.bound_host, s.bound_port));

  if (s.reply !== null) {
    const code = `${s.reply_code === null ? "" : ` ${safeText(s.reply_code)}`}${s.errno === null ? "" : ` (${safeText(s.errno)})`}`;
    add("outcome", "reply", `${formatReply(s.reply, s.version)}${code}`, s.reply === 0 ? {} : { tone: "failure" });
  }
  const why = s.close_reason === null || s.close_reason === s.status ? "" : ` — ${safeText(s.close_reason)}`;
  const reason = `${why}${s.close_errno === null ? "" : ` (${safeText(s.close_errno)})`}`;
  const statusTone = statusToneOf(s);
  add("outcome", "status", `${safeText(s.status)}${reason}`, statusTone === undefined ? {} : { tone: statusTone });
  add("outcome", "bytes up", `${formatBytes(s.bytes_up_received)} received / ${formatBytes(s.bytes_up_sent)} sent  (client → target)`);
  add("outcome", "bytes down", `${formatBytes(s.bytes_down_received)} received / ${formatBytes(s.bytes_down_sent)} sent  (target → client)`);
  const truncated = s.truncated === 1;
  add("outcome", "captured", `${formatBytes(s.captured_bytes)}${truncated ? " (truncated by --capture-limit)" : ""}`, truncated ? { tone: "attention" } : {});
  if (s.uncaptured_datagrams > 0) {
    const n = s.uncaptured_datagrams;
    add("outcome", "uncaptured", `${n} datagram${n === 1 ? "" : "s"} (relayed while the capture was behind)`, { tone: "attention" });
  }

  if (s.protocol !== null) add("detection", "detected", protocolText(s), s.protocol_info === null ? {} : { detail: prettyJson(s.protocol_info) });
  if (options.tls !== undefined) tlsFields(options.tls, (label, value, tone) => add("tls", label, value, tone === undefined ? {} : { tone }));
  const tags = tagsText(s.tags);
  if (tags !== "") add("tags", "tags", tags, { tone: "addon" });
  return fields;
}

function comparisonFields(c: ReplayComparison, add: (label: string, value: string, tone?: FieldTone) => void): void {
  const d = c.datagrams;
  const sizes =
    d === undefined
      ? `received ${formatBytes(c.received)}, recorded ${formatBytes(c.expected)}`
      : `received ${d.received} datagram${d.received === 1 ? "" : "s"}, recorded ${d.expected}`;
  if (c.pending === true) return add("answer", `comparing… (${sizes} so far)`, "muted");
  if (c.difference === undefined) return add("answer", `same as recorded (${sizes})`, "good");
  const where = d?.answer === undefined ? "" : `answer ${d.answer + 1} `;
  add("answer", `${where}differs at byte ${c.difference.offset} (${sizes})`, "attention");
  add("  recorded", safeText(c.difference.expected) || "(end)");
  add("  now", safeText(c.difference.actual) || "(end)");
}

/**
 * One line for a session's TLS: the version and ALPN the client got (for a passthrough, the
 * highest version offered), the server name, and what happened: `TLS 1.3 · h2 · example.com
 * (intercepted)`, `TLS 1.2 · example.com (passthrough: filter)`, `TLS 1.3 · example.com (failed:
 * upstream-certificate)`. Terminal-safe.
 */
export function tlsSummary(t: TlsRow): string {
  const failed = t.failure_code !== null;
  const version = t.client_version ?? t.upstream_version ?? (t.intercepted === 1 && !failed ? null : (jsonStrings(t.versions_offered)[0] ?? null));
  const alpn = t.client_alpn ?? t.upstream_alpn;
  const how = failed ? `failed: ${t.failure_code}` : t.intercepted === 1 ? "intercepted" : `passthrough: ${t.decided_by}`;
  const parts = [version === null ? "TLS" : tlsVersionText(version), ...(alpn === null ? [] : [alpn]), t.sni ?? "no SNI"];
  return safeText(`${parts.join(" · ")} (${how})`);
}

/** "TLSv1.3" as "TLS 1.3" ("TLSv1" is 1.0); anything else as it is. */
export function tlsVersionText(version: string): string {
  if (version === "TLSv1") return "TLS 1.0";
  const m = /^TLSv(\d\.\d)$/.exec(version);
  return m === null ? version : `TLS ${m[1]}`;
}

/** The `tls` group: the summary, each side's parameters, what the client offered, the upstream certificate, the failure. */
function tlsFields(t: TlsRow, add: (label: string, value: string, tone?: FieldTone) => void): void {
  const failed = t.failure_code !== null;
  add("tls", tlsSummary(t), failed ? "failure" : undefined);
  add("  decided", safeText(Object.hasOwn(DECIDED, t.decided_by) ? DECIDED[t.decided_by]! : t.decided_by));
  const side = (version: string | null, cipher: string | null, alpn: string | null) =>
    safeText([tlsVersionText(version ?? "?"), cipher ?? "?", alpn === null ? "no ALPN" : `ALPN ${alpn}`].join(", "));
  if (t.client_version !== null) add("  client", side(t.client_version, t.client_cipher, t.client_alpn));
  if (t.upstream_version !== null) add("  upstream", side(t.upstream_version, t.upstream_cipher, t.upstream_alpn));
  const offeredAlpn = jsonStrings(t.alpn_offered);
  const offeredVersions = jsonStrings(t.versions_offered).map(tlsVersionText);
  const offered = [`ALPN ${offeredAlpn.length === 0 ? "none" : offeredAlpn.join(", ")}`, ...(offeredVersions.length === 0 ? [] : [offeredVersions.join(", ")])];
  add("  offered", safeText(offered.join("; ")));
  if (t.cert_subject !== null) add("  cert", safeText(t.cert_subject));
  if (t.cert_issuer !== null) add("  issuer", safeText(t.cert_issuer));
  const sans = jsonStrings(t.cert_sans);
  if (sans.length > 0) add("  names", safeText(sans.join(", ")));
  if (t.cert_valid_from !== null || t.cert_valid_to !== null) add("  valid", safeText(`${t.cert_valid_from ?? "?"} → ${t.cert_valid_to ?? "?"}`));
  if (t.cert_fingerprint !== null) add("  sha-256", safeText(t.cert_fingerprint));
  if (t.verification !== null) {
    const v = t.verification;
    add("  verified", safeText(v), v === "ok" ? "good" : v.startsWith("skipped") ? "attention" : "failure");
  }
  if (failed) {
    const message = t.failure_message === null || t.failure_message === "" ? "" : `: ${t.failure_message}`;
    add("  failure", safeText(`${t.failure_side ?? "?"} ${t.failure_code}${message}`), "failure");
  }
}

/** How intercept-or-passthrough was decided, in words (decided_by as stored). */
const DECIDED: Readonly<Record<string, string>> = {
  default: "default (run --tls)",
  filter: "filter (--tls-hosts / --tls-passthrough)",
  hook: "hook (an addon's onTlsClientHello)",
  "auto-passthrough": "auto-passthrough (the client rejected the CA earlier)",
};

function statusToneOf(s: SessionRow): FieldTone | undefined {
  switch (s.status) {
    case "open":
      return "attention";
    case "ok":
      return undefined;
    case "failed":
    case "denied":
    case "interrupted":
      return "failure";
    default: {
      // A crafted file may hold any text here: a plain fact, not a throw.
      const unexpected: never = s.status;
      void unexpected;
      return undefined;
    }
  }
}

/** An event as lines: `time kind code [addon hook] at location: message`, then the message's further lines. */
export function eventLines(e: EventRow): string[] {
  const who = [e.addon, e.hook].filter((x) => x !== null).join(" ");
  const where = `${who === "" ? "" : ` [${who}]`}${e.location === null ? "" : ` at ${e.location}`}`;
  const head = `${formatTime(e.at)} ${e.kind}${e.code === null ? "" : ` ${e.code}`}${where}`;
  const [first = "", ...rest] = e.message.split("\n");
  return [safeText(`${head}: ${first}`), ...rest.map(safeText)];
}

// --- stream headings -------------------------------------------------------------------------

/** `>>` and `client → target` for the client's bytes, `<<` and `target → client` for the answer. */
export function directionText(direction: "up" | "down"): { readonly arrow: ">>" | "<<"; readonly route: string } {
  return direction === "down" ? { arrow: "<<", route: "target → client" } : { arrow: ">>", route: "client → target" };
}

/**
 * Chunks as turns of the conversation, lazily (a capture's chunks may be many): consecutive chunks
 * of one direction that no addon touched merge into one turn; a chunk with a verdict (replaced,
 * dropped, injected, …) stands alone.
 */
export function* conversationTurns<C extends Pick<ChunkRow, "direction" | "verdict">>(chunks: Iterable<C>): Generator<C[]> {
  let turn: C[] = [];
  for (const c of chunks) {
    const joins = c.verdict === null && turn.length > 0 && turn[0]!.verdict === null && turn[0]!.direction === c.direction;
    if (!joins && turn.length > 0) yield turn;
    if (!joins) turn = [];
    turn.push(c);
  }
  if (turn.length > 0) yield turn;
}

/** What a turn's heading states: its first row, and how many reads and bytes it spans. */
export interface TurnFacts {
  readonly first: Pick<ChunkRow, "direction" | "at" | "seq" | "verdict">;
  /** The last read's seq when the turn spans several reads. */
  readonly lastSeq: number;
  /** Reads merged into the turn (1: one chunk, which may carry an addon's verdict). */
  readonly reads: number;
  /** Bytes relayed: received, or sent for an injected chunk. */
  readonly size: number;
  /** Of those, bytes stored (less when the capture limit cut them). */
  readonly kept: number;
}

/**
 * `>> 12:00:00.020 client → target #3 (120 bytes, changed: replace)`, `… #0–4 (900 bytes, 512 kept in
 * 5 reads)`, `… #7 (5 bytes, injected)`. Consecutive reads no addon touched read as one turn.
 */
export function turnHeading(t: TurnFacts): string {
  const d = directionText(t.first.direction);
  const sizes = t.kept === t.size ? `${t.size} bytes` : `${t.size} bytes, ${t.kept} kept`;
  const head = `${d.arrow} ${formatTime(t.first.at)} ${d.route}`;
  if (t.reads > 1) return `${head} #${t.first.seq}–${t.lastSeq} (${sizes} in ${t.reads} reads)`;
  const verdict = t.first.verdict === null ? "" : t.first.verdict === "inject" ? ", injected" : `, changed: ${safeText(t.first.verdict)}`;
  return `${head} #${t.first.seq} (${sizes}${verdict})`;
}

/**
 * `>> 12:00:00.030 client 127.0.0.1:40000 → 8.8.8.8:53 #0 (4 bytes)`, with where it was sent when an
 * addon changed it, the client's address an answer went to, and a drop's reason.
 */
export function datagramHeading(g: Omit<DatagramRow, "id" | "session_id" | "peer_type" | "data" | "sent">): string {
  const d = directionText(g.direction);
  const peer = endpointText(g.peer_host, g.peer_port, "?");
  const to = endpointText(g.to_host, g.to_port, "?");
  const route =
    g.direction === "up"
      ? `client ${endpointText(g.from_host, g.from_port)} → ${peer}${g.to_host !== null && to !== peer ? ` (sent to ${to})` : ""}`
      : `${peer} → client${g.to_host === null ? "" : ` ${to}`}`;
  const dropped = `, dropped: ${safeText(g.reason ?? "?")}${g.detail === null ? "" : ` (${safeText(g.detail)})`}`;
  const verdict = g.verdict === "dropped" ? dropped : g.verdict === "injected" ? ", injected" : "";
  return `${d.arrow} ${formatTime(g.at)} ${route} #${g.seq} (${g.size} bytes${verdict})`;
}

// --- short facts, also used by the session list ----------------------------------------------

/** `host:port` of a nullable pair, safe to draw; `fallback` when there is no host. */
export function endpointText(host: string | null, port: number | null, fallback = "-"): string {
  return host === null ? fallback : safeText(formatEndpoint({ host, port: port ?? 0 }));
}

/** True when an addon sent the session somewhere other than where the client asked. */
export function isRedirected(s: SessionRow): boolean {
  return s.requested_host !== null && s.target_host !== null && (s.requested_host !== s.target_host || s.requested_port !== s.target_port);
}

/** How long the session lasted, or has lasted so far while open (`now`); "?" when it never closed (interrupted). */
export function durationText(s: SessionRow, now: number): string {
  if (s.closed_at !== null) return formatDuration(s.closed_at - s.opened_at);
  if (s.status === "open") return formatDuration(Math.max(0, now - s.opened_at));
  return "?";
}

/** `tls example.com`, `http`, or "" when nothing was detected. */
export function protocolText(s: SessionRow): string {
  if (s.protocol === null) return "";
  return safeText(s.sni === null ? s.protocol : `${s.protocol} ${s.sni}`);
}

/** The tags object as `key=value key2=value2` (non-string values as JSON); "" when none or not an object. */
export function tagsText(json: string): string {
  try {
    const tags: unknown = JSON.parse(json);
    if (tags === null || typeof tags !== "object" || Array.isArray(tags)) return "";
    return safeText(
      Object.entries(tags as Record<string, unknown>)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" "),
    );
  } catch {
    return "";
  }
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? "?" : d.toISOString();
}

/** Pretty JSON, safe to draw, one string per line; the raw text when it is not JSON. */
function prettyJson(json: string): string[] {
  try {
    return JSON.stringify(JSON.parse(json), null, 2).split("\n").map(safeText);
  } catch {
    return [safeText(json)];
  }
}

/** The strings of a JSON array (anything else in it as text); [] when absent or not an array. */
function jsonStrings(json: string | null): string[] {
  if (json === null) return [];
  try {
    const items: unknown = JSON.parse(json);
    return Array.isArray(items) ? items.map(String) : [];
  } catch {
    return [];
  }
}

/** A JSON array as "a, b, c"; "" when absent or empty; the raw text when not an array. */
/**
 * The upstream hops in order (`socks5h://a:1080 → http://b:3128`), or `direct` when the session
 * had none (null, or a column that is not a list of hops).
 */
export function routeText(json: string | null): string {
  const hops = routeHops(json);
  return hops.length === 0 ? "direct" : safeText(hops.join(" → "));
}

/** The hops of a `route` column (JSON array of strings); [] for direct, or for anything that is not such an array. */
export function routeHops(json: string | null): string[] {
  if (json === null) return [];
  try {
    const items: unknown = JSON.parse(json);
    return Array.isArray(items) ? items.filter((h): h is string => typeof h === "string") : [];
  } catch {
    return [];
  }
}

function stringList(json: string | null): string {
  if (json === null) return "";
  try {
    const items: unknown = JSON.parse(json);
    return Array.isArray(items) ? safeText(items.map(String).join(", ")) : safeText(json);
  } catch {
    return safeText(json);
  }
}

/** The offered SOCKS5 methods by name (`none, userpass`), unknown codes in hex; "" when absent. */
function offeredMethods(json: string | null): string {
  if (json === null) return "";
  try {
    const items: unknown = JSON.parse(json);
    if (!Array.isArray(items)) return safeText(json);
    return items.map((m) => (typeof m === "number" ? (METHOD_NAMES[m] ?? `0x${m.toString(16).padStart(2, "0")}`) : safeText(String(m)))).join(", ");
  } catch {
    return safeText(json);
  }
}

/** SOCKS5 METHOD codes (RFC 1928 §3) by the names the store uses for the chosen one. */
const METHOD_NAMES: Readonly<Record<number, string>> = { 0: "none", 1: "gssapi", 2: "userpass" };
