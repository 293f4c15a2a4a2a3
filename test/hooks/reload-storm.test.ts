/**
 * Hot reload under fire (issue 11 part 4): a deny-all addon saved over and over, in place, while
 * requests go through a running proxy. Whatever state a save leaves the file in for a moment
 * (empty, half-written), the proxy must never run "no hooks" in between: zero requests get
 * through. And overlapping reloads are serialized: the last save wins and every version that
 * was loaded is disposed exactly once. Loopback only, bounded in count and time.
 */
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SocksClient } from "socks";
import { Credentials, DEFAULTS } from "../../src/engine/index.js";
import { startProxy, type RunningProxy, type RunOptions } from "../../src/cli/proxy.js";
import { startAddons, type RunningAddons } from "../../src/cli/addons.js";
import { sleep, startServer } from "../support/net.js";

/** What the addons under test record about their versions (they run in this process). */
interface Ledger {
  loaded: string[];
  disposed: string[];
  running: string | undefined;
}
const ledger = (): Ledger => (globalThis as unknown as { __stormLedger: Ledger }).__stormLedger;

/**
 * A deny-all addon; each save is a distinct version (`mark`). Its onLoad/onDispose log the
 * version in the ledger; `loadMs` makes onLoad async and that slow.
 */
function denyAll(mark: string, loadMs = 0): string {
  const wait = loadMs > 0 ? `await new Promise((r) => setTimeout(r, ${loadMs}));` : "";
  return `// version ${mark}: every request is refused (REP 02)
const ledger = (globalThis as any).__stormLedger;
export default {
  name: "deny-all",
  async onLoad() {
    ${wait}
    ledger.loaded.push(${JSON.stringify(mark)});
    ledger.running = ${JSON.stringify(mark)};
  },
  onRequest() {
    return { deny: 2 };
  },
  onDispose() {
    ledger.disposed.push(${JSON.stringify(mark)});
  },
};
`;
}

/** The ways an editor or a script rewrites a file in place (never a rename). */
const saves = {
  /** fs.writeFile: open with O_TRUNC, then write. */
  writeFile: (file: string, text: string) => writeFile(file, text),
  /** Truncate to nothing, let a moment pass, then write. */
  truncateThenWrite: async (file: string, text: string) => {
    const handle = await open(file, "r+");
    try {
      await handle.truncate(0);
      await sleep(2);
      await handle.write(text, 0);
    } finally {
      await handle.close();
    }
  },
  /** Two halves with a short pause between: a slow writer. */
  twoHalves: async (file: string, text: string) => {
    const handle = await open(file, "w");
    try {
      const half = Math.floor(text.length / 2);
      await handle.write(text.slice(0, half), 0);
      await sleep(5 + Math.floor(Math.random() * 20));
      await handle.write(text.slice(half), half);
    } finally {
      await handle.close();
    }
  },
} as const;
const SAVE_KINDS = Object.keys(saves) as Array<keyof typeof saves>;

function runOptions(addon: string): RunOptions {
  return {
    listen: [{ host: "127.0.0.1", port: 0 }],
    addons: [addon],
    settings: new Map(),
    hookTimeoutMs: 5_000,
    credentials: new Credentials(),
    handshakeTimeoutMs: DEFAULTS.handshakeTimeoutMs,
    connectTimeoutMs: 2_000,
    idleTimeoutMs: DEFAULTS.idleTimeoutMs,
    maxSessions: DEFAULTS.maxSessions,
    bindTimeoutMs: DEFAULTS.bindTimeoutMs,
    maxUdpAssociations: DEFAULTS.maxUdpAssociations,
    udpIdleTimeoutMs: 0,
    udpAllowUnsolicited: false,
    udpMaxPeers: DEFAULTS.udpMaxPeers,
    graceMs: 200,
    logFormat: "text",
    quiet: true,
    capture: undefined,
    captureLimit: undefined,
    onCaptureError: "continue",
    serverReplay: undefined,
    replayMiss: "deny",
    replayReuse: false,
    replayFilter: undefined,
  };
}

