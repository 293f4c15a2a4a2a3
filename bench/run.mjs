#!/usr/bin/env node
/**
 * socksmith's benchmark: `npm run bench` (builds dist/cli.js, then runs this file).
 *
 *   node bench/run.mjs [--quick] [--only SECTION[,SECTION...]] [--profile DIR] [--udp-window N]
 *
 *   SECTION   throughput (or one cell: up1, up8, down1, down8), handshakes, latency, idle, udp, hooks, capture, tui, tls, chain
 *   --quick   shorter cells and fewer samples (a smoke run, not numbers to report)
 *   --udp-window N  datagrams in flight in the udp section (default 64, see below)
 *   --profile DIR  run socksmith under `node --cpu-prof --cpu-prof-dir=DIR` (one .cpuprofile per
 *             socksmith process, i.e. per section); summarise with bench/cpuprofile-top.mjs
 *
 * Three subjects, measured in one run: "direct" (no proxy), socksmith (dist/cli.js run), and a
 * naive Node relay (bench/naive-proxy.mjs: net + pipe()), which is the bar socksmith must clear.
 * The handshakes section adds "naive-hc", the naive relay with --half-close (it keeps half-close
 * and sends a real BND.ADDR, as socksmith does), for an informational ratio under the table.
 *
 *   throughput   bulk MiB/s, 1 and 8 streams, upload (client→server) and download, and each proxy
 *                process's CPU per MiB in each round
 *   handshakes   per second, 32 closed-loop workers: connect, SOCKS5 greeting, CONNECT, 1-byte
 *                echo, close (direct: connect, 1-byte echo, close); and each proxy process's CPU
 *                per handshake (user and kernel time from /proc over the measured window). Every
 *                section that counts handshakes first runs 5 s of them through each proxy, not
 *                measured (their "cold" rate is printed), so the rounds see the JIT's steady state
 *                (the udp section does the same with 5 s of echoes)
 *   latency      p50/p99 µs of sequential 64-byte echoes over one tunnel (5 rounds of 8,000,
 *                after 800 unmeasured); "added" = proxy p50 − direct p50 of the same round
 *   hooks        socksmith with a pass-through onData addon and with an onRequest addon, as
 *                ratios to socksmith without addons (upload MiB/s, handshakes/s)
 *   capture      socksmith capturing everything to a capture file vs --no-capture and vs the
 *                disk's write rate (upload and download, 1 and 8 streams, MiB/s; handshakes/s),
 *                the main thread's CPU share during the upload, and the files' size per payload byte
 *   tui          socksmith with its TUI drawing in a pseudo-terminal vs headless, both capturing
 *                (1-stream upload and download MiB/s)
 *   tls          run --tls (bench/tls.mjs): leaf generation; a TLS download and TLS handshakes/s
 *                intercepted vs direct; passthrough TLS sessions vs plain CONNECT
 *   chain        a one-hop chain of two socksmith processes (run --upstream) vs one process
 *                (bench/chain.mjs): bulk MiB/s and handshakes/s, the ratio, the second hop's cost
 *   idle         proxy RSS growth per idle tunnel with 10,000 tunnels open (VmRSS; PSS alongside;
 *                fewer when the hard limit on open files allows fewer: the line under the table says),
 *                measured on a fresh proxy after a 200-tunnel warm-up
 *   udp          UDP datagrams per second echoed (each one client → echo server → client) with
 *                64-byte and 1,200-byte payloads, through one UDP ASSOCIATE (direct: the same
 *                client straight to the UDP echo server), and the loss: datagrams sent that
 *                never came back, over the whole run (warm-up and a 0.5 s drain included),
 *                with the kernel's drop counters saying whose socket dropped them. The naive
 *                relay has no UDP ("—"). The 64 B target includes loss < 0.1%, pooled over the
 *                rounds. A third subject, socksmith capturing to a file (-w), gives the capture-on
 *                ratio to capture off (64 B target ≥ 0.8×); each proxy's CPU per echo is printed.
 *
 * UDP WINDOW: the udp client keeps at most N datagrams in flight (closed loop), so the rate is
 * what the relay sustains, not how fast a socket buffer overflows. Direct (C client to C echo
 * server, 8 MiB socket buffers, sendmmsg/recvmmsg) loses nothing at any window from 8 to 1,024
 * and its rate is flat from 32 up (about 300k echoes/s on the reference machine, within noise
 * between 32 and 256); socksmith's rate is flat from 16 up, and from 128 up (1,200 B) or 256
 * (64 B) it loses datagrams: its relay sockets keep the kernel's default 208 KiB receive buffer,
 * which that many datagrams in flight overflow while the event loop is busy. 64 is the largest
 * power of two at the top of both plateaus with no loss anywhere: the default.
 *
 * All but idle are measured in interleaved rounds (3 for throughput: each cell is 3 × (0.3 s
 * warm-up + 1.2 s measured) per subject; 5 for handshakes and udp, whose rates swing most from
 * round to round on a shared machine), the subjects back to back in each round, their order
 * rotating. A figure is the median of its rounds; a ratio is the median of the
 * per-round ratios (paired: both sides of a ratio saw the same background load). Each section
 * starts fresh proxies, so none inherits another's heap or sockets. Full run: about 5 minutes.
 *
 * The load generator and the target servers are C (bench/loadgen.c, compiled here with gcc -O2
 * into bench/build/ when the source is newer than the binary): Node cannot drive these rates.
 * Every socket is on 127.0.0.1. Every child process is started by this script, is bounded in
 * time (`loadgen guard` sets an alarm and a parent-death signal before exec'ing the proxies), and
 * is stopped at the end, on error and on Ctrl-C; socksmith is stopped with SIGINT (exit 0).
 *
 * NOISE: the load generator, the target servers and the proxy share the machine's cores (2 on
 * the reference machine), together with anything else running there. Absolute numbers vary
 * from run to run by tens of percent; what we report are the ratios between subjects measured
 * in the same run, cell by cell, back to back, in interleaved rounds so that a burst of background
 * load (another test suite, a build) hits all subjects alike. Per-round figures are printed under
 * the table: rounds that disagree a lot mean the machine was busy. The header line says how much
 * CPU other processes and the hypervisor (steal time) took during the run.
 */
import { execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chainSection } from "./chain.mjs";
import { tlsSection } from "./tls.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE = path.join(ROOT, "bench", "loadgen.c");
const LOADGEN = path.join(ROOT, "bench", "build", "loadgen");
/** SOCKSMITH_BENCH_CLI names another build to measure (e.g. a copy of dist/ kept for an A/B run). */
const CLI = process.env.SOCKSMITH_BENCH_CLI ? path.resolve(process.env.SOCKSMITH_BENCH_CLI) : path.join(ROOT, "dist", "cli.js");
const NAIVE = path.join(ROOT, "bench", "naive-proxy.mjs");
/** Hard lifetime of every long-lived child (servers, proxies), in seconds. */
const CHILD_LIFETIME_S = 600;

// --- options ------------------------------------------------------------------------------------

const THROUGHPUT_CELLS = ["up1", "up8", "down1", "down8"];
const SECTIONS = ["throughput", "handshakes", "latency", "idle", "udp", "hooks", "capture", "tui", "tls", "chain"];

function parseArgs(argv) {
  const opts = { quick: false, only: new Set([...THROUGHPUT_CELLS, ...SECTIONS.slice(1)]), profileDir: undefined, udpWindow: 64 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") opts.quick = true;
    else if (arg === "--only" || arg === "--profile" || arg === "--udp-window") {
      const value = argv[++i];
      if (value === undefined) usage(`${arg} needs a value`);
      if (arg === "--profile") {
        opts.profileDir = path.resolve(value);
        continue;
      }
      if (arg === "--udp-window") {
        opts.udpWindow = Number(value);
        if (!Number.isInteger(opts.udpWindow) || opts.udpWindow < 1 || opts.udpWindow > 4096) usage("--udp-window: 1 to 4096");
        continue;
      }
      opts.only = new Set();
      for (const name of value.split(",")) {
        if (name === "throughput") THROUGHPUT_CELLS.forEach((c) => opts.only.add(c));
        else if (THROUGHPUT_CELLS.includes(name) || SECTIONS.includes(name)) opts.only.add(name);
        else usage(`--only: unknown section ${name}`);
      }
    } else if (arg === "--help" || arg === "-h") usage();
    else usage(`unknown argument ${arg}`);
  }
  return opts;
}

