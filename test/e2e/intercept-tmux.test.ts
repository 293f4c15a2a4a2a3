/**
 * Interactive intercept end to end (issue 15): `socksmith run --intercept EXPR` under tmux (so it
 * has a terminal), curl and a SOCKS5 UDP client from this process, keys typed with `tmux send-keys`
 * and the screen read with `tmux capture-pane`. Each test starts its own tmux server and kills it
 * afterwards. CI=true on purpose: see tui.test.ts.
 *
 * SOCKSMITH_TMUX_SHOTS=DIR keeps the panes of a paused and of an edited session as text files there.
 */
import { execFile, execFileSync } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SocksClient } from "socks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CaptureReader } from "../../src/store/reader.js";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const root = mkdtempSync(join(tmpdir(), "socksmith-intercept-"));
let tmuxServer = "";
let serial = 0;
const servers: Server[] = [];
const udpSockets: UdpSocket[] = [];
const clients: SocksClient[] = [];

/** A raw HTTP server answering every request with one write of `body` (so the answer is one chunk). */
async function httpServer(body: string): Promise<number> {
  const answer = `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  const server = createServer((socket: Socket) => {
    socket.on("error", () => {});
    socket.once("data", () => socket.end(answer));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return (server.address() as { port: number }).port;
}

function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", tmuxServer, ...args], { encoding: "utf8" });
}
const screen = () => tmux("capture-pane", "-p", "-t", "main");
/** One key (or `-l` text) per call, so the TUI reads each as its own input. */
const keys = (...k: string[]) => tmux("send-keys", "-t", "main", ...k);

async function until(what: string, check: (text: string) => boolean, ms = 8000): Promise<string> {
  const deadline = Date.now() + ms;
  let text = "";
  while (Date.now() < deadline) {
    text = screen();
    if (check(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not on screen after ${ms} ms:\n${text}`);
}

function shot(name: string, text: string): void {
  const dir = process.env.SOCKSMITH_TMUX_SHOTS;
  if (dir !== undefined && dir !== "") writeFileSync(join(dir, `${name}.txt`), text.replace(/\n+$/, "\n"));
}

/** Starts `socksmith run --intercept FILTER` in a fresh tmux server; resolves with the proxy's port and capture file. */
async function startTui(filter: string, env = ""): Promise<{ port: number; file: string }> {
  serial += 1;
  tmuxServer = `socksmith-intercept-${process.pid}-${serial}`;
  const file = join(root, `capture-${serial}.db`);
  const command = `CI=true ${env} ${process.execPath} ${CLI} run -l 127.0.0.1:0 -w ${file} --shutdown-grace 5s --intercept '${filter}'; echo "exit=$?"; sleep 30`;
  tmux("new-session", "-d", "-s", "main", "-x", "160", "-y", "40", command);
  const first = await until("the listen address", (t) => /listening 127\.0\.0\.1:\d{2,5}/.test(t));
  return { port: Number(/listening 127\.0\.0\.1:(\d{2,5})/.exec(first)![1]), file };
}

interface CurlResult {
  code: number;
  out: Buffer;
}

/** curl through the proxy (-i: the answer as the wire carried it, headers included). */
function curl(proxy: number, url: string): Promise<CurlResult> {
  return new Promise((resolve) =>
    execFile("curl", ["-s", "-i", "--max-time", "15", "--socks5-hostname", `127.0.0.1:${proxy}`, url], { encoding: "buffer" }, (err, out) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, out }),
    ),
  );
}

/** The list row of the selected session is marked paused (`>P`). */
const selectedPaused = (t: string) => /^>P\s/m.test(t);

beforeAll(() => {
  execFileSync("tmux", ["-V"]);
});
afterEach(() => {
  for (const c of clients.splice(0)) {
    c.removeAllListeners();
    (c as unknown as { socket?: { destroy(): void } }).socket?.destroy();
  }
  for (const s of udpSockets.splice(0)) s.close();
  try {
    tmux("kill-server");
  } catch {
    // already gone
  }
});
afterAll(async () => {
  for (const s of servers) {
    s.close();
  }
  rmSync(root, { recursive: true, force: true });
});

