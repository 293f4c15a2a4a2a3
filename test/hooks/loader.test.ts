/**
 * The addon loader over real files (a temp folder outside the repository, and one fixture
 * inside it): bundling, `socksmith/addon` type imports, source-mapped locations, every error
 * code with its 1-based line and column, options, and the check that Module#_compile works
 * (bundle.ts probeCompile). Memory across 1,000 loads is a soak test (soak/addon-reload.soak.ts).
 */
import { mkdtemp, rm, writeFile, mkdir, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import Module from "node:module";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HookContext, RequestInfo } from "../../src/hooks/api.js";
import { type CompilableModule, compileProblem, probeCompile } from "../../src/hooks/bundle.js";
import { AddonError, addonLocation, loadAddon } from "../../src/hooks/loader.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/typed-addon.ts", import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "socksmith-loader-"));
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

async function failure(promise: Promise<unknown>): Promise<AddonError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AddonError);
  return err as AddonError;
}

function request(host: string): RequestInfo {
  return { command: "connect", host, port: 80, addressType: "domain", version: 5, client: { host: "127.0.0.1", port: 1 } };
}

function context(options: Record<string, unknown> = {}): HookContext {
  return {
    session: { id: 1, client: { host: "127.0.0.1", port: 1 }, tags: {} },
    tag: () => {},
    log: () => {},
    inject: () => {},
    injectDatagram: () => {},
    messages: () => undefined,
    options,
    replayed: false,
  };
}