function usage(problem) {
  if (problem) console.error(`bench: ${problem}`);
  console.error(
    "usage: node bench/run.mjs [--quick] [--only throughput|up1|up8|down1|down8|handshakes|latency|idle|udp|hooks|capture|tui|tls|chain[,...]] [--profile DIR] [--udp-window N]",
  );
  process.exit(problem ? 2 : 0);
}

const OPTS = parseArgs(process.argv.slice(2));
/** Durations in seconds; rounds as described in the header. */
const CFG = OPTS.quick
  ? {
      rounds: 1,
      cellSeconds: 1,
      warmup: 0.3,
      hsSeconds: 1,
      primeSeconds: 0.5,
      rateRounds: 1,
      latencyRounds: 1,
      latencySamples: 3000,
      idleTunnels: 2000,
      idleSettleMs: 500,
    }
  : {
      rounds: 3,
      cellSeconds: 1.2,
      warmup: 0.3,
      hsSeconds: 1.2,
      primeSeconds: 5,
      rateRounds: 5,
      latencyRounds: 5,
      latencySamples: 8000,
      idleTunnels: 10000,
      idleSettleMs: 1000,
    };

// --- child processes ----------------------------------------------------------------------------

/** Every child still running, so that any exit path can stop it. */
const children = new Set();

class Child {
  constructor(name, cmd, args) {
    this.name = name;
    this.proc = spawn(cmd, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    this.pid = this.proc.pid;
    this.lines = [];
    this.waiters = [];
    this.stderr = [];
    this.exit = undefined;
    this.expectedExit = false;
    children.add(this);
    this.proc.stdin.on("error", () => {});
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.lines.push(line);
    });
    createInterface({ input: this.proc.stderr }).on("line", (line) => this.stderr.push(line));
    this.closed = new Promise((resolve) => {
      this.proc.on("error", (err) => {
        this.exit = { code: null, signal: null, error: err.message };
        children.delete(this);
        resolve(this.exit);
      });
      this.proc.on("close", (code, signal) => {
        this.exit ??= { code, signal };
        children.delete(this);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name} exited (${describeExit(this.exit)}) ${this.stderrTail()}`));
        resolve(this.exit);
      });
    });
  }

  get alive() {
    return this.exit === undefined;
  }

  /** The next stdout line, or an error when the child exits or the time is up. */
  nextLine(timeoutMs, what) {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (!this.alive) return Promise.reject(new Error(`${this.name} exited (${describeExit(this.exit)}) before ${what} ${this.stderrTail()}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`${this.name}: no ${what} after ${timeoutMs} ms ${this.stderrTail()}`));
      }, timeoutMs);
      const done = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push({ resolve: done, reject: (err) => (clearTimeout(timer), reject(err)) });
    });
  }

  async nextJson(timeoutMs, what) {
    for (;;) {
      const line = await this.nextLine(timeoutMs, what);
      try {
        return JSON.parse(line);
      } catch {
        // not a JSON line (socksmith prints only JSON with --log-format json; be lenient)
      }
    }
  }

  stderrTail() {
    return this.stderr.length === 0 ? "" : `[stderr: ${this.stderr.slice(-5).join(" | ")}]`;
  }

  /** Sends `signal`, waits up to `graceMs`, then SIGKILL. Resolves with the exit. */
  async stop(signal = "SIGTERM", graceMs = 3000) {
    if (!this.alive) return this.exit;
    this.expectedExit = true;
    this.proc.kill(signal);
    const timer = setTimeout(() => {
      if (this.alive) {
        this.killedAfterGrace = true;
        this.proc.kill("SIGKILL");
      }
    }, graceMs);
    const exit = await this.closed;
    clearTimeout(timer);
    return exit;
  }
}

