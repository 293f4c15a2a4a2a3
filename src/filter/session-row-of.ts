/**
 * A session row for a session that has only just begun (a request being decided, a ClientHello
 * just read): the fields known so far, everything else empty (null, 0, no tags), so a filter term
 * on something not yet known does not match. For filters decided at run time (`--route`,
 * `--tls-hosts`), evaluated with `toPredicate`.
 */
import type { SessionRow, TlsRow } from "../model/capture-rows.js";

const NOTHING_YET: SessionRow = {
  id: 0,
  run_id: 0,
  engine_id: 0,
  opened_at: 0,
  client_host: "",
  client_port: 0,
  local_host: "",
  local_port: 0,
  version: null,
  command: null,
  auth_method: null,
  auth_offered: null,
  user: null,
  requested_type: null,
  requested_host: null,
  requested_port: null,
  requested_at: null,
  target_host: null,
  target_port: null,
  remote_host: null,
  remote_port: null,
  bound_host: null,
  bound_port: null,
  reply: null,
  reply_code: null,
  errno: null,
  replied_at: null,
  attempts: null,
  status: "open",
  close_reason: null,
  close_errno: null,
  closed_at: null,
  bytes_up_received: 0,
  bytes_up_sent: 0,
  bytes_down_received: 0,
  bytes_down_sent: 0,
  captured_bytes: 0,
  truncated: 0,
  uncaptured_datagrams: 0,
  protocol: null,
  sni: null,
  protocol_info: null,
  tags: "{}",
  replay_of: null,
  served_from: null,
  route: null,
};

export function sessionRowOf(known: Partial<SessionRow>): SessionRow {
  return { ...NOTHING_YET, ...known };
}

const NO_TLS_FACTS: TlsRow = {
  session_id: 0,
  at: 0,
  intercepted: 0,
  decided_by: "default",
  sni: null,
  alpn_offered: "[]",
  versions_offered: "[]",
  client_version: null,
  client_cipher: null,
  client_alpn: null,
  upstream_version: null,
  upstream_cipher: null,
  upstream_alpn: null,
  cert_subject: null,
  cert_issuer: null,
  cert_sans: null,
  cert_valid_from: null,
  cert_valid_to: null,
  cert_fingerprint: null,
  verification: null,
  failure_side: null,
  failure_code: null,
  failure_message: null,
};

/** A session's tls row with the facts known so far (a ClientHello's offers), nothing negotiated: as `sessionRowOf` for the tls table. */
export function tlsRowOf(known: Partial<TlsRow>): TlsRow {
  return { ...NO_TLS_FACTS, ...known };
}