let dir: string;
let proxy: RunningProxy | undefined;
let addons: RunningAddons | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "socksmith-storm-"));
  (globalThis as unknown as { __stormLedger: Ledger }).__stormLedger = { loaded: [], disposed: [], running: undefined };
});
afterEach(async () => {
  await proxy?.stop(0);
  await addons?.close();
  proxy = addons = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Every version that ran onLoad ran onDispose exactly once, and nothing else was disposed. */
function expectEachDisposedOnce(): void {
  const { loaded, disposed } = ledger();
  expect(new Set(loaded).size).toBe(loaded.length); // no version loaded twice
  expect([...disposed].sort()).toEqual([...loaded].sort());
}

describe("reload storm", () => {
  it("a deny-all addon saved 200 times in place (3 ways) during 400 requests lets none through", async () => {
    const target = await startServer((socket) => socket.end("reached"));
    let reached = 0;
    target.server.on("connection", () => reached++);
    const file = join(dir, "deny-all.ts");
    await writeFile(file, denyAll("v0"));
    const errors: string[] = [];
    const options = runOptions(file);
    proxy = await startProxy(options, { out: () => {}, err: (line) => errors.push(line) });
    const port = proxy.bound[0]!.port;

    let saving = true;
    const storm = (async () => {
      try {
        for (let i = 1; i <= 200; i++) {
          await saves[SAVE_KINDS[i % SAVE_KINDS.length]!](file, denyAll(`v${i}`));
          // Irregular pauses: some saves land while a load is under way, some after it.
          await sleep(Math.floor(Math.random() * 60));
        }
      } finally {
        saving = false;
      }
    })();

    let through = 0;
    let denied = 0;
    let other = 0;
    const request = async (): Promise<void> => {
      try {
        const { socket } = await SocksClient.createConnection({
          proxy: { host: "127.0.0.1", port, type: 5 },
          command: "connect",
          destination: { host: "127.0.0.1", port: target.port },
          timeout: 5_000,
        });
        through++;
        socket.destroy();
      } catch (err) {
        if ((err as Error).message.endsWith("- NotAllowed")) denied++;
        else other++;
      }
    };
    // Two clients, 400 requests, spread over the whole storm (and a little after it).
    const client = async (count: number) => {
      for (let i = 0; i < count; i++) {
        await request();
        if (saving) await sleep(Math.floor(Math.random() * 40));
      }
    };
    await Promise.all([client(200), client(200), storm]);

    try {
      expect({ through, reached, other }).toEqual({ through: 0, reached: 0, other: 0 });
      expect(denied).toBe(400);
      // The last save wins once the file is still.
      const deadline = Date.now() + 3_000;
      while (ledger().running !== "v200" && Date.now() < deadline) await sleep(20);
      expect(ledger().running).toBe("v200");
    } finally {
      await proxy.stop(0);
      proxy = undefined;
      await target.close();
    }
    expectEachDisposedOnce();
  }, 60_000);

  it("overlapping reloads with a slow onLoad: the last save wins, each version is disposed exactly once", async () => {
    const file = join(dir, "deny-all.ts");
    await writeFile(file, denyAll("v0", 150));
    const errors: string[] = [];
    addons = await startAddons([file], new Map(), 5_000, {
      info: () => {},
      error: (message) => errors.push(message),
      tagged: () => {},
    });
    // Saves 70–110 ms apart: each settles (chokidar waits 50 ms) while the previous version's
    // onLoad (150 ms) is still running.
    for (let i = 1; i <= 12; i++) {
      await writeFile(file, denyAll(`v${i}`, 150));
      await sleep(70 + Math.floor(Math.random() * 40));
    }
    const deadline = Date.now() + 5_000;
    while (ledger().running !== "v12" && Date.now() < deadline) await sleep(20);
    await sleep(400); // anything still in flight would land now
    expect(ledger().running).toBe("v12");
    expect(addons.dispatcher.loaded).toHaveLength(1);
    // The dispatcher runs the version that loaded last.
    const { loaded, disposed } = ledger();
    expect(loaded.at(-1)).toBe("v12");
    expect(disposed).not.toContain("v12");
    expect(errors).toEqual([]);
    await addons.close();
    addons = undefined;
    expectEachDisposedOnce();
  }, 30_000);
});
