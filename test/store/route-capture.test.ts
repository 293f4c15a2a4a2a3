/**
 * Upstream routes in the capture: the reply fact's `route` through the recorder, the real
 * transport and writer thread into a real file, read back with the reader (row, JSON, show);
 * credentials that should never reach the recorder are cut all the same; and a schema 3 file
 * (before the `route` column) opening and taking routes.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { describeSession } from "../../src/cli/commands/show.js";
import { openCapture } from "../../src/store/database.js";
import { sessionJson } from "../../src/store/json.js";
import { CaptureReader } from "../../src/store/reader.js";
import { Recorder } from "../../src/store/recorder.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/schema.js";
import { storedRoute, withoutCredentials } from "../../src/store/stored-values.js";
import { CLI } from "../support/cli.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-route-capture-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const AT = 1_700_000_000_000;

/** A CONNECT session fed by hand through the recorder; `route` goes on its reply fact (absent: direct). */
function session(recorder: Recorder, id: number, route?: readonly string[], rep = 0): void {
  const client = { host: "127.0.0.1", port: 40000 + id };
  recorder.sessionOpened({ id, at: AT, client, local: { host: "127.0.0.1", port: 1080 } });
  recorder.requested({ id, at: AT + 1, version: 5, command: "connect", destination: { type: "domain", host: "example.com", port: 443 }, client });
  recorder.replied({
    id,
    at: AT + 2,
    version: 5,
    command: "connect",
    stage: "final",
    rep,
    bound: { host: "127.0.0.1", port: 5000 },
    target: { host: "example.com", port: 443 },
    ...(route === undefined ? {} : { route }),
  });
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

const show = (reader: CaptureReader, id: number) => [...describeSession(reader, reader.session(id)!, { hex: false, maxBytes: Infinity })];

describe("routes in the capture", () => {
  it("stores the hops in order, and null for a session that went direct (no route, or an empty one)", async () => {
    const reader = await recorded((r) => {
      session(r, 1, ["socks5h://10.0.0.2:1080", "http://proxy.corp:3128"]);
      session(r, 2);
      session(r, 3, []);
      session(r, 4, ["socks4a://[2001:db8::1]:1080"], 5);
    });
    const rows = reader.sessions({ order: "oldest" });
    expect(rows.map((s) => s.route)).toEqual(['["socks5h://10.0.0.2:1080","http://proxy.corp:3128"]', null, null, '["socks4a://[2001:db8::1]:1080"]']);
    expect(rows.map((s) => sessionJson(s).route)).toEqual([
      ["socks5h://10.0.0.2:1080", "http://proxy.corp:3128"],
      null,
      null,
      ["socks4a://[2001:db8::1]:1080"],
    ]);
    // The JSON key is there for a direct session too: null, not left out.
    expect("route" in sessionJson(rows[1]!)).toBe(true);
    expect(show(reader, rows[0]!.id)).toContain("route:      socks5h://10.0.0.2:1080 → http://proxy.corp:3128");
    expect(show(reader, rows[1]!.id)).toContain("route:      direct");
    expect(reader.count({ filter: "via:direct" })).toBe(2);
    expect(reader.count({ filter: "via:*corp*" })).toBe(1);
    expect(reader.count({ filter: "via:[2001:db8::1]:1080" })).toBe(1);
  });

  it("keeps the route of the first reply when a later one (BIND's second) carries none", async () => {
    const reader = await recorded((r) => {
      const client = { host: "127.0.0.1", port: 40001 };
      r.sessionOpened({ id: 1, at: AT, client, local: { host: "127.0.0.1", port: 1080 } });
      r.requested({ id: 1, at: AT + 1, version: 5, command: "bind", destination: { type: "ipv4", host: "10.1.1.1", port: 0 }, client });
      const reply = { id: 1, version: 5, command: "bind", rep: 0, bound: { host: "10.0.0.2", port: 40000 } } as const;
      r.replied({ ...reply, at: AT + 2, stage: "bind-first", route: ["socks5://10.0.0.2:1080"] });
      r.replied({ ...reply, at: AT + 3, stage: "bind-second" });
      r.sessionClosed({ id: 1, at: AT + 5, reason: "completed", bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 });
    });
    expect(reader.sessions()[0]!.route).toBe('["socks5://10.0.0.2:1080"]');
  });

  it("never stores a password, even when a fact carries a hop with credentials", async () => {
    const file = join(root, `secret-${++counter}.db`);
    const reader = await recorded((r) => {
      session(r, 1, ["socks5h://alice:s3cret-one@10.0.0.2:1080", "http://bob:p@ss/w:rd@proxy.corp:3128", "socks4://userid@10.0.0.3:1080"]);
    }, file);
    const [s] = reader.sessions();
    expect(JSON.parse(s!.route!)).toEqual(["socks5h://10.0.0.2:1080", "http://proxy.corp:3128", "socks4://10.0.0.3:1080"]);
    expect(show(reader, s!.id).join("\n")).not.toMatch(/alice|bob|s3cret|p@ss|userid/);
    reader.close();
    // Not anywhere in the file (or its WAL) either.
    for (const name of readdirSync(root).filter((n) => n.startsWith(`secret-${counter}.db`))) {
      const bytes = readFileSync(join(root, name)).toString("latin1");
      for (const secret of ["s3cret-one", "p@ss/w:rd", "alice", "userid@"]) expect(bytes.includes(secret), `${secret} in ${name}`).toBe(false);
    }
  });

  it("cuts credentials however the hop is written", () => {
    expect(withoutCredentials("socks5h://u:p@h:1")).toBe("socks5h://h:1");
    expect(withoutCredentials("http://u:a@b@c:d@[::1]:3128")).toBe("http://[::1]:3128");
    expect(withoutCredentials("http://u:pa//ss@h:3128")).toBe("http://h:3128");
    expect(withoutCredentials("u:p//x@h:1080")).toBe("h:1080");
    expect(withoutCredentials("socks5://h:1080")).toBe("socks5://h:1080");
    expect(storedRoute(undefined)).toBeNull();
    expect(storedRoute([])).toBeNull();
    expect(storedRoute(["socks5://u:p@h:1", "http://h2:2"])).toBe('["socks5://h:1","http://h2:2"]');
  });
});

describe("the built CLI", () => {
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
      });
    });
  }

  it("sessions --json and show --json carry the route (null when direct), --filter takes via:, show prints the route line", async () => {
    const file = join(root, `cli-${++counter}.db`);
    const reader = await recorded((r) => {
      session(r, 1, ["socks5h://10.0.0.2:1080", "http://proxy.corp:3128"]);
      session(r, 2);
    }, file);
    reader.close();
    const all = await cli(["sessions", file, "--json"]);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { id: number; route: string[] | null }[]).map((r) => [r.id, r.route])).toEqual([
      [1, ["socks5h://10.0.0.2:1080", "http://proxy.corp:3128"]],
      [2, null],
    ]);
    const direct = await cli(["sessions", file, "--json", "--filter", "via:direct"]);
    expect((JSON.parse(direct.stdout) as { id: number }[]).map((r) => r.id)).toEqual([2]);
    const shown = await cli(["show", "1", file, "--json"]);
    expect(JSON.parse(shown.stdout).route).toEqual(["socks5h://10.0.0.2:1080", "http://proxy.corp:3128"]);
    expect((await cli(["show", "1", file])).stdout).toContain("route:      socks5h://10.0.0.2:1080 → http://proxy.corp:3128\n");
    expect((await cli(["show", "2", file])).stdout).toContain("route:      direct\n");
    const bad = await cli(["sessions", file, "--filter", "via:u:p@h:1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("routes are recorded without credentials");
    expect(bad.stderr).toContain("  via:u:p@h:1\n         ^");
  });
});

