/**
 * TLS facts in the capture: the recorder's `tls` observer method through the real transport and
 * writer thread into a real file, read back with the reader (row, events, JSON); and a schema 2
 * file (before the `tls` table) opening and taking TLS rows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { describeSession } from "../../src/cli/commands/show.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { TlsFact } from "../../src/engine/index.js";
import { openCapture } from "../../src/store/database.js";
import { sessionJson } from "../../src/store/json.js";
import { CaptureReader } from "../../src/store/reader.js";
import { Recorder } from "../../src/store/recorder.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/schema.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-tls-capture-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const AT = 1_700_000_000_000;

const CERTIFICATE = {
  subject: "CN=example.com",
  issuer: "CN=Test Root,O=Test",
  sans: ["DNS:example.com", "DNS:www.example.com"],
  validFrom: "2026-01-01T00:00:00.000Z",
  validTo: "2027-01-01T00:00:00.000Z",
  fingerprint256: "AB:CD:EF:01",
};

/** A CONNECT session fed by hand through the recorder's observer methods, with `tls` reported before its relay. */
function session(recorder: Recorder, id: number, host: string, tls: Omit<TlsFact, "id" | "at">): void {
  recorder.sessionOpened({ id, at: AT, client: { host: "127.0.0.1", port: 40000 + id }, local: { host: "127.0.0.1", port: 1080 } });
  recorder.requested({
    id,
    at: AT + 1,
    version: 5,
    command: "connect",
    destination: { type: "domain", host, port: 443 },
    client: { host: "127.0.0.1", port: 40000 + id },
  });
  recorder.replied({ id, at: AT + 2, version: 5, command: "connect", stage: "final", rep: 0, bound: { host: "127.0.0.1", port: 5000 } });
  recorder.tls({ id, at: AT + 3, ...tls });
  if (tls.intercepted) {
    recorder.chunk({ id, direction: "up", seq: 0, at: AT + 4, received: Buffer.from("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") });
  }
  recorder.sessionClosed({ id, at: AT + 5, reason: "completed", bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 });
}

async function recorded(feed: (recorder: Recorder) => void, file = join(root, `c${++counter}.db`)): Promise<CaptureReader> {
  const recorder = new Recorder(file, { now: () => AT });
  cleanups.push(() => recorder.close());
  feed(recorder);
  await recorder.close();
  const reader = new CaptureReader(file);
  cleanups.push(() => reader.close());
  return reader;
}