/** Calls `fn` and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("did not throw");
}

describe("loadAddon: loading", () => {
  it("loads an addon that imports its types from socksmith/addon, inside the repository", async () => {
    const loaded = await loadAddon(FIXTURE);
    expect(loaded.name).toBe("typed-addon");
    expect(loaded.file).toBe(FIXTURE);
    expect(loaded.hooks).toEqual(["onLoad", "onRequest"]);
    expect(loaded.options).toEqual({ code: 2, verbose: false });
    expect(loaded.inputs).toEqual([FIXTURE]); // the type import left no trace
    expect(loaded.version).toBe(1);
    expect(loaded.addon.onRequest?.(request("blocked.example"), context(loaded.options))).toEqual({ deny: 2 });
    expect(Object.isFrozen(loaded) && Object.isFrozen(loaded.options) && Object.isFrozen(loaded.hooks)).toBe(true);
  });

  it("loads the same file copied outside the repository (no tsconfig, no node_modules)", async () => {
    const copy = join(dir, "outside.ts");
    await copyFile(FIXTURE, copy);
    const loaded = await loadAddon(copy, { code: "5", verbose: "yes", label: "x" }, 7);
    expect(loaded.name).toBe("outside");
    expect(loaded.options).toEqual({ code: 5, verbose: true, label: "x" });
    expect(loaded.version).toBe(7);
    expect(loaded.addon.onRequest?.(request("blocked.example"), context(loaded.options))).toEqual({ deny: 5 });
  });

  it("bundles relative imports and lists every input; packages and builtins stay external", async () => {
    await put("lib/match.ts", `export const matches = (host: string): boolean => host.endsWith(".test");\n`);
    const entry = await put(
      "block.ts",
      [
        `import type { Addon } from "socksmith/addon";`,
        `import { createHash } from "node:crypto";`,
        `import { matches } from "./lib/match";`,
        `export default {`,
        `  name: "blocker",`,
        `  onRequest: (r) => (matches(r.host) ? { deny: 2 } : undefined),`,
        `  onClose() { createHash("sha1"); },`,
        `} satisfies Addon;`,
      ].join("\n"),
    );
    const loaded = await loadAddon(entry);
    expect(loaded.name).toBe("blocker");
    expect(loaded.hooks).toEqual(["onRequest", "onClose"]);
    expect([...loaded.inputs].sort()).toEqual([entry, join(dir, "lib/match.ts")].sort());
    expect(loaded.addon.onRequest?.(request("a.test"), context())).toEqual({ deny: 2 });
    expect(loaded.addon.onRequest?.(request("a.example"), context())).toBeUndefined();
  });

  it("accepts a relative path, resolved against the working directory", async () => {
    const loaded = await loadAddon("test/hooks/fixtures/typed-addon.ts");
    expect(loaded.file).toBe(FIXTURE);
  });

  it("evaluates each call afresh: module state is not shared between versions", async () => {
    const entry = await put("count.ts", `let n = 0;\nexport default { onOpen() { n++; return undefined; }, get count() { return n; } };\n`);
    const a = await loadAddon(entry);
    const b = await loadAddon(entry);
    a.addon.onOpen?.({ client: { host: "h", port: 1 }, local: { host: "h", port: 2 } }, context());
    expect((a.addon as { count: number }).count).toBe(1);
    expect((b.addon as { count: number }).count).toBe(0);
  });

  it("takes a CommonJS entry's module.exports, and hooks on a class instance's prototype", async () => {
    const cjs = await put("plain.cjs", `module.exports = { onRequest() { return { allow: true }; } };\n`);
    expect((await loadAddon(cjs)).hooks).toEqual(["onRequest"]);
    const cls = await put("cls.ts", `class A { state = 1; onData() { return undefined; } onClose() {} }\nexport default new A();\n`);
    expect((await loadAddon(cls)).hooks).toEqual(["onData", "onClose"]);
  });

  it("keeps keys that are not hook-like (the addon's own state and helpers)", async () => {
    const entry = await put(
      "own.ts",
      `export default { onlyHosts: ["a"], online: true, data: new Map(), open: 0, close() {}, load: 1, helper() {}, onRequest() {} };\n`,
    );
    expect((await loadAddon(entry)).hooks).toEqual(["onRequest"]);
  });
});

describe("loadAddon: locations in stack traces", () => {
  it("maps a throw in a hook to the addon's own file:line:column, and in an import to that file", async () => {
    await put("lib/check.ts", `export function check(host: string): void {\n  if (host === "x") throw new Error("bad host");\n}\n`);
    const entry = await put(
      "thrower.ts",
      [
        `import { check } from "./lib/check";`,
        `const unused: number = 1;`,
        `export default {`,
        `  onRequest(r: { host: string }) {`,
        `    check(r.host);`,
        `    throw new TypeError("boom");`,
        `  },`,
        `};`,
      ].join("\n"),
    );
    const { addon } = await loadAddon(entry);
    const boom = thrown(() => addon.onRequest?.(request("y"), context()));
    expect(addonLocation(boom, entry)).toBe(`${entry}:6:11`);
    const bad = thrown(() => addon.onRequest?.(request("x"), context()));
    expect(addonLocation(bad, entry)).toBe(`${join(dir, "lib/check.ts")}:2:27`);
  });

  it("keeps each version's own mapping while two versions run (a reload in progress)", async () => {
    const v1 = await put("two.ts", `export default {\n  onOpen() {\n    throw new Error("v1");\n  },\n};\n`);
    const first = await loadAddon(v1);
    await writeFile(v1, `// one\n// two\n// three\nexport default {\n  onOpen() {\n    throw new Error("v2");\n  },\n};\n`);
    const second = await loadAddon(v1, {}, 2);
    const open = { client: { host: "h", port: 1 }, local: { host: "h", port: 2 } };
    expect(
      addonLocation(
        thrown(() => first.addon.onOpen?.(open, context())),
        v1,
      ),
    ).toBe(`${v1}:3:11`);
    expect(
      addonLocation(
        thrown(() => second.addon.onOpen?.(open, context())),
        v1,
      ),
    ).toBe(`${v1}:6:11`);
  });

  it("still maps after garbage collection while the addon is referenced", async () => {
    const gc = forceGc();
    const entry = await put("kept.ts", `export default {\n  onOpen() {\n    throw new Error("kept");\n  },\n};\n`);
    const addon = (await loadAddon(entry)).addon;
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    const err = thrown(() => addon.onOpen?.({ client: { host: "h", port: 1 }, local: { host: "h", port: 2 } }, context()));
    expect(addonLocation(err, entry)).toBe(`${entry}:3:11`);
  });

  it("maps generated frames itself when Error.prepareStackTrace is replaced (as test runners do)", async () => {
    const entry = await put("raw.ts", `// pad\nexport default {\n  onOpen() {\n    throw new Error("raw");\n  },\n};\n`);
    const { addon } = await loadAddon(entry);
    const saved = Error.prepareStackTrace;
    Error.prepareStackTrace = (err, calls) =>
      `${String(err)}\n${calls.map((c) => `    at ${c.getFunctionName() ?? "<anonymous>"} (${c.getFileName()}:${c.getLineNumber()}:${c.getColumnNumber()})`).join("\n")}`;
    let err: unknown;
    try {
      err = thrown(() => addon.onOpen?.({ client: { host: "h", port: 1 }, local: { host: "h", port: 2 } }, context()));
      void (err as Error).stack; // stacks are formatted on first access
    } finally {
      Error.prepareStackTrace = saved;
    }
    expect((err as Error).stack).toMatch(/raw\.ts\.\d+\.js:\d+:\d+/);
    expect(addonLocation(err, entry)).toBe(`${entry}:4:11`);
  });

  it("is undefined for non-errors, foreign stacks and files never loaded", async () => {
    const entry = await put("quiet.ts", `export default {};\n`);
    await loadAddon(entry);
    expect(addonLocation("just a string", entry)).toBeUndefined();
    expect(addonLocation(new Error("from the host"), entry)).toBeUndefined();
    expect(addonLocation(new Error("x"), "/virtual/never.ts")).toBeUndefined();
    const fake = { stack: `Error: x\n    at fn (/virtual/never.ts:3:4)\n    at other (/elsewhere.js:1:1)` };
    expect(addonLocation(fake, "/virtual/never.ts")).toBe("/virtual/never.ts:3:4");
  });
});

describe("the _compile check (bundle.ts probeCompile; the fallback is in bundle-fallback.test.ts)", () => {
  const fresh = (filename: string): CompilableModule => Object.assign(new Module(filename), { filename }) as unknown as CompilableModule;

  it("finds nothing wrong with Module#_compile on this Node (so loads above use it)", () => {
    expect(probeCompile(fresh)).toBeUndefined();
    expect(compileProblem()).toBeUndefined();
  });

  it("catches a _compile that is gone, one that throws, one that does not run the code, and one without source maps", () => {
    const gone = (filename: string) => Object.assign(fresh(filename), { _compile: undefined });
    expect(probeCompile(gone)).toBe("Module.prototype._compile is not a function");
    const throws = (filename: string) =>
      Object.assign(fresh(filename), {
        _compile() {
          throw new TypeError("changed signature");
        },
      });
    expect(probeCompile(throws)).toBe("Module#_compile threw: changed signature");
    const ignores = (filename: string) => Object.assign(fresh(filename), { _compile() {} });
    expect(probeCompile(ignores)).toBe("Module#_compile did not run the code into module.exports");
    // Runs the code the way vm does: right exports, but Node never sees the source map.
    const noMaps = (filename: string) => {
      const mod = fresh(filename);
      return Object.assign(mod, {
        _compile(code: string) {
          vm.compileFunction(code, ["module", "exports"], { filename })(mod, mod.exports);
        },
      });
    };
    expect(probeCompile(noMaps)).toBe("Module#_compile did not register the code's source map");
  });
});

describe("loadAddon: errors", () => {
  it("BUNDLE_FAILED: a syntax error with its 1-based line and column", async () => {
    const entry = await put("broken.ts", `export default {\n  onRequest(r) {\n    if (r.host === "x" {\n      return { deny: 2 };\n    }\n  },\n};\n`);
    const err = await failure(loadAddon(entry));
    expect(err).toMatchObject({ code: "BUNDLE_FAILED", file: entry, line: 3, column: 24 });
    expect(err.message).toBe('Expected ")" but found "{"');
  });

  it("BUNDLE_FAILED: columns count characters, not UTF-8 bytes", async () => {
    const entry = await put("accents.ts", `const s = "éèà"; let = 1;\nexport default {};\n`);
    const err = await failure(loadAddon(entry));
    // `let` starts at the 18th character, the 21st byte.
    expect(err).toMatchObject({ code: "BUNDLE_FAILED", line: 1, column: 18 });
    expect(err.message).toContain('"let"');
  });

  it("BUNDLE_FAILED: in an imported file, that file is named", async () => {
    const helper = await put("lib/bad.ts", `export const x = ;\n`);
    const entry = await put("uses-bad.ts", `import { x } from "./lib/bad";\nexport default { name: String(x) };\n`);
    expect(await failure(loadAddon(entry))).toMatchObject({ code: "BUNDLE_FAILED", file: helper, line: 1, column: 18 });
  });

  it("BUNDLE_FAILED: an import that does not resolve, a missing file, top-level await", async () => {
    const entry = await put("missing-import.ts", `\nimport { x } from "./nowhere";\nexport default { x };\n`);
    const unresolved = await failure(loadAddon(entry));
    expect(unresolved).toMatchObject({ code: "BUNDLE_FAILED", file: entry, line: 2, column: 19 });
    expect(unresolved.message).toContain("./nowhere");

    const missing = await failure(loadAddon(join(dir, "absent.ts")));
    expect(missing).toMatchObject({ code: "BUNDLE_FAILED", file: join(dir, "absent.ts"), message: "no such file" });
    expect(missing.line).toBeUndefined();

    const tla = await put("tla.ts", `await Promise.resolve();\nexport default {};\n`);
    expect(await failure(loadAddon(tla))).toMatchObject({ code: "BUNDLE_FAILED", line: 1, column: 1 });
  });

  it("LOAD_FAILED: a throw while loading, at the addon's own line", async () => {
    const entry = await put("load-throws.ts", `const a: number = 1;\n\nthrow new RangeError("no config");\nexport default {};\n`);
    const err = await failure(loadAddon(entry));
    expect(err).toMatchObject({ code: "LOAD_FAILED", file: entry, line: 3, column: 7 });
    expect(err.message).toBe("threw while loading: RangeError: no config");
    expect(err.cause).toBeInstanceOf(RangeError);

    await put("lib/init.ts", `export function init(): number {\n  throw new Error("init failed");\n}\n`);
    const viaImport = await put("load-throws-2.ts", `import { init } from "./lib/init";\nexport default { n: init() };\n`);
    expect(await failure(loadAddon(viaImport))).toMatchObject({ code: "LOAD_FAILED", file: join(dir, "lib/init.ts"), line: 2, column: 9 });
  });

  it("LOAD_FAILED: a kept value import of socksmith/addon says to use `import type`", async () => {
    await put("strict/tsconfig.json", JSON.stringify({ compilerOptions: { verbatimModuleSyntax: true } }));
    const entry = await put("strict/value-import.ts", `import { Addon } from "socksmith/addon";\nexport default {} satisfies Addon;\n`);
    const err = await failure(loadAddon(entry));
    expect(err.code).toBe("LOAD_FAILED");
    expect(err.message).toContain("import type");
  });

  it("INVALID_EXPORT: no default export, or one that is not an object", async () => {
    const cases: Array<[string, string, string]> = [
      ["no-default.ts", `export const onRequest = () => undefined;\n`, "no default export"],
      ["number.ts", `export default 42;\n`, "got number 42"],
      ["array.ts", `export default [];\n`, "got an array"],
      ["null.ts", `export default null;\n`, "got null"],
      ["fn.ts", `export default function () {}\n`, "got a function"],
      ["empty.ts", ``, "no default export"],
      ["half-written.ts", `// a deny-all addon\nconst deny = 2;\n`, "no default export"],
    ];
    for (const [name, text, message] of cases) {
      const err = await failure(loadAddon(await put(name, text)));
      expect(err.code, name).toBe("INVALID_EXPORT");
      expect(err.message, name).toContain(message);
    }
  });

  it("INVALID_EXPORT: a hook that is not a function, at its line", async () => {
    const entry = await put("not-fn.ts", `export default {\n  name: "x",\n  onRequest: { deny: 2 },\n};\n`);
    const err = await failure(loadAddon(entry));
    expect(err).toMatchObject({ code: "INVALID_EXPORT", file: entry, line: 3, column: 3 });
    expect(err.message).toBe("onRequest must be a function, got an object");
  });

  it("INVALID_EXPORT: name and options of the wrong shape", async () => {
    const cases: Array<[string, string, number?]> = [
      [`name: 42`, "name must be a non-empty string", 2],
      [`name: "a.b"`, "name must be a non-empty string", 2],
      [`name: ""`, "name must be a non-empty string", 2],
      [`options: []`, "options must be an object", 2],
      [`options: { ms: 100 }`, "options.ms must be { type, default?, description? }", 2],
      [`options: { ms: { type: "int" } }`, 'options.ms.type must be "string", "number" or "boolean"', 2],
      [`options: { ms: { type: "number", default: "100" } }`, "options.ms.default must be a number", 2],
      [`options: { ms: { type: "number", default: Infinity } }`, "options.ms.default must be a number", 2],
      [`options: { ms: { type: "number", defualt: 1 } }`, 'options.ms: unknown key "defualt" (did you mean default?)', 2],
      [`options: { ms: { type: "string", description: 1 } }`, "options.ms.description must be a string", 2],
      [`options: { "a b": { type: "string" } }`, "must not contain", 2],
    ];
    for (const [member, message, line] of cases) {
      const err = await failure(loadAddon(await put("shape.ts", `export default {\n  ${member},\n};\n`)));
      expect(err.code, member).toBe("INVALID_EXPORT");
      expect(err.message, member).toContain(message);
      expect(err.line, member).toBe(line);
    }
  });

  it("UNKNOWN_HOOK: hook-like keys, with a did-you-mean and their line", async () => {
    const cases: Array<[string, string]> = [
      ["onRequets", "did you mean onRequest?"],
      ["onDatas", "did you mean onData?"],
      ["onrequest", "did you mean onRequest?"],
      ["onclose", "did you mean onClose?"],
      ["nRequest", "did you mean onRequest?"],
      ["onDatagrams", "did you mean onDatagram?"],
      ["onConnect", "hooks are onLoad, onDispose, onOpen, onAuth, onRequest, onReply, onTlsClientHello, onData, onDatagram, onClose"],
    ];
    for (const [key, hint] of cases) {
      const entry = await put("typo.ts", `export default {\n  name: "t",\n  async ${key}(r: unknown) {\n    return undefined;\n  },\n};\n`);
      const err = await failure(loadAddon(entry));
      expect(err, key).toMatchObject({ code: "UNKNOWN_HOOK", file: entry, line: 3, column: 9 });
      expect(err.message, key).toBe(`unknown hook "${key}" (${hint})`);
    }
    const property = await put("typo-prop.ts", `const f = () => undefined;\nexport default { onData: f, "onDatas": f };\n`);
    expect(await failure(loadAddon(property))).toMatchObject({ code: "UNKNOWN_HOOK", line: 2, column: 29 });
  });
});

describe("loadAddon: options", () => {
  async function optionsAddon(): Promise<string> {
    return put(
      "opts.ts",
      `export default {\n  name: "opts",\n  options: {\n    ms: { type: "number", default: 100 },\n    verbose: { type: "boolean" },\n    label: { type: "string", default: "x" },\n  },\n};\n`,
    );
  }

  it("declared defaults, overridden by settings converted by type", async () => {
    const entry = await optionsAddon();
    expect((await loadAddon(entry)).options).toEqual({ ms: 100, label: "x" });
    expect((await loadAddon(entry, { ms: "2.5", verbose: "TRUE", label: "" })).options).toEqual({ ms: 2.5, verbose: true, label: "" });
    for (const [text, value] of [
      ["1", true],
      ["yes", true],
      ["0", false],
      ["no", false],
      ["false", false],
    ] as const) {
      expect((await loadAddon(entry, { verbose: text })).options.verbose, text).toBe(value);
    }
    expect((await loadAddon(entry, { ms: " -3 " })).options.ms).toBe(-3);
  });

  it("BAD_OPTION: unknown names (with a did-you-mean) and values of the wrong type", async () => {
    const entry = await optionsAddon();
    const unknown = await failure(loadAddon(entry, { mss: "1" }));
    expect(unknown).toMatchObject({ code: "BAD_OPTION", file: entry });
    expect(unknown.message).toBe('unknown option "mss" for addon opts (did you mean ms?) (options: ms, verbose, label)');
    for (const [option, raw] of [
      ["ms", "abc"],
      ["ms", ""],
      ["ms", "Infinity"],
      ["ms", "NaN"],
      ["verbose", "maybe"],
      ["verbose", ""],
    ] as const) {
      const err = await failure(loadAddon(entry, { [option]: raw }));
      expect(err.code, `${option}=${raw}`).toBe("BAD_OPTION");
      expect(err.message, `${option}=${raw}`).toContain(`option opts.${option} must be`);
    }
    const none = await put("none.ts", `export default {};\n`);
    expect((await failure(loadAddon(none, { x: "1" }))).message).toBe('unknown option "x" for addon none; it declares no options');
    expect((await failure(loadAddon(none, JSON.parse('{"__proto__":"1"}') as Record<string, string>))).code).toBe("BAD_OPTION");
  });
});

/** The test's own `gc()`: exposed at run time, so no special worker flags are needed. */
function forceGc(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}
