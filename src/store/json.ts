/**
 * Capture rows as JSON for scripts (`sessions --json`, `show --json`, `export --format json`):
 * nested, camelCase, times as ISO strings next to epoch milliseconds, payload as base64.
 * This shape is a public interface: add fields, never rename them.
 */
import { routeHops } from "../format/session-fields.js";
import type { ChunkRow, DatagramRow, EventRow, SessionRow, TlsRow } from "./schema.js";

const endpoint = (host: string | null, port: number | null) => (host === null ? null : { host, port });
/** The upstream hops in order (`scheme://host:port`); null when the session went direct. */
const route = (text: string | null) => {
  const hops = routeHops(text);
  return hops.length === 0 ? null : hops;
};
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function parsed<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/**
 * A session. `tls`: its TLS row when the caller looked it up (`reader.tls(id) ?? null`); the `tls`
 * field is then that row as tlsJson gives it, or null when the session has none. Without the
 * argument the field is left out (not looked up is not "no TLS").
 */
export function sessionJson(s: SessionRow, tls?: TlsRow | null) {
  return {
    id: s.id,
    run: s.run_id,
    engineId: s.engine_id,
    openedAt: iso(s.opened_at),
    openedAtMs: s.opened_at,
    closedAt: iso(s.closed_at),
    durationMs: s.closed_at === null ? null : Math.round(s.closed_at - s.opened_at),
    client: endpoint(s.client_host, s.client_port),
    local: endpoint(s.local_host, s.local_port),
    version: s.version,
    command: s.command,
    auth: { method: s.auth_method, offered: parsed<number[]>(s.auth_offered, []), user: s.user },
    requested: s.requested_host === null ? null : { type: s.requested_type, host: s.requested_host, port: s.requested_port },
    target: endpoint(s.target_host, s.target_port),
    remote: endpoint(s.remote_host, s.remote_port),
    bound: endpoint(s.bound_host, s.bound_port),
    reply: s.reply === null ? null : { rep: s.reply, code: s.reply_code, errno: s.errno },
    attempts: parsed<string[] | null>(s.attempts, null),
    /** The upstream hops in order (`scheme://host:port`); null when the session went direct. */
    route: route(s.route),
    status: s.status,
    closeReason: s.close_reason,
    closeErrno: s.close_errno,
    bytes: { upReceived: s.bytes_up_received, upSent: s.bytes_up_sent, downReceived: s.bytes_down_received, downSent: s.bytes_down_sent },
    capturedBytes: s.captured_bytes,
    truncated: s.truncated === 1,
    protocol: s.protocol,
    sni: s.sni,
    protocolInfo: parsed<Record<string, unknown> | null>(s.protocol_info, null),
    tags: parsed<Record<string, string>>(s.tags, {}),
    replayOf: s.replay_of,
    servedFrom: s.served_from,
    ...(tls === undefined ? {} : { tls: tls === null ? null : tlsJson(tls) }),
  };
}

/** What TLS interception learned: the ClientHello, each side's handshake, the upstream certificate, a failure. */
export function tlsJson(t: TlsRow) {
  const side = (version: string | null, cipher: string | null, alpn: string | null) => (version === null ? null : { version, cipher, alpn });
  return {
    at: iso(t.at),
    atMs: t.at,
    intercepted: t.intercepted === 1,
    decidedBy: t.decided_by,
    hello: { sni: t.sni, alpn: parsed<string[]>(t.alpn_offered, []), versions: parsed<string[]>(t.versions_offered, []) },
    client: side(t.client_version, t.client_cipher, t.client_alpn),
    upstream: side(t.upstream_version, t.upstream_cipher, t.upstream_alpn),
    certificate:
      t.cert_subject === null && t.cert_fingerprint === null
        ? null
        : {
            subject: t.cert_subject,
            issuer: t.cert_issuer,
            sans: parsed<string[]>(t.cert_sans, []),
            validFrom: t.cert_valid_from,
            validTo: t.cert_valid_to,
            fingerprint256: t.cert_fingerprint,
          },
    verification: t.verification,
    failure: t.failure_code === null ? null : { side: t.failure_side, code: t.failure_code, message: t.failure_message },
  };
}

export function chunkJson(c: ChunkRow) {
  return {
    seq: c.seq,
    at: iso(c.at),
    atMs: c.at,
    direction: c.direction,
    size: c.size,
    data: c.data.toString("base64"),
    sent: c.sent === null ? null : c.sent.toString("base64"),
    verdict: c.verdict,
  };
}

export function datagramJson(d: DatagramRow) {
  return {
    seq: d.seq,
    at: iso(d.at),
    atMs: d.at,
    direction: d.direction,
    peer: d.peer_host === null ? null : { type: d.peer_type, host: d.peer_host, port: d.peer_port },
    from: endpoint(d.from_host, d.from_port),
    to: endpoint(d.to_host, d.to_port),
    size: d.size,
    data: d.data.toString("base64"),
    sent: d.sent === null ? null : d.sent.toString("base64"),
    verdict: d.verdict,
    reason: d.reason,
    detail: d.detail,
  };
}

export function eventJson(e: EventRow) {
  return { at: iso(e.at), atMs: e.at, kind: e.kind, addon: e.addon, hook: e.hook, location: e.location, code: e.code, message: e.message };
}