describe("TLS facts in the capture", () => {
  it("stores an intercepted session's row: hello, both sides, the certificate, no event", async () => {
    const reader = await recorded((r) =>
      session(r, 1, "example.com", {
        intercepted: true,
        decidedBy: "default",
        hello: { sni: "example.com", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3", "TLSv1.2"] },
        client: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "h2" },
        upstream: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", alpn: "h2" },
        certificate: CERTIFICATE,
        verification: "ok",
      }),
    );
    const [s] = reader.sessions();
    const row = reader.tls(s!.id);
    expect(row).toEqual({
      session_id: s!.id,
      at: AT + 3,
      intercepted: 1,
      decided_by: "default",
      sni: "example.com",
      alpn_offered: '["h2","http/1.1"]',
      versions_offered: '["TLSv1.3","TLSv1.2"]',
      client_version: "TLSv1.3",
      client_cipher: "TLS_AES_128_GCM_SHA256",
      client_alpn: "h2",
      upstream_version: "TLSv1.3",
      upstream_cipher: "TLS_AES_256_GCM_SHA384",
      upstream_alpn: "h2",
      cert_subject: "CN=example.com",
      cert_issuer: "CN=Test Root,O=Test",
      cert_sans: '["DNS:example.com","DNS:www.example.com"]',
      cert_valid_from: "2026-01-01T00:00:00.000Z",
      cert_valid_to: "2027-01-01T00:00:00.000Z",
      cert_fingerprint: "AB:CD:EF:01",
      verification: "ok",
      failure_side: null,
      failure_code: null,
      failure_message: null,
    });
    expect(reader.events(s!.id)).toEqual([]);
    // The decrypted chunk is stored as any other, and the sniffer sees the plaintext.
    expect([...reader.chunks(s!.id)].map((c) => c.data.toString("latin1"))).toEqual(["GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"]);
    expect(s!.protocol).toBe("http");

    const json = sessionJson(s!, row ?? null);
    expect(json.tls).toEqual({
      at: new Date(AT + 3).toISOString(),
      atMs: AT + 3,
      intercepted: true,
      decidedBy: "default",
      hello: { sni: "example.com", alpn: ["h2", "http/1.1"], versions: ["TLSv1.3", "TLSv1.2"] },
      client: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "h2" },
      upstream: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", alpn: "h2" },
      certificate: { ...CERTIFICATE },
      verification: "ok",
      failure: null,
    });
    // Fields are only added: the JSON of a session without a lookup has no tls key at all.
    expect("tls" in sessionJson(s!)).toBe(false);
    // show reads the row back through the reader: the TLS line over the decrypted stream.
    const shown = [...describeSession(reader, s!, { hex: false, maxBytes: Infinity })];
    expect(shown).toContain("tls:        TLS 1.3 · h2 · example.com (intercepted)");
    expect(shown).toContain("  upstream: TLS 1.3, TLS_AES_256_GCM_SHA384, ALPN h2");
    expect(shown.join("\n")).toMatch(/stream:\n>> \S+ client → target #0 \(37 bytes\)\n {3}GET \/ HTTP\/1\.1/);
  });

  it("records failures and passthroughs as events in words a user understands", async () => {
    const reader = await recorded((r) => {
      session(r, 1, "pinned.example", {
        intercepted: true,
        decidedBy: "default",
        hello: { sni: "pinned.example", alpn: [], versions: ["TLSv1.3"] },
        upstream: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" },
        certificate: CERTIFICATE,
        verification: "ok",
        failure: {
          side: "client",
          code: "client-rejected-certificate",
          message: "the client does not trust the socksmith CA for pinned.example (alert unknown_ca)",
        },
      });
      session(r, 2, "expired.example", {
        intercepted: true,
        decidedBy: "default",
        hello: { sni: "expired.example", alpn: ["http/1.1"], versions: ["TLSv1.3"] },
        certificate: { ...CERTIFICATE, subject: "CN=expired.example" },
        verification: "certificate has expired",
        failure: { side: "upstream", code: "upstream-certificate", message: "the certificate of expired.example was refused: certificate has expired" },
      });
      session(r, 3, "pinned.example", {
        intercepted: false,
        decidedBy: "auto-passthrough",
        hello: { sni: "pinned.example", alpn: [], versions: ["TLSv1.3"] },
      });
      session(r, 4, "192.0.2.7", {
        intercepted: true,
        decidedBy: "hook",
        hello: { alpn: [], versions: ["TLSv1.2"] },
        failure: { side: "upstream", code: "upstream-handshake", message: "TLS handshake with 192.0.2.7 failed: alert handshake_failure" },
      });
      session(r, 5, "filtered.example", {
        intercepted: false,
        decidedBy: "filter",
        hello: { sni: "filtered.example", alpn: ["h2"], versions: ["TLSv1.3"] },
      });
    });
    const events = reader
      .sessions({ order: "oldest" })
      .map((s) => reader.events(s.id).map((e) => ({ kind: e.kind, code: e.code, message: e.message, at: e.at })));
    expect(events).toEqual([
      [
        {
          kind: "tls",
          code: "client-rejected-certificate",
          message: "TLS: the client does not trust the socksmith CA for pinned.example (alert unknown_ca)",
          at: AT + 3,
        },
      ],
      [{ kind: "tls", code: "upstream-certificate", message: "TLS: the certificate of expired.example was refused: certificate has expired", at: AT + 3 }],
      [{ kind: "tls", code: "passthrough", message: "TLS passthrough (auto-passthrough: the client rejected the CA earlier)", at: AT + 3 }],
      [{ kind: "tls", code: "upstream-handshake", message: "TLS: handshake with 192.0.2.7 failed: alert handshake_failure", at: AT + 3 }],
      [{ kind: "tls", code: "passthrough", message: "TLS passthrough (filter: --tls-hosts / --tls-passthrough)", at: AT + 3 }],
    ]);
    const second = reader.sessions({ order: "oldest" })[1]!;
    const shown = [...describeSession(reader, second, { hex: false, maxBytes: Infinity })].join("\n");
    expect(shown).toContain("tls:        TLS 1.3 · expired.example (failed: upstream-certificate)");
    expect(shown).toMatch(/events:\n {2}\S+ tls upstream-certificate: TLS: the certificate of expired\.example was refused: certificate has expired/);
    const failed = reader.tls(second.id)!;
    expect([failed.failure_side, failed.failure_code, failed.failure_message, failed.client_version, failed.upstream_version]).toEqual([
      "upstream",
      "upstream-certificate",
      "the certificate of expired.example was refused: certificate has expired",
      null,
      null,
    ]);
  });

  it("words a failure that came without a message from its code, naming the SNI or else the destination requested", async () => {
    const reader = await recorded((r) => {
      session(r, 1, "pinned.example", {
        intercepted: true,
        decidedBy: "default",
        hello: { sni: "pinned.example", alpn: [], versions: ["TLSv1.3"] },
        failure: { side: "client", code: "client-rejected-certificate", message: "" },
      });
      session(r, 2, "192.0.2.7", {
        intercepted: true,
        decidedBy: "default",
        hello: { alpn: [], versions: ["TLSv1.3"] },
        failure: { side: "upstream", code: "upstream-certificate", message: " " },
      });
    });
    expect(reader.sessions({ order: "oldest" }).map((s) => reader.events(s.id).map((e) => e.message))).toEqual([
      ["TLS: the client does not trust the socksmith CA for pinned.example"],
      ["TLS: the certificate of 192.0.2.7 was refused"],
    ]);
  });

  it("has no tls row for a session without a TLS fact", async () => {
    const reader = await recorded((r) => {
      r.sessionOpened({ id: 1, at: AT, client: { host: "127.0.0.1", port: 40001 }, local: { host: "127.0.0.1", port: 1080 } });
      r.sessionClosed({ id: 1, at: AT + 1, reason: "completed", bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 });
    });
    const [s] = reader.sessions();
    expect(reader.tls(s!.id)).toBeUndefined();
    expect(sessionJson(s!, reader.tls(s!.id) ?? null).tls).toBeNull();
  });
});

