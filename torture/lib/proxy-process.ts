/**
 * The real CLI under torture: `socksmith run --headless` on 127.0.0.1:0 in a child process
 * (optionally behind a wrapper such as `prlimit`), its output lines, its resident memory from
 * /proc, and `socksmith` one-shot commands (`sessions`, `show`) on a capture file.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The built CLI; `TORTURE_CLI=path/to/cli.js` tortures another build (an older one, to see a check fail). */
export const CLI = process.env.TORTURE_CLI ?? join(import.meta.dirname, "../../dist/cli.js");
export const GUARD = join(import.meta.dirname, "../addons/loopback-guard.ts");

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Settles with the exit code (or the signal's name). */
  readonly exit: Promise<number | string>;
  /** True while the process runs. */
  alive(): boolean;
  /** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
  rss(): number | undefined;
  /** SIGINT, then the exit code; SIGKILL when it does not stop within 10 s. */
  stop(): Promise<number | string>;
}

export interface SpawnOptions {
  readonly cwd: string;
  /** Argv before `node CLI …`, e.g. a `prlimit` wrapper (its last word execs node). */
  readonly wrapper?: readonly string[];
  /** Where the process is registered for cleanup. */
  readonly children?: ChildProcess[];
}

/** Starts `socksmith run --headless -l 127.0.0.1:0 ARGS…` and waits for its listening line. */
export async function startCli(args: readonly string[], options: SpawnOptions): Promise<ProxyProcess> {
  const argv = [...(options.wrapper ?? []), process.execPath, CLI, "run", "--headless", "-l", "127.0.0.1:0", ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd });
  options.children?.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout!, stdout);
  collectLines(child.stderr!, stderr);
  const exit = once(child, "exit").then(([code, signal]) => (code ?? signal) as number | string);
  const deadline = Date.now() + 15_000;
  let port: number | undefined;
  while (port === undefined) {
    const m = stdout.map((l) => /listening on 127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean);
    if (m) port = Number(m[1]);
    else if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`socksmith exited ${child.exitCode ?? child.signalCode}: ${stderr.join("\n")}`);
    else if (Date.now() > deadline) throw new Error(`socksmith did not start: ${stderr.join("\n")}`);
    else await sleep(20);
  }
  const pid = child.pid!;
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid,
    port,
    stdout,
    stderr,
    exit,
    alive,
    rss: () => (alive() ? rssOf(pid) : undefined),
    stop: async () => {
      if (!alive()) return exit;
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      try {
        return await exit;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** VmRSS of a process in bytes (undefined when it is gone). */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The proxy's RSS once it has settled: samples every 250 ms for up to `ms` and returns the
 * lowest (garbage collection and freed buffers show up late; a leak never goes down).
 */
export async function settledRss(proxy: ProxyProcess, ms = 3000): Promise<number> {
  let low = Infinity;
  for (const end = Date.now() + ms; Date.now() < end; ) {
    low = Math.min(low, proxy.rss() ?? Infinity);
    await sleep(250);
  }
  if (!Number.isFinite(low)) throw new Error("the proxy is gone");
  return low;
}

/** Runs `socksmith ARGS…` to completion: exit code and output. */
export function runCli(args: readonly string[], cwd: string, timeoutMs = 20_000): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : (err.signal ?? String(err.code));
      resolve({ code, stdout, stderr });
    });
  });
}

/** Waits until a line matching `pattern` appears in `lines` (throws after `ms`). */
export async function waitForLine(lines: readonly string[], pattern: RegExp, ms = 5000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const line of lines) {
      const m = pattern.exec(line);
      if (m) return m;
    }
    if (Date.now() > deadline) throw new Error(`no line matching ${pattern} within ${ms} ms; last lines: ${lines.slice(-5).join(" | ")}`);
    await sleep(20);
  }
}

export const MiB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  let rest = "";
  stream.on("data", (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split("\n");
    rest = parts.pop()!;
    into.push(...parts);
  });
}
