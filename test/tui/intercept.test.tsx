/**
 * Interactive intercept in the TUI, rendered with ink-testing-library over a real capture file and
 * a fake queue (InterceptControl) holding a paused request, chunk and datagram: the list's marker,
 * the status bar's count, the paused item on top of the detail view, the keys (a, A, X, d, e, i, I)
 * resolving with the right actions, the request form, and the editor flow with EDITOR set to a
 * script that rewrites the file.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type FilterError, parseInterceptFilter } from "../../src/filter/index.js";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";
import type { InterceptAction, InterceptBinding, InterceptControl, InterceptListener, PausedItem } from "../../src/tui/intercept.js";
import { actionFor, BINDINGS } from "../../src/tui/keys.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-intercept-tui-"));
const file = join(root, "intercept.db");
let reader: CaptureReader;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, NULL, 1, 'h', '[]', 't')").run();
  const session = db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, status)
     VALUES (?, 1, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', ?, 'domain', ?, ?, ?, ?, 'open')`,
  );
  const t = Date.UTC(2026, 10, 22, 8, 0, 0);
  session.run(1, 11, t, "connect", "request.example", 80, "request.example", 80);
  session.run(2, 12, t + 1000, "connect", "quiet.example", 80, "quiet.example", 80);
  session.run(3, 13, t + 2000, "connect", "chunk.example", 80, "chunk.example", 80);
  session.run(4, 14, t + 3000, "udp", "0.0.0.0", 0, "0.0.0.0", 0);
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

const request = (id: number, host: string, port: number) =>
  ({ id, version: 5, command: "connect", destination: { type: "domain", host, port }, client: { host: "127.0.0.1", port: 40000 } }) as const;

function items(): PausedItem[] {
  return [
    { kind: "request", key: "request-1", session: 11, request: request(11, "request.example", 80), since: 0 },
    {
      kind: "chunk",
      key: "chunk-2",
      session: 13,
      request: request(13, "chunk.example", 80),
      since: 0,
      direction: "down",
      seq: 3,
      data: Buffer.from("HTTP/1.1 200 OK\r\n\r\nhello"),
    },
    {
      kind: "datagram",
      key: "datagram-3",
      session: 14,
      request: request(14, "0.0.0.0", 0),
      since: 0,
      direction: "up",
      seq: 0,
      peer: { type: "ipv4", host: "127.0.0.1", port: 5353 },
      data: Buffer.from([0, 1, 2, 0xff]),
    },
  ];
}

/** A queue as the TUI sees it: records every call, lets items go on resolve as the real one does. */
class FakeQueue implements InterceptControl {
  held: PausedItem[];
  active = true;
  configured = true;
  readonly resolved: { key: string; action: InterceptAction }[] = [];
  resumedAll = 0;
  private readonly listeners = new Set<InterceptListener>();
  constructor(held: PausedItem[] = items()) {
    this.held = held;
  }
  get items() {
    return this.held;
  }
  subscribe(listener: InterceptListener) {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  resolve(key: string, action: InterceptAction) {
    const item = this.held.find((i) => i.key === key);
    if (item === undefined) return false;
    this.resolved.push({ key, action });
    this.held = this.held.filter((i) => i !== item);
    for (const l of this.listeners) l({ type: "resolved", item, action, by: "person" });
    return true;
  }
  resumeAll() {
    const n = this.held.length;
    this.resumedAll++;
    for (const item of this.held) this.resolve(item.key, { resume: true });
    return n;
  }
  setActive(active: boolean) {
    this.active = active;
    for (const l of this.listeners) l({ type: "settings", active, configured: this.configured });
  }
}

function binding(queue: FakeQueue, filters: string[] = []): InterceptBinding {
  return {
    queue,
    filterText: "host:*.example",
    setFilter(text) {
      if (text !== "") parseInterceptFilter(text);
      filters.push(text);
    },
  };
}

const settled = (check: () => void) => vi.waitFor(check, { timeout: 15_000, interval: 20 });
/** Waits for a frame that shows `text` (a key's effect on screen). */
const shows = (ui: { lastFrame(): string | undefined }, text: string | RegExp) =>
  settled(() => expect(ui.lastFrame()).toMatch(typeof text === "string" ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : text));

function renderApp(queue: FakeQueue, filters: string[] = []) {
  return render(
    <App
      source={reader}
      follow
      pollMs={20}
      live={() => ({ listen: ["127.0.0.1:1080"], open: 4, bytesPerSecond: 0, addons: [] })}
      intercept={binding(queue, filters)}
    />,
  );
}

describe("intercept keys table", () => {
  it("e and d act on a paused session's item, and export and hide elsewhere; the help lists them", () => {
    const plain = { ...({} as Parameters<typeof actionFor>[1]) };
    expect(actionFor("e", plain, { paused: true })).toBe("edit");
    expect(actionFor("d", plain, { paused: true })).toBe("drop");
    expect(actionFor("c", plain, { paused: true })).toBe("close");
    expect(actionFor("c", plain, { paused: false })).toBeUndefined();
    expect(actionFor("e", plain, { paused: false })).toBe("export");
    expect(actionFor("d", plain)).toBe("hide");
    for (const [key, action] of [
      ["i", "interceptFilter"],
      ["I", "interceptToggle"],
      ["a", "resume"],
      ["A", "resumeAll"],
      ["X", "kill"],
    ] as const) {
      expect(actionFor(key, plain)).toBe(action);
      expect(actionFor(key, plain, { paused: true })).toBe(action);
    }
    const keys = BINDINGS.map((b) => b.keys);
    for (const k of ["i", "I", "a", "A", "X"]) expect(keys).toContain(k);
  });
});

describe("App with intercept", () => {
  let saved: { VISUAL?: string | undefined; EDITOR?: string | undefined };
  beforeAll(() => {
    saved = { VISUAL: process.env.VISUAL, EDITOR: process.env.EDITOR };
  });
  afterEach(() => {
    for (const name of ["VISUAL", "EDITOR"] as const) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it("marks paused sessions, counts them, and shows the filter", async () => {
    const ui = renderApp(new FakeQueue());
    await shows(ui, "3 paused");
    const frame = ui.lastFrame()!;
    expect(frame).toContain("intercept host:*.example");
    const line = (host: string) => frame.split("\n").find((l) => l.includes(host))!;
    expect(line("request.example")).toMatch(/^.P/);
    expect(line("chunk.example")).toMatch(/^.P/);
    expect(line("quiet.example")).toMatch(/^. /);
    ui.unmount();
  });

  it("X on the datagram drops it, d on the chunk drops it, X on the request denies with REP 02, A resumes the rest", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    // Follow mode selects the newest: the UDP association (14).
    ui.stdin.write("X");
    await settled(() => expect(queue.resolved).toEqual([{ key: "datagram-3", action: { drop: true } }]));
    await shows(ui, "2 paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("d");
    await settled(() => expect(queue.resolved[1]).toEqual({ key: "chunk-2", action: { drop: true } }));
    ui.stdin.write("k");
    await shows(ui, /^> .*quiet\.example/m);
    // Nothing paused here: a says so and d keeps hiding.
    ui.stdin.write("a");
    await shows(ui, "session 2 has nothing paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*request\.example/m);
    ui.stdin.write("X");
    await settled(() => expect(queue.resolved[2]).toEqual({ key: "request-1", action: { deny: 2 } }));
    queue.held = items();
    ui.stdin.write("A");
    await settled(() => expect(queue.resumedAll).toBe(1));
    expect(queue.resolved.slice(3).map((r) => r.action)).toEqual([{ resume: true }, { resume: true }, { resume: true }]);
    ui.unmount();
  });

  it("a resumes the selected item; X on a chunk resets; I switches intercept off and on", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("a");
    await settled(() => expect(queue.resolved).toEqual([{ key: "datagram-3", action: { resume: true } }]));
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("X");
    await settled(() => expect(queue.resolved[1]).toEqual({ key: "chunk-2", action: { reset: true } }));
    ui.stdin.write("I");
    await shows(ui, "intercept off");
    expect(queue.active).toBe(false);
    expect(ui.lastFrame()).toContain("intercept host:*.example (off)");
    ui.stdin.write("I");
    await shows(ui, "intercept on");
    expect(queue.active).toBe(true);
    ui.unmount();
  });

  it("the detail view shows the paused item on top with its keys", async () => {
    const ui = renderApp(new FakeQueue());
    await shows(ui, "3 paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("\r");
    await shows(ui, "PAUSED down chunk 3, 24 bytes");
    const frame = ui.lastFrame()!;
    const lines = frame.split("\n");
    expect(lines[0]).toContain("PAUSED down chunk 3, 24 bytes");
    expect(lines[1]).toContain("a resume  e edit  d drop  c close (FIN)  X kill (RST)");
    // Its first lines as text (a binary item shows its hex dump instead).
    expect(lines[2]).toContain("HTTP/1.1 200 OK\\r");
    ui.unmount();
  });

  it("i sets the intercept filter; a mistake shows its column and keeps the prompt", async () => {
    const filters: string[] = [];
    const ui = renderApp(new FakeQueue(), filters);
    await shows(ui, "3 paused");
    ui.stdin.write("i");
    await shows(ui, "intercept host:*.example");
    ui.stdin.write("\u0015");
    ui.stdin.write("stage:sideways\r");
    await shows(ui, /\^\n.*stage/);
    expect(filters).toEqual([]);
    let column = 0;
    try {
      parseInterceptFilter("stage:sideways");
    } catch (err) {
      column = (err as FilterError).column;
    }
    const frame = ui.lastFrame()!.split("\n");
    const caret = frame.findIndex((l) => /^ *\^$/.test(l));
    expect(frame[caret]!.indexOf("^")).toBe("intercept ".length + column - 1);
    ui.stdin.write("\u0015");
    ui.stdin.write("stage:down\r");
    await settled(() => expect(filters).toEqual(["stage:down"]));
    await shows(ui, "intercept stage:down");
    ui.unmount();
  });

  it("e on a request opens the form: a new port resumes there, a REP denies", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("g");
    await shows(ui, /^>P.*request\.example/m);
    ui.stdin.write("e");
    await shows(ui, "host [request.example_]");
    ui.stdin.write("\t");
    await shows(ui, "port [80_]");
    ui.stdin.write("\u0015");
    ui.stdin.write("99999\r");
    await shows(ui, "port: 1 to 65535");
    ui.stdin.write("\u0015");
    ui.stdin.write("8080\r");
    await settled(() => expect(queue.resolved).toEqual([{ key: "request-1", action: { resume: true, host: "request.example", port: 8080 } }]));

    queue.held = items();
    ui.stdin.write("e");
    await shows(ui, "host [request.example_]");
    ui.stdin.write("\t");
    ui.stdin.write("\t");
    await shows(ui, "deny with REP [_]");
    ui.stdin.write("5\r");
    await settled(() => expect(queue.resolved[1]).toEqual({ key: "request-1", action: { deny: 5 } }));

    // Keys in one read (a paste, tmux send-keys): tab moves on, ctrl-U clears, enter sends.
    queue.held = items();
    ui.stdin.write("e");
    await shows(ui, "host [request.example_]");
    ui.stdin.write("\t\u00158443\r");
    await settled(() => expect(queue.resolved[2]).toEqual({ key: "request-1", action: { resume: true, host: "request.example", port: 8443 } }));
    ui.unmount();
  });

  /** EDITOR: a script that applies `edit` (a JS function body over `text`) to the file. */
  function editor(name: string, edit: string): string {
    const script = join(root, `${name}.cjs`);
    writeFileSync(script, `const fs = require("fs"); const f = process.argv[2]; let text = fs.readFileSync(f, "utf8"); ${edit}; fs.writeFileSync(f, text);\n`);
    chmodSync(script, 0o700);
    return `"${process.execPath}" "${script}"`;
  }

  it("e on a text chunk edits it in $EDITOR: the resolved action carries the edited bytes", async () => {
    process.env.VISUAL = editor("upper", 'text = text.replace("hello", "HELLO, edited") + "\\n"');
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("e");
    await settled(() => expect(queue.resolved).toHaveLength(1));
    const [{ key, action }] = queue.resolved as [{ key: string; action: { resume: true; data: Uint8Array } }];
    expect(key).toBe("chunk-2");
    // The editor's added final newline is taken off: the original did not end with one.
    expect(Buffer.from(action.data).toString()).toBe("HTTP/1.1 200 OK\r\n\r\nHELLO, edited");
    await shows(ui, "sent the edited down chunk 3: 24 → 32 bytes");
    ui.unmount();
  });

  it("e on a binary datagram edits its hex dump; a mistake names the line and keeps it paused", async () => {
    process.env.VISUAL = editor("hex", 'text = text.replace("00 01 02 ff", "00 01 02 ff 41 42")');
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("e");
    await settled(() => expect(queue.resolved).toHaveLength(1));
    expect(queue.resolved[0]!.key).toBe("datagram-3");
    expect(Buffer.from((queue.resolved[0]!.action as { data: Uint8Array }).data)).toEqual(Buffer.from([0, 1, 2, 0xff, 0x41, 0x42]));
    await shows(ui, "sent the edited up datagram 0: 4 → 6 bytes");

    queue.held = items();
    // Straight after the editor: keys are read again.
    process.env.VISUAL = editor("typo", 'text = text.replace("00 01 02 ff", "00 01 0z ff")');
    ui.stdin.write("e");
    // Three comment lines, then the dump: the third byte's digits start in column 17.
    await shows(ui, /hex dump line 4, column 17: "0z" is not a hex byte/);
    expect(queue.resolved).toHaveLength(1);
    expect(queue.held.map((i) => i.key)).toContain("datagram-3");

    process.env.VISUAL = editor("same", "");
    ui.stdin.write("e");
    await shows(ui, "no change, still paused");
    expect(queue.resolved).toHaveLength(1);
    ui.unmount();
  });
});

describe("c on a paused chunk", () => {
  it("closes the chunk's session gracefully: resolve with { close: true }", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("c");
    await settled(() => expect(queue.resolved).toEqual([{ key: "chunk-2", action: { close: true } }]));
  });
});

describe("R on a paused datagram going up", () => {
  it("opens the form on its destination; enter sends it to the host and port typed", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    // Follow mode selects the newest: the UDP association holding the datagram.
    ui.stdin.write("R");
    await shows(ui, /redirect up datagram 0 .*host \[127\.0\.0\.1_\] {2}port \[5353\]/);
    ui.stdin.write("\t");
    await shows(ui, /port \[5353_\]/);
    ui.stdin.write("\u0015");
    ui.stdin.write("5454");
    ui.stdin.write("\r");
    await settled(() => expect(queue.resolved).toEqual([{ key: "datagram-3", action: { resume: true, redirect: { host: "127.0.0.1", port: 5454 } } }]));
    await shows(ui, "datagram sent to 127.0.0.1:5454 instead");
  });

  it("R on a paused chunk says what it is for and changes nothing", async () => {
    const queue = new FakeQueue();
    const ui = renderApp(queue);
    await shows(ui, "3 paused");
    ui.stdin.write("k");
    await shows(ui, /^>P.*chunk\.example/m);
    ui.stdin.write("R");
    await shows(ui, "R sends a paused datagram going up elsewhere");
    expect(queue.resolved).toEqual([]);
  });
});