describe("a schema 2 file (before the tls table)", () => {
  function schema2File(): string {
    const file = join(root, `v2-${++counter}.db`);
    const db = new Database(file);
    MIGRATIONS[0]!(db);
    MIGRATIONS[1]!(db);
    db.pragma("user_version = 2");
    db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, ?, ?, 1, 'old', '[]', '0.1')").run(AT, AT + 9);
    db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status, protocol, sni) VALUES (1, 1, 1, ?, '127.0.0.1', 5, '127.0.0.1', 1080, 'ok', 'tls', 'old.example')",
    ).run(AT);
    db.close();
    return file;
  }

  it("opens for reading: upgraded to the current schema, its sessions kept, no tls rows", () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(3);
    const file = schema2File();
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    expect(reader.sessions().map((s) => [s.id, s.sni])).toEqual([[1, "old.example"]]);
    expect(reader.tls(1)).toBeUndefined();
    expect(reader.count({ filter: "tls" })).toBe(0);
    expect(reader.count({ filter: "sni:old.example" })).toBe(1);
    const db = openCapture(file, { readonly: true });
    cleanups.push(() => {
      db.close();
    });
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
  });

  it("takes TLS rows from a new run after the old sessions", async () => {
    const file = schema2File();
    const reader = await recorded(
      (r) =>
        session(r, 1, "new.example", {
          intercepted: true,
          decidedBy: "default",
          hello: { sni: "new.example", alpn: ["http/1.1"], versions: ["TLSv1.3"] },
          client: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "http/1.1" },
          upstream: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "http/1.1" },
        }),
      file,
    );
    expect(reader.sessions({ order: "oldest" }).map((s) => [s.id, reader.tls(s.id)?.sni ?? null])).toEqual([
      [1, null],
      [2, "new.example"],
    ]);
  });
});
