/**
 * `--tls-hosts` / `--tls-passthrough`: a filter (the filter language) decided on a tunnel that
 * has only just begun. The filter sees a session row holding what is known at the ClientHello:
 * the requested and dialled destination, the resolved address, `sni`, `proto:tls` and
 * `cmd:connect`, and a tls row with the offers (`tls`, `alpn:` on what the client offered); everything
 * decided later (reply, bytes, close, tags, negotiated parameters) is empty, so terms on it do not match.
 * Payload terms (`~`) cannot be decided this early and are refused where the option is read.
 */
import type { Endpoint, TlsHello } from "../engine/index.js";
import { toPredicate, type Filter } from "../filter/index.js";
import type { SessionRow, TlsRow } from "../model/capture-rows.js";
import type { HostMatcher } from "./interceptor.js";

export function hostMatcher(filter: Filter): HostMatcher {
  const predicate = toPredicate(filter);
  return (hello: TlsHello, target: Endpoint, remote?: Endpoint) => {
    const tls = helloTlsRow(hello);
    return predicate(helloRow(hello, target, remote), { now: Date.now(), tls: () => tls });
  };
}

/** The tls row as far as the ClientHello tells: what was offered, nothing negotiated yet. */
function helloTlsRow(hello: TlsHello): TlsRow {
  return {
    session_id: 0,
    at: 0,
    intercepted: 0,
    decided_by: "default",
    sni: hello.sni ?? null,
    alpn_offered: JSON.stringify(hello.alpn),
    versions_offered: JSON.stringify(hello.versions),
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
}

/** The session as far as it is known when its ClientHello has been read. */
function helloRow(hello: TlsHello, target: Endpoint, remote: Endpoint | undefined): SessionRow {
  return {
    id: 0,
    run_id: 0,
    engine_id: 0,
    opened_at: 0,
    client_host: "",
    client_port: 0,
    local_host: "",
    local_port: 0,
    version: null,
    command: "connect",
    auth_method: null,
    auth_offered: null,
    user: null,
    requested_type: null,
    requested_host: target.host,
    requested_port: target.port,
    requested_at: null,
    target_host: target.host,
    target_port: target.port,
    remote_host: remote?.host ?? null,
    remote_port: remote?.port ?? null,
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
    protocol: "tls",
    sni: hello.sni ?? null,
    protocol_info: JSON.stringify({ alpn: hello.alpn }),
    tags: "{}",
    replay_of: null,
    served_from: null,
  };
}
