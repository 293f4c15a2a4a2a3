/**
 * Addons on a Node where `Module#_compile` does not work (simulated for this file's process,
 * bundle.ts simulateBrokenCompile): bundles are written beside the entry as `.cjs`, required,
 * and removed. Over real files in a temp folder whose package.json says "type": "module": the
 * addon loads with its relative imports and a package from its own node_modules, its hooks run,
 * locations map to the addon's own lines (a throw in a hook, a throw while loading, two versions
 * at once), and nothing is left in the folder or in require.cache.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HookContext } from "../../src/hooks/api.js";
import { compileProblem, simulateBrokenCompile } from "../../src/hooks/bundle.js";
import { AddonError, addonLocation, hookLocation, loadAddon } from "../../src/hooks/loader.js";

simulateBrokenCompile("simulated for this test");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "socksmith-fallback-"));
  await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await mkdir(resolve(file, ".."), { recursive: true });
  await writeFile(file, text);
  return file;
}

const context = { session: { id: 1, client: { host: "127.0.0.1", port: 1 }, tags: {} }, options: {} } as unknown as HookContext;
const open = { client: { host: "h", port: 1 }, local: { host: "h", port: 2 } };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("did not throw");
}

/**
 * Runs `fn` with Node's own stack formatting, as the CLI has it (source maps on): vitest installs
 * its own, under which stack-frames.ts maps only the `_compile` path's `<entry>.<n>.js` frames.
 */
async function withNodeStacks<T>(fn: () => T | Promise<T>): Promise<T> {
  const saved = Error.prepareStackTrace;
  (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
  try {
    return await fn();
  } finally {
    Error.prepareStackTrace = saved;
  }
}

describe("evaluating by require when _compile does not work", () => {
  it("says why, once checked", () => {
    expect(compileProblem()).toBe("simulated for this test");
  });

  it("loads an addon with a relative import and a package from its folder; the file it ran from is gone afterwards", async () => {
    await put("node_modules/greeting/package.json", `{ "name": "greeting", "main": "index.js", "type": "commonjs" }\n`);
    await put("node_modules/greeting/index.js", `exports.greet = (who) => "hello " + who;\n`);
    await put("lib/words.ts", `export const suffix: string = "!";\n`);
    const entry = await put(
      "greeter.ts",
      [
        `import { greet } from "greeting";`,
        `import { suffix } from "./lib/words";`,
        `import { existsSync } from "node:fs";`,
        `const from: string = __filename;`,
        `const present: boolean = existsSync(from);`,
        `export default {`,
        `  from,`,
        `  present,`,
        `  onRequest(r: { host: string }) {`,
        `    return r.host === greet("x") + suffix ? { deny: 2 } : undefined;`,
        `  },`,
        `};`,
      ].join("\n"),
    );
    const loaded = await loadAddon(entry);
    const addon = loaded.addon as unknown as { from: string; present: boolean };
    // It ran from a file of its own beside the entry, which existed while it loaded.
    expect(addon.from).toMatch(new RegExp(`^${entry.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.${process.pid}-\\d+\\.cjs$`));
    expect(addon.present).toBe(true);
    expect(loaded.addon.onRequest?.({ host: "hello x!" } as never, context)).toEqual({ deny: 2 });
    expect(loaded.addon.onRequest?.({ host: "other" } as never, context)).toBeUndefined();
    expect((await readdir(dir)).sort()).toEqual(["greeter.ts", "lib", "node_modules", "package.json"]);
    // The package stays cached, as any required package does; the generated file does not.
    expect(Object.keys(createRequire(entry).cache).filter((key) => key.startsWith(dir))).toEqual([join(dir, "node_modules/greeting/index.js")]);
    expect(hookLocation(loaded.addon, "onRequest")).toBe(`${entry}:9:3`);
  });

  it("maps a throw in a hook, per version while two versions run", async () => {
    const entry = await put("two.ts", `export default {\n  onOpen() {\n    throw new Error("v1");\n  },\n};\n`);
    const first = await loadAddon(entry);
    await writeFile(entry, `// one\n// two\n// three\nexport default {\n  onOpen() {\n    throw new Error("v2");\n  },\n};\n`);
    const second = await loadAddon(entry, {}, 2);
    const [one, two] = await withNodeStacks(() =>
      [first, second].map((v) =>
        addonLocation(
          thrown(() => v.addon.onOpen?.(open, context)),
          entry,
        ),
      ),
    );
    expect([one, two]).toEqual([`${entry}:3:11`, `${entry}:6:11`]);
    expect(await readdir(dir)).toEqual(["package.json", "two.ts"]);
  });

  it("LOAD_FAILED at the addon's own line, and the file it ran from is gone", async () => {
    const entry = await put("fails.ts", `const n: number = 1;\nif (n === 1) throw new Error("no");\nexport default {};\n`);
    const err = await withNodeStacks(() =>
      loadAddon(entry).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(err).toBeInstanceOf(AddonError);
    expect(err).toMatchObject({ code: "LOAD_FAILED", file: entry, line: 2, message: expect.stringContaining("threw while loading: no") });
    expect(await readdir(dir)).toEqual(["fails.ts", "package.json"]);
  });
});