describe("run --intercept under tmux, with curl", () => {
  it("a paused request edited to another port in the request form: curl gets that server's answer", async () => {
    const a = await httpServer("server A\n");
    const b = await httpServer("server B\n");
    const { port } = await startTui(`port:${a} stage:request`);
    const held = curl(port, `http://localhost:${a}/`);
    await until("the paused row", selectedPaused);
    keys("Enter");
    const paused = await until("the paused request on top of the detail view", (t) => t.includes(`PAUSED request CONNECT localhost:${a}`));
    expect(paused).toContain("a resume  e edit host/port/reply  X deny (02 not allowed)  A resume all");
    expect(paused).toMatch(/1 paused/);
    shot("paused-request", paused);
    keys("e");
    await until("the request form", (t) => t.includes(`host [localhost_]  port [${a}]`));
    keys("Tab");
    await until("the port field", (t) => t.includes(`port [${a}_]`));
    keys("C-u");
    await until("the port field emptied", (t) => t.includes("port [_]"));
    keys("-l", String(b));
    await until("the new port", (t) => t.includes(`port [${b}_]`));
    keys("Enter");
    const answer = await held;
    expect(answer.code).toBe(0);
    expect(answer.out.toString()).toMatch(/server B\n$/);
    await until("the redirect in the overview", (t) => t.includes(`localhost:${a} → localhost:${b}`) && t.includes(`request resumed to localhost:${b}`));
  }, 20_000);

  it("a paused response chunk edited in $EDITOR: curl receives the edit byte-exact; the capture has received vs sent and an intercept event", async () => {
    const a = await httpServer("hello from A, unedited\n");
    const editor = join(root, "edit.sh");
    writeFileSync(editor, `#!/bin/sh\nsed -i 's/from A, unedited/from Z, edited  /' "$1"\n`);
    chmodSync(editor, 0o755);
    const { port, file } = await startTui(`port:${a} stage:down`, `EDITOR=${editor}`);
    const held = curl(port, `http://localhost:${a}/`);
    await until("the paused row", selectedPaused);
    keys("Enter");
    const paused = await until("the paused chunk", (t) => /PAUSED down chunk \d+, \d+ bytes/.test(t));
    expect(paused).toContain("a resume  e edit  d drop  c close (FIN)  X kill (RST)  A resume all");
    shot("paused-chunk", paused);
    keys("e");
    await until("the edit sent", (t) => /sent the edited down chunk \d+: (\d+) → \1 bytes/.test(t), 10_000);
    const answer = await held;
    const original = "HTTP/1.1 200 OK\r\nContent-Length: 23\r\nConnection: close\r\n\r\nhello from A, unedited\n";
    const edited = original.replace("from A, unedited", "from Z, edited  ");
    expect(answer.code).toBe(0);
    expect(answer.out.equals(Buffer.from(edited))).toBe(true);
    // The session opened on whichever tab fitted it then (stream once bytes had come, else
    // overview); tabs cycle overview → events → stream: tab until events shows.
    const tabs = [/\[overview\]/, /\[events \d+\]/, /\[stream \d+\]/];
    const now = screen();
    const from = tabs.findIndex((tab) => tab.test(now));
    expect(from).toBeGreaterThanOrEqual(0);
    for (let i = from; i !== 1; i = (i + 1) % tabs.length) {
      keys("Tab");
      await until(`the tab after ${String(tabs[i])}`, (t) => tabs[(i + 1) % tabs.length]!.test(t));
    }
    await until("the events tab with the edit's event", (t) => t.includes("[events 1]"));
    keys("Tab");
    const stream = await until("the stream with the edit", (t) => t.includes("hello from Z, edited") && t.includes("hello from A, unedited"));
    shot("edited-chunk", stream);

    keys("q");
    await until("the list", (t) => /ID\s+TIME/.test(t));
    keys("Q");
    await until("the exit status", (t) => t.includes("exit=0"));
    const reader = new CaptureReader(file);
    try {
      const [session] = reader.sessions({ order: "oldest" });
      const down = [...reader.chunks(session!.id)].filter((c) => c.direction === "down");
      expect(down.map((c) => [c.data.toString(), c.sent?.toString(), c.verdict])).toEqual([[original, edited, "replace"]]);
      const events = reader.events(session!.id).filter((e) => e.kind === "intercept");
      expect(events.map((e) => e.code)).toEqual(["edit"]);
      expect(events[0]!.message).toMatch(/^edited by a person: down chunk \d+/);
    } finally {
      reader.close();
    }
  }, 25_000);

  it("kill (X) on a paused chunk: curl sees a reset and none of the bytes", async () => {
    const a = await httpServer("never seen\n");
    const { port } = await startTui(`port:${a} stage:down`);
    const held = curl(port, `http://localhost:${a}/`);
    await until("the paused row", selectedPaused);
    keys("X");
    await until("the kill in the status bar", (t) => /killed down chunk \d+/.test(t));
    const answer = await held;
    // 56: "Failure in receiving network data" (curl reads ECONNRESET).
    expect(answer.code).toBe(56);
    expect(answer.out.length).toBe(0);
  }, 20_000);

  it("20 other sessions keep flowing while one is paused, and it goes on when resumed (a)", async () => {
    const a = await httpServer("shared server\n");
    const { port } = await startTui("host:localhost stage:down");
    const held = curl(port, `http://localhost:${a}/`);
    let heldDone = false;
    void held.then(() => {
      heldDone = true;
    });
    await until("the paused row", selectedPaused);
    const others = await Promise.all(Array.from({ length: 20 }, () => curl(port, `http://127.0.0.1:${a}/`)));
    expect(others.map((r) => [r.code, r.out.toString().endsWith("shared server\n")])).toEqual(Array.from({ length: 20 }, () => [0, true]));
    expect(heldDone).toBe(false);
    // The held session is no longer the newest row: select it (g, the first session) and resume it.
    keys("g");
    await until("the held session selected", selectedPaused);
    keys("a");
    const answer = await held;
    expect(answer.code).toBe(0);
    expect(answer.out.toString()).toMatch(/shared server\n$/);
  }, 25_000);

  it("closing the TUI (q) releases what is paused: the held curl gets its answer", async () => {
    const a = await httpServer("released\n");
    const { port } = await startTui(`port:${a}`);
    const held = curl(port, `http://localhost:${a}/`);
    await until("the paused row", selectedPaused);
    keys("q");
    const answer = await held;
    expect(answer.code).toBe(0);
    expect(answer.out.toString()).toMatch(/released\n$/);
    await until("the exit status", (t) => t.includes("exit=0"));
  }, 20_000);

  it("a paused datagram dropped (d) never reaches its target; with intercept off (I) the next one does", async () => {
    const sink = createSocket("udp4");
    udpSockets.push(sink);
    const arrived: string[] = [];
    const arrival = new Promise<void>((resolve) =>
      sink.on("message", (msg) => {
        arrived.push(msg.toString());
        resolve();
      }),
    );
    sink.bind(0, "127.0.0.1");
    await once(sink, "listening");
    const target = sink.address().port;
    const { port } = await startTui("stage:datagram");

    const client = new SocksClient({ proxy: { host: "127.0.0.1", port, type: 5 }, command: "associate", destination: { host: "0.0.0.0", port: 0 } });
    clients.push(client);
    client.on("error", () => {});
    const established = new Promise<{ remoteHost: { host: string; port: number } }>((resolve) => client.once("established", (info) => resolve(info as never)));
    client.connect();
    const relay = (await established).remoteHost;
    const local = createSocket("udp4");
    udpSockets.push(local);
    local.bind(0, "127.0.0.1");
    await once(local, "listening");
    const send = (text: string) =>
      local.send(SocksClient.createUDPFrame({ remoteHost: { host: "127.0.0.1", port: target }, data: Buffer.from(text) }), relay.port, relay.host);

    send("first, dropped");
    await until("the paused association", selectedPaused);
    keys("Enter");
    await until("the paused datagram", (t) => new RegExp(`PAUSED up datagram \\d+ to 127\\.0\\.0\\.1:${target}, 14 bytes`).test(t));
    keys("d");
    await until("the drop in the status bar", (t) => /dropped up datagram \d+/.test(t));
    keys("I");
    await until("intercept off", (t) => t.includes("intercept off"));
    send("second, sent");
    await arrival;
    expect(arrived).toEqual(["second, sent"]);
  }, 20_000);
});