describe("a schema 3 file (before the route column)", () => {
  function schema3File(): string {
    const file = join(root, `v3-${++counter}.db`);
    const db = new Database(file);
    for (let v = 0; v < 3; v++) MIGRATIONS[v]!(db);
    db.pragma("user_version = 3");
    db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, ?, ?, 1, 'old', '[]', '0.1')").run(AT, AT + 9);
    db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status, command) VALUES (1, 1, 1, ?, '127.0.0.1', 5, '127.0.0.1', 1080, 'ok', 'connect')",
    ).run(AT);
    db.close();
    return file;
  }

  it("opens for reading: upgraded, its sessions direct", () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(4);
    const file = schema3File();
    const reader = new CaptureReader(file);
    cleanups.push(() => reader.close());
    const [s] = reader.sessions();
    expect(s!.route).toBeNull();
    expect(sessionJson(s!).route).toBeNull();
    expect(reader.count({ filter: "via:direct" })).toBe(1);
    expect(reader.count({ filter: "via:*" })).toBe(0);
    const db = openCapture(file, { readonly: true });
    cleanups.push(() => {
      db.close();
    });
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
  });

  it("takes routes from a new run after the old sessions", async () => {
    const file = schema3File();
    const reader = await recorded((r) => session(r, 1, ["socks5h://10.0.0.2:1080"]), file);
    expect(reader.sessions({ order: "oldest" }).map((s) => [s.id, s.route])).toEqual([
      [1, null],
      [2, '["socks5h://10.0.0.2:1080"]'],
    ]);
  });
});
