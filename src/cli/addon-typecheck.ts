/**
 * `addon check`'s type check: runs TypeScript's `tsc` on an addon file against the addon
 * contract (`src/hooks/api.ts`), so that answers it can see are wrong (`{ deny: "2" }` in an
 * addon that ends with `satisfies Addon`) are warned about before the proxy meets them at run
 * time (where they are hook failures: docs/architecture.md, "Trust rules").
 *
 * - TypeScript is optional: it is looked up from the addon's folder first, then from socksmith's
 *   own install. Without it the check says so and how to get it.
 * - `import type { Addon } from "socksmith/addon"` resolves to this install's api.ts (a `paths`
 *   entry), whether or not the addon's folder has socksmith in its node_modules.
 * - The compiler's settings are socksmith's own (strict, NodeNext-style bundling), written to a
 *   private temporary folder; nothing is written beside the addon.
 * - Runs as a child process (tsc may be a native binary, as TypeScript 7's is), bounded by a
 *   timeout.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface TypeProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** `TS2322: Type 'string' is not assignable to type 'number'.` */
  readonly message: string;
}

export type TypeCheck =
  | { readonly kind: "checked"; readonly version: string; readonly problems: readonly TypeProblem[] }
  | { readonly kind: "unavailable"; readonly reason: string }
  | { readonly kind: "failed"; readonly version: string; readonly reason: string };

const TIMEOUT_MS = 60_000;

/** Type-checks one addon file (absolute path). Never throws. */
export async function typeCheckAddon(file: string): Promise<TypeCheck> {
  const compiler = findTypeScript(dirname(file));
  if (compiler === undefined) return { kind: "unavailable", reason: "TypeScript is not installed (npm install --save-dev typescript, then check again)" };
  const api = contractFile();
  if (api === undefined) return { kind: "unavailable", reason: "socksmith's addon contract (src/hooks/api.ts) is not installed beside it" };
  const work = mkdtempSync(join(tmpdir(), "socksmith-check-"));
  try {
    const nodeTypes = findPackageDir("@types/node", dirname(file)) ?? findPackageDir("@types/node", dirname(api));
    const config = {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023"],
        module: "Preserve",
        moduleResolution: "Bundler",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        allowImportingTsExtensions: true,
        paths: { "socksmith/addon": [api] },
        ...(nodeTypes === undefined ? { types: [] } : { typeRoots: [dirname(nodeTypes)], types: ["node"] }),
      },
      files: [file],
    };
    writeFileSync(join(work, "tsconfig.json"), JSON.stringify(config, null, 2), { mode: 0o600 });
    const { code, output } = await run(process.execPath, [compiler.bin, "-p", join(work, "tsconfig.json"), "--pretty", "false"]);
    const problems = parseDiagnostics(output);
    if (code !== 0 && problems.length === 0) return { kind: "failed", version: compiler.version, reason: output.trim().split("\n")[0] ?? `exit ${code}` };
    return { kind: "checked", version: compiler.version, problems };
  } catch (err) {
    return { kind: "failed", version: compiler.version, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `path/file.ts(12,5): error TS2322: message` lines (continuation lines join the message). */
export function parseDiagnostics(output: string): TypeProblem[] {
  const problems: TypeProblem[] = [];
  for (const line of output.split(/\r?\n/)) {
    const match = /^(.+?)\((\d+),(\d+)\): error (TS\d+: .*)$/.exec(line);
    if (match !== null) {
      problems.push({ file: resolve(match[1]!), line: Number(match[2]), column: Number(match[3]), message: match[4]! });
    } else if (problems.length > 0 && /^\s+\S/.test(line)) {
      const last = problems.pop()!;
      problems.push({ ...last, message: `${last.message} ${line.trim()}` });
    }
  }
  return problems;
}

function findTypeScript(from: string): { bin: string; version: string } | undefined {
  for (const base of [from, dirname(fileURLToPath(import.meta.url))]) {
    const dir = findPackageDir("typescript", base);
    if (dir === undefined) continue;
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: string; bin?: Record<string, string> | string };
      const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.tsc;
      if (bin !== undefined && existsSync(join(dir, bin))) return { bin: join(dir, bin), version: pkg.version ?? "?" };
    } catch {
      // An unreadable package.json: try the next place.
    }
  }
  return undefined;
}

function findPackageDir(name: string, from: string): string | undefined {
  try {
    return dirname(createRequire(join(from, "noop.js")).resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}

/** The installed socksmith's `src/hooks/api.ts` (from src/ or dist/, whichever runs). */
function contractFile(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "socksmith") {
          const api = join(dir, "src", "hooks", "api.ts");
          return existsSync(api) ? api : undefined;
        }
      } catch {
        // Not ours; keep looking upward.
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(command, args, { timeout: TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1;
      done({ code, output: `${stdout}${stderr}` });
    });
  });
}
