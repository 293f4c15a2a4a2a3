/**
 * How facts become column values, one mapping for every writer of the capture file: the
 * recorder (live sessions) and replayed-session.ts (a client replay recorded as a session).
 */
import type { Detection } from "../detect/index.js";
import type { TlsDecidedBy, TlsFact, TlsFailure } from "../engine/index.js";
import type { SessionStatus, TlsRow } from "./schema.js";

/** How a session ended, in the filter language's terms. */
export function statusOf(rep: number | undefined, code: string | undefined, reason: string): SessionStatus {
  if (rep === 0) return "ok";
  if (reason === "auth-failed" || reason === "rejected" || reason === "session-limit") return "denied";
  if (rep === 0x02 || code === "DENIED") return "denied";
  return "failed";
}

/** What the protocol sniffer found, as the `detected` columns (protocol, sni, info); undefined when it found nothing. */
export function storedDetection(d: Detection): { protocol: string; sni: string | null; info: string | null } | undefined {
  switch (d.kind) {
    case "need-more":
    case "unknown":
      return undefined;
    case "tls":
      return { protocol: "tls", sni: d.sni ?? null, info: JSON.stringify({ alpn: d.alpn, ...(d.version === undefined ? {} : { version: d.version }) }) };
    case "http":
      return { protocol: "http", sni: d.host ?? null, info: JSON.stringify({ method: d.method, path: d.path, host: d.host, version: d.version }) };
    case "http2":
      return { protocol: "http2", sni: null, info: null };
    case "ssh":
      return { protocol: "ssh", sni: null, info: JSON.stringify({ banner: d.banner }) };
  }
}

/**
 * A reply fact's route as the `route` column: a JSON array of hops, null when it went direct
 * (absent or empty). The engine reports hops without credentials; a `user:pass@` that got in all
 * the same is cut here, because the capture never holds a password.
 */
export function storedRoute(route: readonly string[] | undefined): string | null {
  if (route === undefined || route.length === 0) return null;
  return JSON.stringify(route.map(withoutCredentials));
}

/**
 * `scheme://user:pass@host:port` → `scheme://host:port`. A hop has no path, so everything from
 * after `//` to the last `@` goes: a password holding `@`, `/` or `:` is cut whole.
 */
export function withoutCredentials(hop: string): string {
  const from = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(hop)?.[0].length ?? 0;
  const at = hop.lastIndexOf("@");
  return at < from ? hop : hop.slice(0, from) + hop.slice(at + 1);
}

/** A TLS fact as its `tls` row (without the session id). */
export function tlsRow(f: TlsFact): Omit<TlsRow, "session_id"> {
  const c = f.certificate;
  return {
    at: f.at,
    intercepted: f.intercepted ? 1 : 0,
    decided_by: f.decidedBy,
    sni: f.hello.sni ?? null,
    alpn_offered: JSON.stringify(f.hello.alpn),
    versions_offered: JSON.stringify(f.hello.versions),
    client_version: f.client?.version ?? null,
    client_cipher: f.client?.cipher ?? null,
    client_alpn: f.client?.alpn ?? null,
    upstream_version: f.upstream?.version ?? null,
    upstream_cipher: f.upstream?.cipher ?? null,
    upstream_alpn: f.upstream?.alpn ?? null,
    cert_subject: c?.subject ?? null,
    cert_issuer: c?.issuer ?? null,
    cert_sans: c === undefined ? null : JSON.stringify(c.sans),
    cert_valid_from: c?.validFrom ?? null,
    cert_valid_to: c?.validTo ?? null,
    cert_fingerprint: c?.fingerprint256 ?? null,
    verification: f.verification ?? null,
    failure_side: f.failure?.side ?? null,
    failure_code: f.failure?.code ?? null,
    failure_message: f.failure?.message ?? null,
  };
}

/** Why a tunnel was passed through, after "TLS passthrough (…)". */
const PASSTHROUGH_WHY: Readonly<Record<TlsDecidedBy, string>> = {
  default: "default: not chosen for interception",
  filter: "filter: --tls-hosts / --tls-passthrough",
  hook: "hook: an addon's onTlsClientHello",
  "auto-passthrough": "auto-passthrough: the client rejected the CA earlier",
};

/**
 * The event a TLS fact becomes, in words a user understands; undefined for an intercepted
 * session whose handshakes both finished. A failure's `message` is a sentence that names the host
 * (tls/interceptor.ts writes "the client does not trust the socksmith CA for example.com (…)"):
 * it is kept as it is after "TLS: " (a leading "TLS " of its own dropped). An empty one is worded
 * here from the code and the host (the SNI, else `host`, the destination requested).
 */
export function tlsEventMessage(f: TlsFact, host: string | null): { code: string; message: string } | undefined {
  const failure = f.failure;
  if (failure !== undefined) {
    const said = failure.message.trim().replace(/^TLS /, "");
    return { code: failure.code, message: `TLS: ${said === "" ? failureLead(failure, f.hello.sni ?? host ?? "the target") : said}` };
  }
  if (!f.intercepted) {
    const why = (PASSTHROUGH_WHY as Record<string, string | undefined>)[f.decidedBy] ?? f.decidedBy;
    return { code: "passthrough", message: `TLS passthrough (${why})` };
  }
  return undefined;
}

/** A failure in words when the interceptor gave none. */
function failureLead(failure: TlsFailure, name: string): string {
  switch (failure.code) {
    case "client-rejected-certificate":
      return `the client does not trust the socksmith CA for ${name}`;
    case "upstream-certificate":
      return `the certificate of ${name} was refused`;
    case "upstream-handshake":
      return `handshake with ${name} failed`;
    case "client-handshake":
      return `handshake with the client for ${name} failed`;
    default:
      return `${failure.side === "client" ? "the client's" : "the upstream's"} handshake for ${name} failed (${failure.code})`;
  }
}
