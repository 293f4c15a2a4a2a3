/**
 * One log line per session, written when it ends (like mitmdump): an EngineObserver that
 * gathers the facts of each open session and prints them together. The lines of sessions that
 * end in the same turn of the event loop go out in one `write` (joined by newlines, so the output
 * is the same bytes), at the end of that turn: one write to stdout, a system call, for many
 * sessions rather than one each (about a tenth of a short session's CPU otherwise).
 *
 * Security: hosts, user names and tags come from clients, targets and addons. Every line this
 * module makes goes through safeText / safeJson (format/safe-text.ts), so it never carries a
 * control, bidi or line-break character to the terminal.
 */
import {
  REP_NAMES,
  formatEndpoint,
  type AuthFact,
  type DatagramFact,
  type EngineObserver,
  type ReplyFact,
  type RequestFact,
  type SessionClosedFact,
  type SessionOpenedFact,
} from "../engine/index.js";
import { safeJson, safeText } from "../format/index.js";

export type LogFormat = "text" | "json";

interface Open {
  opened: SessionOpenedFact;
  auth?: AuthFact;
  request?: RequestFact;
  reply?: ReplyFact;
  anomalies?: string[];
  datagrams?: { up: number; down: number; dropped: number };
  tags?: Record<string, string>;
}

export class SessionLog implements EngineObserver {
  private readonly open = new Map<number, Open>();
  /** Lines of sessions that ended in this turn of the event loop, not yet written. */
  private pending: string[] = [];

  constructor(
    private readonly format: LogFormat,
    /** Writes text followed by a newline; one call may carry several lines, joined by newlines. */
    private readonly write: (line: string) => void,
    /** The number a session is shown with: its capture id when capturing (what `show ID` takes). */
    private readonly displayId: (engineId: number) => number = (id) => id,
  ) {}

  sessionOpened(fact: SessionOpenedFact): void {
    this.open.set(fact.id, { opened: fact });
  }

  authenticated(fact: AuthFact): void {
    const s = this.open.get(fact.id);
    if (s) s.auth = fact;
  }

  requested(fact: RequestFact): void {
    const s = this.open.get(fact.id);
    if (s) s.request = fact;
  }

  replied(fact: ReplyFact): void {
    const s = this.open.get(fact.id);
    if (s) s.reply = fact;
  }

  anomaly(fact: { id: number; code: string }): void {
    const s = this.open.get(fact.id);
    if (s) (s.anomalies ??= []).push(fact.code);
  }

  /** An addon tagged the session (`ctx.tag`). */
  tagged(id: number, key: string, value: string): void {
    const s = this.open.get(id);
    if (s) (s.tags ??= {})[key] = value;
  }

  datagram(fact: DatagramFact): void {
    const s = this.open.get(fact.id);
    if (s === undefined) return;
    const d = (s.datagrams ??= { up: 0, down: 0, dropped: 0 });
    if (fact.verdict === "dropped") d.dropped++;
    else if (fact.direction === "up") d.up++;
    else d.down++;
  }

  sessionClosed(fact: SessionClosedFact): void {
    const s = this.open.get(fact.id);
    if (s === undefined) return;
    this.open.delete(fact.id);
    const line = this.format === "json" ? jsonLine(s, fact, this.displayId(fact.id)) : textLine(s, fact, this.displayId(fact.id));
    if (this.pending.push(line) === 1) setImmediate(this.flush);
  }

  /** Writes the pending lines (at the end of the turn in which their sessions ended). */
  private readonly flush = (): void => {
    const lines = this.pending;
    this.pending = [];
    if (lines.length > 0) this.write(lines.join("\n"));
  };
}

function versionName(v: 4 | "4a" | 5 | undefined): string {
  return v === undefined ? "-" : v === 5 ? "socks5" : v === "4a" ? "socks4a" : "socks4";
}

function textLine(s: Open, closed: SessionClosedFact, id: number): string {
  const { opened, request, reply } = s;
  const parts = [new Date(opened.at).toISOString(), `#${id}`, formatEndpoint(opened.client)];
  parts.push(versionName(request?.version ?? s.auth?.version));
  if (request) {
    const dest = formatEndpoint(request.destination);
    const target = reply?.target !== undefined && formatEndpoint(reply.target) !== dest ? ` => ${formatEndpoint(reply.target)}` : "";
    parts.push(`${request.command.toUpperCase()} ${dest}${target}`);
  }
  if (request?.user !== undefined) parts.push(`user=${JSON.stringify(request.user)}`);
  if (reply) {
    const rep = `${reply.rep.toString(16).padStart(2, "0")} ${REP_NAMES[reply.rep] ?? "?"}`;
    parts.push(reply.errno === undefined ? rep : `${rep} (${reply.errno})`);
  }
  parts.push(`up ${size(closed.bytesUpReceived)}`, `down ${size(closed.bytesDownReceived)}`);
  if (s.datagrams) parts.push(`datagrams ${s.datagrams.up} up ${s.datagrams.down} down ${s.datagrams.dropped} dropped`);
  parts.push(duration(closed.at - opened.at), closed.errno === undefined ? closed.reason : `${closed.reason} (${closed.errno})`);
  if (s.anomalies) parts.push(`[${s.anomalies.join(",")}]`);
  if (s.tags)
    parts.push(
      Object.entries(s.tags)
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    );
  // The whole line: our own words are safe already, every field from the wire or an addon is escaped.
  return safeText(parts.join(" "));
}

function jsonLine(s: Open, closed: SessionClosedFact, id: number): string {
  const { opened, request, reply, auth } = s;
  return safeJson({
    event: "session",
    id,
    start: new Date(opened.at).toISOString(),
    client: opened.client,
    version: request?.version ?? auth?.version ?? null,
    command: request?.command ?? null,
    destination: request ? { host: request.destination.host, port: request.destination.port } : null,
    target: reply?.target ?? null,
    remote: reply?.remote ?? null,
    user: request?.user ?? auth?.user ?? null,
    authMethod: auth?.method ?? null,
    rep: reply?.rep ?? null,
    errno: reply?.errno ?? null,
    bytesUp: closed.bytesUpReceived,
    bytesDown: closed.bytesDownReceived,
    durationMs: closed.at - opened.at,
    reason: closed.reason,
    ...(closed.errno === undefined ? {} : { closeErrno: closed.errno }),
    ...(s.anomalies ? { anomalies: s.anomalies } : {}),
    ...(s.datagrams ? { datagrams: s.datagrams } : {}),
    ...(s.tags ? { tags: s.tags } : {}),
  });
}

/**
 * One line of the CLI's own log (stderr: addon messages, hook errors, warnings), which quotes
 * addon text, hosts and error messages: made safe like the session lines.
 */
export function logLine(format: LogFormat, level: string, message: string, fields?: Record<string, unknown>): string {
  return format === "json" ? safeJson({ event: "log", level, message, ...fields }) : safeText(`${level}: ${message}`);
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)}KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)}MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)}GB`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}
