/**
 * Soak: memory across many addon loads (`npm run soak`; out of the unit run, it takes seconds of
 * two busy cores). A hot reload bundles and evaluates the addon again; each version must be
 * collected once replaced, so that a proxy reloading all day does not grow.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HookContext, RequestInfo } from "../src/hooks/api.js";
import { loadAddon, type LoadedAddon } from "../src/hooks/loader.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "socksmith-soak-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `name` in the temp folder (creating subfolders) and returns its absolute path. */
async function put(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await mkdir(resolve(file, ".."), { recursive: true });
  await writeFile(file, text);
  return file;
}

function request(host: string): RequestInfo {
  return { command: "connect", host, port: 80, addressType: "domain", version: 5, client: { host: "127.0.0.1", port: 1 } };
}

function context(): HookContext {
  return {
    session: { id: 1, client: { host: "127.0.0.1", port: 1 }, tags: {} },
    tag: () => {},
    log: () => {},
    inject: () => {},
    injectDatagram: () => {},
    messages: () => undefined,
    options: {},
    replayed: false,
  };
}

/** The test's own `gc()`: exposed at run time, so no special worker flags are needed. */
function forceGc(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

describe("loadAddon: memory", () => {
  it("1,000 loads of a ~100 KB bundle: every version is collected, the heap stays flat", async () => {
    const gc = forceGc();
    // ~100 KB of source in an imported helper: mostly one string, so that 1,000 builds fit in
    // seconds (esbuild's and V8's costs grow with the amount of code, not with a string's size).
    const hosts = Array.from({ length: 4_000 }, (_, i) => `host-${String(i).padStart(5, "0")}.blocked.example`);
    const table = `export const HOSTS: readonly string[] = ${JSON.stringify(hosts.join("\n"))}.split("\\n");\n`;
    expect(table.length).toBeGreaterThan(100_000);
    await put("lib/table.ts", table);
    const entry = await put(
      "big.ts",
      `import { HOSTS } from "./lib/table";\nconst set = new Set(HOSTS);\nexport default {\n  onRequest: (r: { host: string }) => (set.has(r.host) ? { deny: 2 } : undefined),\n};\n`,
    );
    // Two loads in flight at a time: esbuild bundles one while V8 compiles the other.
    let last: LoadedAddon | undefined;
    const collected = new Set<number>();
    const registry = new FinalizationRegistry<number>((version) => collected.add(version));
    const batch = async (version: number, track: boolean) => {
      const loaded = await Promise.all([loadAddon(entry, {}, version), loadAddon(entry, {}, version + 1)]);
      if (track) for (const l of loaded) registry.register(l.addon, l.version);
      last = loaded[1];
    };
    const settle = async () => {
      for (let i = 0; i < 4; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      return process.memoryUsage().heapUsed;
    };

    for (let i = 0; i < 40; i += 2) await batch(i, false); // warm up esbuild and the JIT
    const before = await settle();
    const started = performance.now();
    const loads = 1_000;
    for (let i = 0; i < loads; i += 2) await batch(1_000 + i, true);
    const elapsed = performance.now() - started;
    expect(last?.addon.onRequest?.(request("host-00042.blocked.example"), context())).toEqual({ deny: 2 });
    const after = await settle();
    const growthMiB = (after - before) / 2 ** 20;
    console.log(
      `${loads} loads in ${(elapsed / 1000).toFixed(1)} s; heap after gc ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB ` +
        `(${growthMiB >= 0 ? "+" : ""}${growthMiB.toFixed(2)} MiB); ${collected.size} of ${loads} versions finalized`,
    );
    expect(growthMiB).toBeLessThan(4);
    // Finalizers run late and the last version is still referenced: most, not all.
    expect(collected.size).toBeGreaterThan(loads * 0.9);
  }, 30_000);
});
