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
import { sessionRowOf, tlsRowOf } from "../filter/session-row-of.js";
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
  return tlsRowOf({ sni: hello.sni ?? null, alpn_offered: JSON.stringify(hello.alpn), versions_offered: JSON.stringify(hello.versions) });
}

/** The session as far as it is known when its ClientHello has been read. */
function helloRow(hello: TlsHello, target: Endpoint, remote: Endpoint | undefined): SessionRow {
  return sessionRowOf({
    command: "connect",
    requested_host: target.host,
    requested_port: target.port,
    target_host: target.host,
    target_port: target.port,
    remote_host: remote?.host ?? null,
    remote_port: remote?.port ?? null,
    protocol: "tls",
    sni: hello.sni ?? null,
    protocol_info: JSON.stringify({ alpn: hello.alpn }),
  });
}