function describeExit(exit) {
  if (exit === undefined) return "running";
  if (exit.error) return exit.error;
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

async function stopAll() {
  await Promise.all([...children].map((c) => c.stop(c.name.startsWith("socksmith") ? "SIGINT" : "SIGTERM", c.name.startsWith("socksmith") ? 10000 : 3000)));
}

// Last resort: whatever path the process takes out, take the children with it.
process.on("exit", () => {
  for (const c of children) c.proc.kill("SIGKILL");
});
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\nbench: ${signal}: stopping every child`);
    stopAll().finally(() => process.exit(130));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- build --------------------------------------------------------------------------------------

function compileLoadgen() {
  mkdirSync(path.dirname(LOADGEN), { recursive: true });
  if (existsSync(LOADGEN) && statSync(LOADGEN).mtimeMs >= statSync(SOURCE).mtimeMs) return;
  console.error("bench: compiling bench/loadgen.c");
  execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-o", LOADGEN, SOURCE], { stdio: "inherit" });
}

// --- subjects -----------------------------------------------------------------------------------

/** Problems seen during the run (proxy errors, crashes, failed cells), printed after the table. */
const problems = [];
/** Profiles written, when --profile is on. */
const profiles = [];

async function startServers() {
  const serve = new Child("loadgen serve", LOADGEN, ["serve", String(CHILD_LIFETIME_S)]);
  const info = await serve.nextJson(5000, "listening line");
  return { serve, bulkPort: info.bulk, echoPort: info.echo, udpEchoPort: info.udp_echo };
}

/** socksmith as a child: its first stdout line is {"event":"listening",...,"port":N}. */
async function startSocksmith(extra = [], name = "socksmith") {
  const node = OPTS.profileDir ? [process.execPath, "--cpu-prof", `--cpu-prof-dir=${OPTS.profileDir}`] : [process.execPath];
  // Capture is off unless a section asks for it (-w FILE): the other sections measure the relay.
  const capture = extra.includes("-w") ? [] : ["--no-capture"];
  const args = [...node, CLI, "run", "--headless", "-l", "127.0.0.1:0", "--log-format", "json", "-q", ...capture, ...extra];
  const child = new Child("socksmith", LOADGEN, ["guard", String(CHILD_LIFETIME_S), ...args]);
  const info = await child.nextJson(10000, "listening line");
  if (info.event !== "listening" || typeof info.port !== "number") throw new Error(`socksmith: unexpected first line ${JSON.stringify(info)}`);
  return { name, child, port: info.port };
}

/** The naive relay; `halfClose`: the variant that keeps half-close and BND.ADDR (naive-proxy.mjs --half-close), named "naive-hc". */
async function startNaive(halfClose = false) {
  const name = halfClose ? "naive-hc" : "naive";
  const child = new Child(name, LOADGEN, ["guard", String(CHILD_LIFETIME_S), process.execPath, NAIVE, ...(halfClose ? ["--half-close"] : [])]);
  const info = await child.nextJson(10000, "listening line");
  return { name, child, port: info.port };
}

/** Stops a proxy and records anything unexpected about its life. */
async function stopProxy(proxy, section) {
  if (proxy === undefined) return;
  const { child } = proxy;
  const diedEarly = !child.alive && !child.expectedExit;
  const isSmith = !proxy.name.startsWith("naive");
  const exit = isSmith ? await child.stop("SIGINT", 10000) : await child.stop("SIGTERM", 3000);
  if (diedEarly) problems.push(`${proxy.name} (${section}) exited on its own: ${describeExit(exit)} ${child.stderrTail()}`);
  else if (child.killedAfterGrace) problems.push(`${proxy.name} (${section}) did not exit within 10 s of SIGINT; killed`);
  else if (isSmith && exit.code !== 0) problems.push(`socksmith (${section}) exited with ${describeExit(exit)} after SIGINT ${child.stderrTail()}`);
  // socksmith's expected notices on stop; anything else on stderr is worth a look.
  const noise = /^(SIGINT|SIGTERM)( again)?: |"message":"addon [\w-]+ loaded from |^TLS interception on: |^upstream: /;
  const unexpected = child.stderr.filter((l) => !noise.test(l));
  if (unexpected.length > 0)
    problems.push(
      `${proxy.name} (${section}) stderr: ${unexpected.slice(0, 5).join(" | ")}${unexpected.length > 5 ? ` (+${unexpected.length - 5} lines)` : ""}`,
    );
  if (isSmith && OPTS.profileDir) profiles.push(`${section}: ${OPTS.profileDir}/CPU.*.${child.pid}.*.cpuprofile`);
}

/**
 * Starts fresh proxies for a section (so sections do not inherit each other's heap or sockets);
 * without `withNaive`, socksmith only (the naive relay has no UDP); with `withHalfCloseNaive`, the
 * naive relay's --half-close variant too.
 */
async function withProxies(section, extraSocksmithArgs, body, { withNaive = true, withHalfCloseNaive = false } = {}) {
  let smith, naive, naiveHc;
  try {
    smith = await startSocksmith(extraSocksmithArgs);
    if (withNaive) naive = await startNaive();
    if (withHalfCloseNaive) naiveHc = await startNaive(true);
    await body([{ name: "direct", port: 0 }, smith, ...(withNaive ? [naive] : []), ...(withHalfCloseNaive ? [naiveHc] : [])]);
  } finally {
    await stopProxy(smith, section);
    await stopProxy(naive, section);
    await stopProxy(naiveHc, section);
  }
}

/** Runs one loadgen client to completion and returns its JSON result. */
async function loadgen(args, timeoutMs) {
  const child = new Child(`loadgen ${args[0]}`, LOADGEN, args);
  const timer = setTimeout(() => child.stop("SIGKILL"), timeoutMs);
  const exit = await child.closed;
  clearTimeout(timer);
  const result = child.lines.map((l) => JSON.parse(l)).pop();
  if (exit.code !== 0 || result === undefined) throw new Error(`loadgen ${args.join(" ")}: ${describeExit(exit)} ${child.stderrTail()}`);
  return result;
}

const via = (subject) => (subject.port > 0 ? ["--proxy", String(subject.port)] : []);

/**
 * One bulk cell of `subject` against the bulk server: `dir` up or down, `streams` at once, the
 * configured warm-up and length. `slackMs`: how long past that it may take (more where a disk
 * sets the pace).
 */
function bulkRun(servers, subject, dir, streams, slackMs = 30000) {
  const args = ["bulk", "--port", String(servers.bulkPort), ...via(subject), "--dir", dir, "--streams", String(streams)];
  return loadgen([...args, "--seconds", String(CFG.cellSeconds), "--warmup", String(CFG.warmup)], (CFG.cellSeconds + CFG.warmup) * 1000 + slackMs);
}

/** One handshake cell of `subject` against the echo server: 32 closed-loop workers. */
function handshakeRun(servers, subject, seconds = CFG.hsSeconds, warmup = CFG.warmup) {
  const args = ["handshakes", "--port", String(servers.echoPort), ...via(subject), "--workers", "32"];
  return loadgen([...args, "--seconds", String(seconds), "--warmup", String(warmup)], (seconds + warmup) * 1000 + 30000);
}

/**
 * Primes each proxy among `subjects` with CFG.primeSeconds of unmeasured handshakes before a
 * section's handshake rounds, so that they measure the proxies' steady state, not V8 compiling
 * their code. In consecutive 3 s runs of one fresh process, socksmith's user CPU per handshake
 * went 148, 104, then 73-77 µs (86, 63, then 54-61 in a faster hour, when the naive relay's went
 * 62, 57, then 47-59): it has ten times the code to compile. After 2 s of priming the rounds still
 * caught the end of that (0.85-0.92× naive in three runs); after 5 s, 0.97×. The rate of that
 * first run goes in the details as "cold".
 */
function primeHandshakes(servers, subjects, label) {
  return primeProxies(subjects, label, "handshakes", (subject) => handshakeRun(servers, subject, CFG.primeSeconds, 0));
}

/** Runs `run` (CFG.primeSeconds of unmeasured `what`, no warm-up) once through each proxy among `subjects`; says their rates. */
async function primeProxies(subjects, label, what, run) {
  const cold = [];
  for (const subject of subjects.filter((s) => s.child !== undefined)) {
    const r = await run(subject);
    cold.push(`${subject.name} ${r.rate.toFixed(0)}/s`);
  }
  details.push(`${label}: each proxy first ran ${CFG.primeSeconds} s of unmeasured ${what} (JIT warm-up); their rates then: ${cold.join(", ")}`);
}

/** Runs a cell for one subject; a failure is recorded and leaves a hole in the table. */
async function cell(label, subject, fn) {
  if (subject.child !== undefined && !subject.child.alive) {
    problems.push(`${label} / ${subject.name}: skipped, the proxy is not running`);
    return undefined;
  }
  try {
    return await fn();
  } catch (err) {
    problems.push(`${label} / ${subject.name}: ${err.message}`);
    return undefined;
  }
}

// --- sections -----------------------------------------------------------------------------------

/** series[metric][subject] = the figure of each round, in round order (undefined: the run failed). */
const series = {};
const details = [];
const record = (metric, subject, values) => ((series[metric] ??= {})[subject] = values);

function median(values) {
  const xs = values.filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** A subject's figure: the median of its rounds. */
const figure = (metric, subject) => median(series[metric]?.[subject] ?? []);

/**
 * The median over rounds of a_r / b_r. Subjects run back to back within a round, so they share
 * that round's background load: the per-round ratio cancels most of it.
 */
function pairedRatio(metric, a, b) {
  const xs = series[metric]?.[a];
  const ys = series[metric]?.[b];
  if (xs === undefined || ys === undefined) return undefined;
  return median(xs.map((x, i) => (x !== undefined && ys[i] !== undefined && ys[i] !== 0 ? x / ys[i] : undefined)));
}

/**
 * Runs `run(subject)` for every subject in `rounds` interleaved rounds (the order rotates each
 * round), so that a burst of background load hits every subject alike rather than one cell.
 * Returns, per subject name, the results in round order (undefined where a run failed).
 */
async function interleaved(label, subjects, rounds, run) {
  const all = Object.fromEntries(subjects.map((s) => [s.name, new Array(rounds).fill(undefined)]));
  for (let round = 0; round < rounds; round++) {
    const order = subjects.map((_, i) => subjects[(i + round) % subjects.length]);
    for (const subject of order) {
      all[subject.name][round] = await cell(label, subject, () => run(subject));
      await sleep(200); // let the previous run's queued bytes and closing sockets settle
    }
  }
  return all;
}

/** The result of the round whose `value` is the median (for the secondary figures). */
function medianRound(results, value) {
  const ok = results.filter((r) => r !== undefined).sort((a, b) => value(a) - value(b));
  return ok[Math.floor((ok.length - 1) / 2)];
}

const perRound = (results, value) => results.map((r) => (r === undefined ? "failed" : value(r))).join(" / ");

async function throughput(servers) {
  const cells = THROUGHPUT_CELLS.filter((c) => OPTS.only.has(c));
  if (cells.length === 0) return;
  console.error("bench: throughput");
  await withProxies("throughput", [], async (subjects) => {
    for (const name of cells) {
      const dir = name.startsWith("up") ? "up" : "down";
      const streams = name.endsWith("8") ? 8 : 1;
      const bySubject = await interleaved(name, subjects, CFG.rounds, (subject) => {
        const run = () => bulkRun(servers, subject, dir, streams);
        return subject.child === undefined ? run() : withCpu(subject.child.pid, CFG.warmup, run, (r) => r.mibps);
      });
      for (const [subject, results] of Object.entries(bySubject)) {
        record(
          name,
          subject,
          results.map((r) => r?.mibps),
        );
        const mid = medianRound(results, (r) => r.mibps);
        const fairness = streams > 1 && mid ? `; per stream (median round) ${mid.stream_mibps.join(" ")}` : "";
        // CPU per MiB does not depend on which core the scheduler gave the proxy as much as the
        // rate does, except beside the sending process (see the README's Performance section).
        const cpu = results.some((r) => r?.cpu !== undefined) ? `; proxy CPU per MiB ${perRound(results, (r) => cpuPerUnit(r))} µs` : "";
        details.push(`${name} ${subject}: MiB/s per round ${perRound(results, (r) => r.mibps)}${cpu}${fairness}`);
      }
    }
  });
}

/** CPU seconds a process has used so far (all its threads), user and kernel, from /proc (Linux only; undefined elsewhere). */
function processCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / 100, kernel: Number(fields[12]) / 100 }; // utime, stime in USER_HZ (100)
  } catch {
    return undefined;
  }
}

/**
 * Runs `run()` (a loadgen client that measures after `warmupS` seconds) and samples the proxy's CPU
 * over the measured window: from `warmupS` after the start to the client's exit. Returns the
 * result with `cpu` = { user, kernel } seconds per unit (`value(result)` units per second over the
 * window's wall time), or no `cpu` when /proc cannot be read.
 */
async function withCpu(pid, warmupS, run, value) {
  let from;
  const timer = setTimeout(() => {
    from = { cpu: processCpu(pid), at: performance.now() };
  }, warmupS * 1000);
  try {
    const result = await run();
    const to = { cpu: processCpu(pid), at: performance.now() };
    if (from?.cpu === undefined || to.cpu === undefined) return result;
    const units = value(result) * ((to.at - from.at) / 1000);
    if (!(units > 0)) return result;
    return { ...result, cpu: { user: (to.cpu.user - from.cpu.user) / units, kernel: (to.cpu.kernel - from.cpu.kernel) / units } };
  } finally {
    clearTimeout(timer);
  }
}

/** A round's CPU per unit (user + kernel), in µs, or "—" when it was not measured. */
const cpuPerUnit = (r) => (r.cpu === undefined ? "—" : ((r.cpu.user + r.cpu.kernel) * 1e6).toFixed(0));

/** "X µs (user A + kernel B)" for the round whose total CPU is the median. */
function cpuText(results) {
  const mid = medianRound(
    results.filter((r) => r?.cpu !== undefined),
    (r) => r.cpu.user + r.cpu.kernel,
  );
  if (mid === undefined) return "—";
  const us = (s) => (s * 1e6).toFixed(0);
  return `${us(mid.cpu.user + mid.cpu.kernel)} µs (user ${us(mid.cpu.user)} + kernel ${us(mid.cpu.kernel)})`;
}

async function handshakes(servers) {
  if (!OPTS.only.has("handshakes")) return;
  console.error("bench: handshakes");
  await withProxies(
    "handshakes",
    [],
    async (subjects) => {
      await primeHandshakes(servers, subjects, "handshakes");
      const bySubject = await interleaved("handshakes", subjects, CFG.rateRounds, (subject) => {
        const run = () => handshakeRun(servers, subject);
        return subject.child === undefined ? run() : withCpu(subject.child.pid, CFG.warmup, run, (r) => r.rate);
      });
      const cpuLine = subjects
        .filter((s) => s.child !== undefined)
        .map((s) => `${s.name} ${cpuText(bySubject[s.name])}`)
        .join(", ");
      details.push(`handshakes: CPU per handshake (proxy process, all threads, measured window, median round): ${cpuLine}`);
      for (const [subject, results] of Object.entries(bySubject)) {
        record(
          "handshakes",
          subject,
          results.map((r) => r?.rate),
        );
        const ok = results.filter((r) => r !== undefined);
        if (ok.length === 0) continue;
        const mid = medianRound(results, (r) => r.rate);
        const errors = ok.reduce((n, r) => n + r.errors, 0);
        const stalls = ok.reduce((n, r) => n + r.stalls, 0);
        const last = ok
          .map((r) => r.last_error)
          .filter(Boolean)
          .pop();
        details.push(
          `handshakes ${subject}: /s per round ${perRound(results, (r) => r.rate)}; one handshake (median round) p50 ${mid.p50_us} µs, p99 ${mid.p99_us} µs; errors ${errors}, stalls ${stalls}`,
        );
        if (errors > 0 || stalls > 0) problems.push(`handshakes / ${subject}: ${errors} errors, ${stalls} stalls (last: ${last})`);
      }
      // Informational: the target is against the plain naive relay; this says how much of the gap
      // is what socksmith does and the plain relay skips (half-close, a real BND.ADDR).
      const vsHc = pairedRatio("handshakes", "socksmith", "naive-hc");
      const hcVsNaive = pairedRatio("handshakes", "naive-hc", "naive");
      if (vsHc !== undefined && hcVsNaive !== undefined)
        details.push(
          `handshakes: socksmith ${vsHc.toFixed(2)}× naive-hc, the naive relay that keeps half-close and a real BND.ADDR as socksmith does (naive-proxy.mjs --half-close), which ran at ${hcVsNaive.toFixed(2)}× the plain naive relay (paired rounds; informational)`,
        );
    },
    { withHalfCloseNaive: true },
  );
}

async function latency(servers) {
  if (!OPTS.only.has("latency")) return;
  console.error("bench: latency");
  await withProxies("latency", [], async (subjects) => {
    const bySubject = await interleaved("latency", subjects, CFG.latencyRounds, (subject) => {
      const args = ["latency", "--port", String(servers.echoPort), ...via(subject), "--samples", String(CFG.latencySamples), "--size", "64"];
      return loadgen(args, 60000);
    });
    for (const [subject, results] of Object.entries(bySubject)) {
      record(
        "p50",
        subject,
        results.map((r) => r?.p50_us),
      );
      record(
        "p99",
        subject,
        results.map((r) => r?.p99_us),
      );
      const mid = medianRound(results, (r) => r.p50_us);
      if (mid === undefined) continue;
      details.push(
        `latency ${subject}: p50 per round ${perRound(results, (r) => r.p50_us)} µs; p99 per round ${perRound(results, (r) => r.p99_us)} µs; median round p99.9 ${mid.p999_us}, max ${mid.max_us} µs`,
      );
    }
    // Added latency, paired within each round like the ratios.
    const direct = bySubject.direct ?? [];
    for (const name of ["socksmith", "naive"]) {
      const proxy = bySubject[name] ?? [];
      record(
        "added",
        name,
        proxy.map((r, i) => (r !== undefined && direct[i] !== undefined ? r.p50_us - direct[i].p50_us : undefined)),
      );
    }
  });
}

function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  let pss = NaN;
  try {
    pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1]);
  } catch {
    // smaps_rollup needs Linux 4.14+
  }
  return { rss, pss };
}

/**
 * The hard limit on open files (/proc/self/limits): children inherit it, and a process cannot
 * raise it. Each tunnel costs the proxy two descriptors (client and target side).
 */
function hardFileLimit() {
  const m = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  return m === null ? Number.POSITIVE_INFINITY : Number(m[1]);
}

async function idle(servers) {
  if (!OPTS.only.has("idle")) return;
  console.error("bench: idle tunnels");
  // Two descriptors per tunnel, and some for the proxy itself (listener, capture, watchdog, pipes).
  const n = Math.min(CFG.idleTunnels, Math.floor((hardFileLimit() - 100) / 2));
  if (n < CFG.idleTunnels) details.push(`idle: ${n} tunnels, not ${CFG.idleTunnels}: the hard limit on open files (${hardFileLimit()}) allows no more`);
  await withProxies("idle", ["--max-sessions", "20000"], async (subjects) => {
    for (const subject of subjects.filter((s) => s.port > 0)) {
      const value = await cell("idle", subject, async () => {
        // Warm up (code paths compiled, pools allocated), then measure from a settled state.
        await loadgen(["idle", "--port", String(servers.echoPort), "--proxy", String(subject.port), "--count", "200", "--hold", "0"], 30000);
        await sleep(500);
        const before = memory(subject.child.pid);
        const holder = new Child("loadgen idle", LOADGEN, [
          "idle",
          "--port",
          String(servers.echoPort),
          "--proxy",
          String(subject.port),
          "--count",
          String(n),
          "--hold",
          "60",
        ]);
        try {
          const opened = await holder.nextJson(60000, "open event");
          await sleep(CFG.idleSettleMs);
          if (!subject.child.alive) throw new Error("the proxy exited while holding the tunnels");
          const after = memory(subject.child.pid);
          holder.proc.stdin.end("close\n");
          await holder.closed;
          details.push(
            `idle ${subject.name}: ${n} tunnels opened in ${opened.seconds} s; VmRSS ${before.rss} → ${after.rss} kB, PSS ${before.pss} → ${after.pss} kB (${((after.pss - before.pss) / n).toFixed(2)} KB/tunnel)`,
          );
          return (after.rss - before.rss) / n;
        } finally {
          await holder.stop("SIGTERM");
        }
      });
      record("idle", subject.name, [value]);
    }
  });
}

/** UDP loss, pooled over the rounds: udpLoss[metric][subject] = { sent, lost }. */
const udpLoss = {};

function pooledLossPct(metric, subject) {
  const l = udpLoss[metric]?.[subject];
  return l === undefined || l.sent === 0 ? undefined : (100 * l.lost) / l.sent;
}

const UDP_SIZES = [64, 1200];

/** CPU seconds the whole process (every thread) has used, from /proc (Linux only). */
function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
  } catch {
    return undefined;
  }
}

/**
 * Three subjects: direct, socksmith with --no-capture ("socksmith", the table's row) and
 * socksmith capturing to a file ("capture on", a line under the table with its paired ratio to
 * capture off; target ≥ 0.8×). Each proxy's CPU per echoed datagram (utime + stime of the whole
 * process, every thread, over the round, warm-up and drain included, divided by the datagrams
 * that came back; one echo is two datagrams relayed) is printed with the rounds.
 */
async function udp(servers) {
  if (!OPTS.only.has("udp")) return;
  console.error("bench: udp");
  const dir = mkdtempSync(path.join(tmpdir(), "socksmith-bench-udp-"));
  const subjects = [{ name: "direct", port: 0 }];
  try {
    subjects.push(await startSocksmith([], "socksmith"));
    subjects.push(await startSocksmith(["-w", path.join(dir, "udp.db")], "capture on"));
    // Primed like the handshake sections: the first second of a fresh proxy measures V8 compiling
    // the relay's code and, capturing, the writer's (and SQLite's first pages), not the relay.
    await primeProxies(subjects, "udp", "64 B echoes", (subject) => {
      const args = ["udp", "--port", String(servers.udpEchoPort), ...via(subject), "--size", "64", "--window", String(OPTS.udpWindow)];
      return loadgen([...args, "--seconds", String(CFG.primeSeconds), "--warmup", "0"], CFG.primeSeconds * 1000 + 30000);
    });
    for (const size of UDP_SIZES) {
      const key = `udp${size}`;
      const cpu = {};
      const bySubject = await interleaved(key, subjects, CFG.rateRounds, async (subject) => {
        const args = [
          "udp",
          "--port",
          String(servers.udpEchoPort),
          ...via(subject),
          "--size",
          String(size),
          "--window",
          String(OPTS.udpWindow),
          "--seconds",
          String(CFG.cellSeconds),
          "--warmup",
          String(CFG.warmup),
        ];
        const pid = subject.child?.pid;
        const cpu0 = pid === undefined ? undefined : processCpuSeconds(pid);
        const result = await loadgen(args, (CFG.cellSeconds + CFG.warmup) * 1000 + 30000);
        const cpu1 = pid === undefined ? undefined : processCpuSeconds(pid);
        if (cpu0 !== undefined && cpu1 !== undefined && result.received > 0) (cpu[subject.name] ??= []).push(((cpu1 - cpu0) / result.received) * 1e6);
        return result;
      });
      for (const [subject, results] of Object.entries(bySubject)) {
        record(
          key,
          subject,
          results.map((r) => r?.rate),
        );
        const ok = results.filter((r) => r !== undefined);
        if (ok.length === 0) continue;
        const sum = (f) => ok.reduce((n, r) => n + f(r), 0);
        const loss = ((udpLoss[key] ??= {})[subject] = { sent: sum((r) => r.sent), lost: sum((r) => r.lost) });
        const mid = medianRound(results, (r) => r.rate);
        const drops = ["client", "relay", "server", "other"].map((k) => [k, sum((r) => Math.max(0, r.drops[k]))]).filter(([, n]) => n > 0);
        const cpuText = cpu[subject] === undefined ? "" : `; proxy CPU per echo ${cpu[subject].map((x) => x.toFixed(1)).join(" / ")} µs`;
        details.push(
          `udp ${size} B ${subject}: datagrams/s per round ${perRound(results, (r) => r.rate.toFixed(0))}${cpuText}; ` +
            `loss per round ${perRound(results, (r) => `${r.loss_pct.toFixed(3)}%`)}, all rounds ${loss.lost} of ${loss.sent} (${pooledLossPct(key, subject).toFixed(3)}%)` +
            `${drops.length > 0 ? ` [kernel drops: ${drops.map(([k, n]) => `${k} ${n}`).join(", ")}]` : ""}; ` +
            `round trip (median round) p50 ${mid.rtt_p50_us} µs, p99 ${mid.rtt_p99_us} µs, longest gap ${mid.max_gap_ms} ms`,
        );
        const bad = sum((r) => r.bad + r.duplicates + r.send_errors + r.recv_errors);
        if (bad > 0) {
          const last = ok
            .map((r) => r.last_error)
            .filter(Boolean)
            .pop();
          problems.push(
            `udp ${size} B / ${subject}: ${sum((r) => r.bad)} malformed, ${sum((r) => r.duplicates)} duplicate echoes, ${sum((r) => r.send_errors)} send and ${sum((r) => r.recv_errors)} receive errors${last ? ` (last: ${last})` : ""}`,
          );
        }
        if (subject === "direct" && loss.lost > 0)
          problems.push(`udp ${size} B / direct: ${loss.lost} datagrams lost without a proxy (the machine is too busy, or the window too large)`);
      }
      details.push(`udp ${size} B naive: — (no UDP ASSOCIATE)`);
      const off = figure(key, "socksmith");
      const on = figure(key, "capture on");
      const r = pairedRatio(key, "capture on", "socksmith");
      const cpuOff = median(cpu.socksmith ?? []);
      const cpuOn = median(cpu["capture on"] ?? []);
      const cpuText = cpuOff === undefined || cpuOn === undefined ? "" : `; proxy CPU per echo off ${cpuOff.toFixed(1)} µs, on ${cpuOn.toFixed(1)} µs`;
      const mark = size === 64 ? ` (target ≥ 0.8×: ${r >= 0.8 ? "PASS" : "MISS"})` : "";
      captureLines.push(`UDP echo, ${size} B (datagrams/s): off ${fmt(off)}, on ${fmt(on)} = ${fmtRatio(r)}${mark}${cpuText}`);
    }
  } finally {
    for (const s of subjects.slice(1)) await stopProxy(s, "udp");
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The cost of addons: socksmith with no addon, with a pass-through onData addon and with a
 * pass-through onRequest addon, as three processes measured in interleaved rounds; figures are
 * ratios to the no-addon process. Targets: onData keeps ≥ 0.7× the upload throughput, onRequest
 * keeps ≥ 0.9× the handshake rate, and a set without onData relays at no-addon speed.
 */
async function hooks(servers) {
  if (!OPTS.only.has("hooks")) return;
  console.error("bench: hooks");
  const addon = (name) => path.join(ROOT, "bench", "addons", `${name}.ts`);
  const subjects = [];
  try {
    subjects.push(await startSocksmith([], "no addon"));
    subjects.push(await startSocksmith(["-s", addon("pass-data")], "onData addon"));
    subjects.push(await startSocksmith(["-s", addon("pass-request")], "onRequest addon"));
    const up = await interleaved("hooks up1", subjects, CFG.rounds, (subject) => bulkRun(servers, subject, "up", 1));
    await primeHandshakes(servers, subjects, "hooks handshakes");
    const hs = await interleaved("hooks handshakes", subjects, CFG.rounds, (subject) => handshakeRun(servers, subject));
    const ratio = (results, name, value) => {
      const per = results["no addon"]
        .map((base, i) => (base && results[name][i] ? value(results[name][i]) / value(base) : undefined))
        .filter((x) => x !== undefined);
      return median(per);
    };
    const rows = [
      ["upload, 1 stream (MiB/s)", up, (r) => r.mibps, { "onData addon": 0.7, "onRequest addon": 0.9 }],
      ["handshakes, 32 workers (/s)", hs, (r) => r.rate, { "onRequest addon": 0.9 }],
    ];
    for (const [label, results, value, targets] of rows) {
      const parts = subjects.map((s) => {
        const figure = median(results[s.name].filter(Boolean).map(value));
        if (s.name === "no addon") return `${s.name} ${fmt(figure)}`;
        const r = ratio(results, s.name, value);
        const target = targets[s.name];
        const mark = target === undefined ? "" : ` (target ≥ ${target.toFixed(1)}×: ${r >= target ? "PASS" : "MISS"})`;
        return `${s.name} ${fmt(figure)} = ${fmtRatio(r)}${mark}`;
      });
      hookLines.push(`${label}: ${parts.join("; ")}`);
    }
  } finally {
    for (const s of subjects) await stopProxy(s, "hooks");
  }
}

const hookLines = [];

/** CPU seconds the process's main thread (tid = pid) has used, from /proc (Linux only). */
function mainThreadCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
  } catch {
    return undefined;
  }
}

/**
 * The cost of capture: socksmith with --no-capture and with full capture to a capture file, as two
 * processes measured in interleaved rounds, and the disk under the file as a third "subject" in
 * the bulk cells (diskWriteMiBps: 256 MiB of new data appended to a kept file and fdatasync'd), so
 * that every round pairs the capture with what the disk did at that moment.
 * Figures: upload and download, 1 and 8 streams, and the handshake rate as ratios to capture off;
 * how busy the main thread was during the capture-on upload (CPU share of wall time of the thread
 * that runs the event loop, from /proc: the file is written on a worker thread); and the files'
 * size against the payload they hold.
 * Targets (issue 16): bulk capture on ≥ 0.5× capture off, or ≥ 0.8× the disk where capture off
 * outruns the disk (capture keeps every byte, so it cannot go faster than the disk takes them);
 * handshakes ≥ 0.8×; main thread ≤ 0.5 above capture off; files ≤ 1.1× the payload.
 */
async function capture(servers) {
  if (!OPTS.only.has("capture")) return;
  console.error("bench: capture");
  const dir = mkdtempSync(path.join(tmpdir(), "socksmith-bench-"));
  const file = path.join(dir, "bench.db");
  const subjects = [];
  try {
    subjects.push(await startSocksmith([], "capture off"));
    subjects.push(await startSocksmith(["-w", file], "capture on"));
    const disk = { name: "disk" };
    const busy = { "capture off": [], "capture on": [] };
    const bulk = (dirName, streams) => async (subject) => {
      if (subject === disk) {
        const mibps = diskWriteMiBps(dir);
        if (mibps === undefined) throw new Error("the disk probe could not write");
        return { mibps };
      }
      const pid = subject.child.pid;
      const cpu0 = mainThreadCpuSeconds(pid);
      const t0 = performance.now();
      const result = await bulkRun(servers, subject, dirName, streams, 60000);
      const cpu1 = mainThreadCpuSeconds(pid);
      if (dirName === "up" && streams === 1 && cpu0 !== undefined && cpu1 !== undefined) {
        busy[subject.name].push((cpu1 - cpu0) / ((performance.now() - t0) / 1000));
      }
      return result;
    };
    const cells = [
      ["upload, 1 stream (MiB/s)", "up", 1],
      ["download, 1 stream (MiB/s)", "down", 1],
      ["upload, 8 streams (MiB/s)", "up", 8],
      ["download, 8 streams (MiB/s)", "down", 8],
    ];
    // Handshakes first: after the bulk cells the kernel is still writing their pages back to the
    // disk, which would be charged to whichever subject runs next.
    await primeHandshakes(servers, subjects, "capture handshakes");
    const hs = await interleaved("capture handshakes", subjects, CFG.rateRounds, (subject) => handshakeRun(servers, subject));
    // What the handshakes (priming included: tens of thousands of sessions) left for the writer to
    // checkpoint and for the kernel to write back is done before the bulk cells and the disk probe.
    await sleep(1500);
    execFileSync("sync");
    const bulkResults = [];
    for (const [label, dirName, streams] of cells) {
      bulkResults.push([label, await interleaved(`capture ${dirName}${streams}`, [...subjects, disk], CFG.rounds, bulk(dirName, streams))]);
    }
    /** The median of per-round ratios a ÷ b (rounds where both ran). */
    const ratio = (results, a, b, value) =>
      median(results[b].map((base, i) => (base && results[a][i] ? value(results[a][i]) / value(base) : undefined)).filter((x) => x !== undefined));
    const mibps = (r) => r.mibps;
    for (const [label, results] of bulkResults) {
      const off = median(results["capture off"].filter(Boolean).map(mibps));
      const on = median(results["capture on"].filter(Boolean).map(mibps));
      const diskRate = median(results.disk.filter(Boolean).map(mibps));
      const vsOff = ratio(results, "capture on", "capture off", mibps);
      const vsDisk = ratio(results, "capture on", "disk", mibps);
      // Capture off outrunning the disk (paired, by the median round): the disk sets the bar.
      const diskBound = ratio(results, "capture off", "disk", mibps) > 1;
      const pass = diskBound ? vsDisk >= 0.8 : vsOff >= 0.5;
      const bar = diskBound ? "target ≥ 0.8× disk, capture off outruns it" : "target ≥ 0.5× off";
      captureLines.push(
        `${label}: off ${fmt(off)}, on ${fmt(on)} = ${fmtRatio(vsOff)} of off; disk ${fmt(diskRate)}, on = ${fmtRatio(vsDisk)} of disk (${bar}: ${pass ? "PASS" : "MISS"})`,
      );
      captureRounds.push(`${label}: ${["capture off", "capture on", "disk"].map((n) => `${n} ${perRound(results[n], (r) => fmt(r.mibps))}`).join("; ")}`);
    }
    // For comparison, after every cell (so no subject writes into the pages it frees): the probe
    // writing into page-cache pages it has just freed, as it did before it kept its files.
    diskWriteMiBps(dir, { recycle: true }); // leaves freed pages for the measured one to write into
    const recycled = diskWriteMiBps(dir, { recycle: true });
    if (recycled !== undefined) {
      const fresh = median(bulkResults.flatMap(([, results]) => results.disk.filter(Boolean).map(mibps)));
      captureLines.push(`disk probe: new data ${fmt(fresh)} MiB/s (the reference above); into pages just freed ${fmt(recycled)} MiB/s (not a capture's case)`);
    }
    const rate = (r) => r.rate;
    const hsRatio = ratio(hs, "capture on", "capture off", rate);
    captureLines.push(
      `handshakes, 32 workers (/s): off ${fmt(median(hs["capture off"].filter(Boolean).map(rate)))}, on ${fmt(median(hs["capture on"].filter(Boolean).map(rate)))} = ${fmtRatio(hsRatio)} (target ≥ 0.8×: ${hsRatio >= 0.8 ? "PASS" : "MISS"})`,
    );
    const busyOff = median(busy["capture off"]);
    const busyOn = median(busy["capture on"]);
    if (busyOff !== undefined && busyOn !== undefined) {
      const added = busyOn - busyOff;
      captureLines.push(
        `main thread busy during the 1-stream upload: off ${busyOff.toFixed(2)}, on ${busyOn.toFixed(2)}, ${added >= 0 ? "+" : ""}${added.toFixed(2)} (target ≤ +0.50: ${added <= 0.5 ? "PASS" : "MISS"})`,
      );
    }
  } finally {
    for (const s of subjects) await stopProxy(s, "capture");
    try {
      if (existsSync(file)) {
        const { default: Database } = await import("better-sqlite3");
        const db = new Database(file, { readonly: true });
        // Inline rows hold their payload in data/sent; rows in the payload file say how much they put there.
        const { payload, external } = db
          .prepare(
            `SELECT coalesce(sum(CASE WHEN payload_at IS NULL THEN length(data) + coalesce(length(sent), 0) ELSE payload_data + coalesce(payload_sent, 0) END), 0) AS payload,
               coalesce(sum(CASE WHEN payload_at IS NULL THEN 0 ELSE payload_data + coalesce(payload_sent, 0) END), 0) AS external
             FROM chunks`,
          )
          .get();
        const sessions = db.prepare("SELECT count(*) AS n FROM sessions").get().n;
        db.close();
        const sizeOf = (f) => (existsSync(f) ? statSync(f).size : 0);
        const payloadFile = sizeOf(`${file}-payload`);
        const size = sizeOf(file) + sizeOf(`${file}-wal`) + payloadFile;
        const r = size / payload;
        const inMiB = (n) => (n / 2 ** 20).toFixed(0);
        captureLines.push(
          `files: ${inMiB(size)} MiB (payload file ${inMiB(payloadFile)} MiB, for ${inMiB(external)} MiB of payload in it) for ${inMiB(payload)} MiB of payload in ${sessions} sessions = ${fmtRatio(r)} (target ≤ 1.1×: ${r <= 1.1 ? "PASS" : "MISS"})`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const captureLines = [];
/** Per-round figures of the capture cells, printed under the table. */
const captureRounds = [];

/** A free loopback port (bound and released; the proxy binds it right after). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * socksmith with its TUI open: run under `script`, which gives it a pseudo-terminal (160×40),
 * so Ink renders for real. Ready when its port accepts a connection.
 */
async function startSocksmithTui(file, name) {
  const port = await freePort();
  const command = `stty cols 160 rows 40; exec ${process.execPath} ${CLI} run -l 127.0.0.1:${port} -w ${file} --capture-limit 64k`;
  const child = new Child(name, LOADGEN, ["guard", String(CHILD_LIFETIME_S), "script", "-qfec", command, "/dev/null"]);
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    if (!child.alive || Date.now() > deadline) throw new Error(`${name}: did not start ${child.stderrTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, child, port };
}

/**
 * The relay with the TUI open: socksmith in a pseudo-terminal with the TUI drawing (capture on,
 * which the TUI reads) against socksmith headless with the same capture (both keep 64 KiB of
 * payload per session), 1-stream upload and download in interleaved rounds. Target: ≥ 0.9×.
 */
async function tui(servers) {
  if (!OPTS.only.has("tui")) return;
  if (!existsSync("/usr/bin/script") && !existsSync("/bin/script")) {
    problems.push("tui: `script` (util-linux) is missing, so there is no pseudo-terminal to run the TUI in");
    return;
  }
  console.error("bench: tui");
  const dir = mkdtempSync(path.join(tmpdir(), "socksmith-bench-tui-"));
  const subjects = [];
  try {
    // Both capture with a payload limit, so the disk (see the capture section) does not set the
    // pace and what shows is the CPU the TUI takes from the relay.
    subjects.push(await startSocksmith(["-w", path.join(dir, "headless.db"), "--capture-limit", "64k"], "headless"));
    subjects.push(await startSocksmithTui(path.join(dir, "tui.db"), "TUI open"));
    for (const dirName of ["up", "down"]) {
      const results = await interleaved(`tui ${dirName}1`, subjects, CFG.rounds, (subject) => bulkRun(servers, subject, dirName, 1, 60000));
      const per = results.headless
        .map((base, i) => (base && results["TUI open"][i] ? results["TUI open"][i].mibps / base.mibps : undefined))
        .filter((x) => x !== undefined);
      const r = median(per);
      const off = median(results.headless.filter(Boolean).map((x) => x.mibps));
      const on = median(results["TUI open"].filter(Boolean).map((x) => x.mibps));
      captureLines.push(
        `TUI open, ${dirName === "up" ? "upload" : "download"} 1 stream (MiB/s): headless ${fmt(off)}, TUI ${fmt(on)} = ${fmtRatio(r)} (target ≥ 0.9×: ${r >= 0.9 ? "PASS" : "MISS"})`,
      );
    }
  } finally {
    await stopProxy(subjects[0], "tui");
    // The TUI's process: `script` ends it with the pseudo-terminal (SIGHUP); no exit code to check.
    await subjects[1]?.child.stop("SIGTERM", 3000);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** run --tls (bench/tls.mjs), with this file's helpers. */
async function tls() {
  if (!OPTS.only.has("tls")) return;
  console.error("bench: tls");
  const helpers = { ROOT, CFG, OPTS, Child, LOADGEN, CHILD_LIFETIME_S, startSocksmith, stopProxy, interleaved, median, fmt, fmtRatio, details, problems };
  tlsLines.push(...(await tlsSection(helpers)));
}

const tlsLines = [];

/** A one-hop chain of two socksmith processes vs one (bench/chain.mjs), with this file's helpers. */
async function chain(servers) {
  if (!OPTS.only.has("chain")) return;
  console.error("bench: chain");
  const helpers = { CFG, startSocksmith, stopProxy, interleaved, bulkRun, handshakeRun, median, fmt, fmtRatio, details, problems };
  chainLines.push(...(await chainSection(helpers, servers)));
}

const chainLines = [];

/**
 * Sequential write rate of the file system under `dir` for new data, as a capture appends it:
 * `mib` MiB in 1 MiB writes to a new file, then fdatasync. The file is kept until the section
 * ends (the capture's payload file is not deleted either): a probe that deleted its file and wrote
 * the next one into the page-cache pages just freed measured 5-7x more than any appender gets on
 * a virtual machine that hands free pages back to its host (there each new page costs a fault on
 * the host: 108-133 MiB/s into new pages against 639-877 MiB/s into just-freed ones, measured on
 * the 2-core VM of the README's figures). `recycle` writes that way instead (then deletes the
 * file), for the report's comparison.
 */
let diskProbes = 0;
function diskWriteMiBps(dir, { mib = 256, recycle = false } = {}) {
  const file = path.join(dir, recycle ? "disk-probe-recycled" : `disk-probe-${diskProbes++}`);
  const block = Buffer.alloc(1 << 20, 0x5a);
  try {
    const fd = openSync(file, "w");
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) writeSync(fd, block);
    fdatasyncSync(fd);
    closeSync(fd);
    return mib / ((performance.now() - t0) / 1000);
  } catch {
    return undefined;
  } finally {
    if (recycle) rmSync(file, { force: true });
  }
}

// --- report -------------------------------------------------------------------------------------

const ROWS = [
  { key: "up1", label: "bulk upload, 1 stream", unit: "MiB/s", target: { minDirect: 0.4, minNaive: 1.0 } },
  { key: "up8", label: "bulk upload, 8 streams", unit: "MiB/s", target: { minDirect: 0.35, minNaive: 1.0 } },
  { key: "down1", label: "bulk download, 1 stream", unit: "MiB/s", target: { minDirect: 0.4, minNaive: 1.0 } },
  { key: "down8", label: "bulk download, 8 streams", unit: "MiB/s", target: { minDirect: 0.35, minNaive: 1.0 } },
  { key: "handshakes", label: "handshakes, 32 workers", unit: "/s", target: { minDirect: 0.25, minNaive: 1.0 } },
  { key: "p50", label: "latency p50, 64 B echo", unit: "µs" },
  { key: "p99", label: "latency p99, 64 B echo", unit: "µs" },
  { key: "added", label: "added latency p50", unit: "µs", noRatio: true, target: { max: 40, maxNaive: 1.0 } },
  { key: "idle", label: "RSS per idle tunnel", unit: "KB", noRatio: true, target: { max: 8 } },
  { key: "udp64", label: "UDP echo, 64 B", unit: "datagrams/s", target: { minDirect: 0.25, maxLossPct: 0.1 } },
  { key: "udp1200", label: "UDP echo, 1200 B", unit: "datagrams/s" },
];

const fmt = (v) => (v === undefined || Number.isNaN(v) ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
const fmtRatio = (ratio) => (ratio === undefined || Number.isNaN(ratio) ? "—" : `${ratio.toFixed(2)}×`);

function targetText(t) {
  if (t === undefined) return "";
  if (t.max !== undefined) return [`≤ ${t.max}`, t.maxNaive === undefined ? undefined : `≤ ${t.maxNaive.toFixed(1)}× naive`].filter(Boolean).join(", ");
  return [
    `≥ ${t.minDirect.toFixed(2)}× direct`,
    t.minNaive === undefined ? undefined : `≥ ${t.minNaive.toFixed(1)}× naive`,
    t.maxLossPct === undefined ? undefined : `loss < ${t.maxLossPct}%`,
  ]
    .filter(Boolean)
    .join(", ");
}

/** The socksmith verdict; `r` holds the paired ratios. */
function verdict(row, v, r) {
  const t = row.target;
  if (t === undefined) return "";
  if (v.socksmith === undefined) return "n/a";
  if (t.max !== undefined) {
    const misses = [];
    if (!(v.socksmith <= t.max)) misses.push(`≤ ${t.max}`);
    // Added latency against the naive relay's, by value (a paired ratio of differences swings wildly).
    if (t.maxNaive !== undefined && v.naive !== undefined && !(v.socksmith <= v.naive * t.maxNaive)) misses.push("naive");
    return misses.length === 0 ? "PASS" : `MISS (vs ${misses.join(", ")})`;
  }
  if (r.direct === undefined || (t.minNaive !== undefined && r.naive === undefined)) return "n/a";
  const loss = t.maxLossPct === undefined ? undefined : pooledLossPct(row.key, "socksmith");
  if (t.maxLossPct !== undefined && loss === undefined) return "n/a";
  const misses = [];
  if (r.direct < t.minDirect) misses.push("direct");
  if (t.minNaive !== undefined && r.naive < t.minNaive) misses.push("naive");
  if (loss !== undefined && !(loss < t.maxLossPct)) misses.push(`loss ${loss.toFixed(2)}%`);
  return misses.length === 0 ? "PASS" : `MISS (vs ${misses.join(", ")})`;
}

function printTable() {
  const header = ["metric", "unit", "direct", "socksmith", "×direct", "naive", "×direct", "smith/naive", "target (socksmith)", "result"];
  const lines = [header];
  for (const row of ROWS) {
    if (series[row.key] === undefined) continue;
    const v = { direct: figure(row.key, "direct"), socksmith: figure(row.key, "socksmith"), naive: figure(row.key, "naive") };
    const r = {
      direct: pairedRatio(row.key, "socksmith", "direct"),
      naiveDirect: pairedRatio(row.key, "naive", "direct"),
      naive: pairedRatio(row.key, "socksmith", "naive"),
    };
    // Added latency can be negative in a noisy round: a ratio of differences means nothing then.
    const smithNaive = row.key === "added" && !(v.socksmith > 0 && v.naive > 0) ? "" : fmtRatio(r.naive);
    lines.push([
      row.label,
      row.unit,
      fmt(v.direct),
      fmt(v.socksmith),
      row.noRatio ? "" : fmtRatio(r.direct),
      fmt(v.naive),
      row.noRatio ? "" : fmtRatio(r.naiveDirect),
      smithNaive,
      targetText(row.target),
      verdict(row, v, r),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7]);
  const render = (l) =>
    l
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  console.log(render(lines[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines.slice(1)) console.log(render(l));
  console.log("figures: median of the rounds; ratios: median of the per-round ratios (subjects run back to back in each round)");
}

// --- background load ----------------------------------------------------------------------------

/**
 * CPU time, in clock ticks: the whole machine's user+nice+system, and ours (this process plus
 * every child it has reaped, i.e. all of loadgen, the servers and the proxies). The difference
 * over the run is what other processes took from the benchmark. Softirq time (where part of
 * loopback TCP runs) is not attributed to processes and is left out of both.
 */
function cpuTicks() {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const machine = cpu[0] + cpu[1] + cpu[2];
  const steal = cpu[7] ?? 0; // time the hypervisor gave our virtual CPUs to someone else
  const self = readFileSync("/proc/self/stat", "utf8");
  const fields = self
    .slice(self.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number);
  // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const ours = fields[11] + fields[12] + fields[13] + fields[14];
  return { machine, ours, steal, at: Date.now() };
}

function backgroundLoad(t0, t1) {
  const ticksPerSecond = 100; // USER_HZ, for /proc/stat and /proc/PID/stat alike
  const seconds = (t1.at - t0.at) / 1000;
  const other = Math.max(0, t1.machine - t0.machine - (t1.ours - t0.ours)) / ticksPerSecond;
  const capacity = seconds * availableParallelism();
  const steal = (t1.steal - t0.steal) / ticksPerSecond;
  return { cores: availableParallelism(), otherCoreSeconds: other, share: other / capacity, stealShare: steal / capacity };
}

// --- main ---------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run bench\` (or \`node scripts/build.mjs\`) first`);
  compileLoadgen();
  if (OPTS.profileDir) mkdirSync(OPTS.profileDir, { recursive: true });
  const load0 = loadavg();
  const ticks0 = cpuTicks();
  const servers = await startServers();
  try {
    await throughput(servers);
    await handshakes(servers);
    await latency(servers);
    await idle(servers);
    await udp(servers);
    await hooks(servers);
    await capture(servers);
    await tui(servers);
    await tls();
    await chain(servers);
  } finally {
    await stopAll();
  }
  const load1 = loadavg();
  const background = backgroundLoad(ticks0, cpuTicks());
  const seconds = (Date.now() - t0) / 1000;

  console.log();
  console.log(`socksmith benchmark${OPTS.quick ? " (--quick: smoke numbers only)" : ""} — node ${process.version}, ${process.platform}, loopback 127.0.0.1`);
  console.log(
    `${background.cores} cores; during the run other processes used ${(background.share * 100).toFixed(0)}% of them (${background.otherCoreSeconds.toFixed(1)} core-seconds), ` +
      `hypervisor steal ${(background.stealShare * 100).toFixed(0)}%; ` +
      `load average ${load0.map((x) => x.toFixed(2)).join(" ")} at start, ${load1.map((x) => x.toFixed(2)).join(" ")} at end`,
  );
  console.log("absolute figures are noisy; the ratios between subjects, measured back to back in interleaved rounds, are what we report");
  if (background.share + background.stealShare > 0.1)
    console.log("WARNING: the machine was busy with other work during this run: expect wide per-round spreads; re-run when it is quiet");
  console.log();
  printTable();
  if (hookLines.length > 0) {
    console.log();
    console.log("addon cost (ratios to socksmith without addons, paired rounds):");
    for (const l of hookLines) console.log(`  ${l}`);
  }
  if (captureLines.length > 0) {
    console.log();
    console.log("capture and TUI cost (full capture vs --no-capture; TUI open vs headless; paired rounds):");
    for (const l of captureLines) console.log(`  ${l}`);
    for (const l of captureRounds) console.log(`    per round, ${l}`);
  }
  if (tlsLines.length > 0) {
    console.log();
    console.log("TLS interception (run --tls; paired rounds; see bench/tls.mjs):");
    for (const l of tlsLines) console.log(`  ${l}`);
  }
  if (chainLines.length > 0) {
    console.log();
    console.log("upstream chain (run --upstream: front + back socksmith vs one process; paired rounds; see bench/chain.mjs):");
    for (const l of chainLines) console.log(`  ${l}`);
  }
  console.log();
  for (const d of details) console.log(`  ${d}`);
  if (profiles.length > 0) {
    console.log();
    console.log("CPU profiles (summarise with `node bench/cpuprofile-top.mjs FILE`):");
    for (const p of profiles) console.log(`  ${p}`);
  }
  console.log();
  if (problems.length === 0) console.log("problems: none seen (no proxy errors, crashes, failed cells, handshake errors or stalls)");
  else {
    console.log("problems:");
    for (const p of problems) console.log(`  - ${p}`);
  }
  console.log(`total ${seconds.toFixed(1)} s`);
  return problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err) => {
    console.error(`bench: ${err.stack ?? err.message}`);
    await stopAll();
    process.exitCode = 1;
  },
);
