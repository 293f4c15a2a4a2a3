/**
 * The benchmark's chain section (`node bench/run.mjs --only chain`, and part of `npm run bench`):
 * what a one-hop chain of two socksmith processes costs against one process (issue 14).
 *
 *   subjects     direct (no proxy); one socksmith; a chain: a front socksmith run with
 *                `--upstream socks5h://127.0.0.1:BACK` and a back socksmith, both --no-capture
 *   cells        bulk upload and download, 1 stream, and download with 8 streams (MiB/s);
 *                handshakes/s with 32 closed-loop workers (run.mjs's load generator: connect,
 *                SOCKS5 greeting, CONNECT, 1-byte echo, close; through the chain the front opens a
 *                second SOCKS5 connection to the back for each)
 *   ratio        chain ÷ one process, the median of the per-round ratios
 *   hop cost     the second hop against the first, from the time one unit takes (1 / rate):
 *                first = one − direct, second = chain − one; `second ÷ first` per round, median.
 *                When every process is busy on shared cores a unit's time is roughly the CPU it
 *                takes everywhere divided by the cores, so the costs add up; a pipeline that is
 *                not CPU-bound (one bulk stream) breaks that model, hence the CPU figure below.
 *                Rounds where the first hop cost nothing measurable (one ≥ direct) give no ratio.
 *   CPU          the same question without the load model, and the one with a target: each proxy
 *                process's CPU time (user + system, all threads, from /proc) during a cell, per
 *                unit (handshake or MiB), counting the warm-up's units at the measured rate.
 *                Second hop = front + back − one process, against one process. Target (issue
 *                14): the second hop costs no more than the first (≤ 1.00×). The front does more
 *                than one process does (it is a SOCKS client of the back as well as a server),
 *                the back what one process does, so this asks that being a client of an upstream
 *                costs no more than the whole of serving a client.
 *
 * About 50 s on 2 cores.
 */
import { readFileSync } from "node:fs";

/** CPU seconds a process has used (all its threads), from /proc (Linux only; undefined elsewhere). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
  } catch {
    return undefined;
  }
}

/** Awaits a proxy's start and adds it to `list` (what the section stops at the end). */
async function started(list, promise) {
  const proxy = await promise;
  list.push(proxy);
  return proxy;
}

/**
 * Runs the section with run.mjs's helpers `h` and its target `servers`; returns the lines to print.
 * Per-round figures go to `h.details`, failures to `h.problems`.
 */
export async function chainSection(h, servers) {
  const { CFG, startSocksmith, stopProxy, interleaved, bulkRun, handshakeRun, median, fmt, fmtRatio, details } = h;
  const lines = [];
  const proxies = [];
  try {
    const one = await started(proxies, startSocksmith([], "one process"));
    const back = await started(proxies, startSocksmith([], "chain back"));
    const front = await started(proxies, startSocksmith(["--upstream", `socks5h://127.0.0.1:${back.port}`], "chain"));
    const subjects = [{ name: "direct", port: 0 }, one, front];

    const bulk = (dir, streams) => (subject) => bulkRun(servers, subject, dir, streams);
    const handshakes = (subject) => handshakeRun(servers, subject);
    const cells = [
      ["upload, 1 stream", "MiB/s", bulk("up", 1), (r) => r.mibps],
      ["download, 1 stream", "MiB/s", bulk("down", 1), (r) => r.mibps],
      ["download, 8 streams", "MiB/s", bulk("down", 8), (r) => r.mibps],
      ["handshakes, 32 workers", "/s", handshakes, (r) => r.rate],
    ];
    const seconds = (unit) => (unit === "/s" ? CFG.hsSeconds : CFG.cellSeconds) + CFG.warmup;
    for (const [label, unit, run, value] of cells) {
      // CPU µs per unit of each process, one entry per run (CPU time hardly depends on background
      // load, so these are taken unpaired: the median of each process's runs).
      const cpu = { "one process": [], front: [], back: [] };
      const processes = (subject) =>
        subject === one
          ? [["one process", one]]
          : subject === front
            ? [
                ["front", front],
                ["back", back],
              ]
            : [];
      const measured = async (subject) => {
        const before = processes(subject).map(([, p]) => cpuSeconds(p.child.pid));
        const result = await run(subject);
        const units = value(result) * seconds(unit);
        processes(subject).forEach(([name, p], i) => {
          const after = cpuSeconds(p.child.pid);
          cpu[name].push(after === undefined || before[i] === undefined || units <= 0 ? undefined : ((after - before[i]) * 1e6) / units);
        });
        return result;
      };
      const results = await interleaved(`chain ${label}`, subjects, CFG.rounds, measured);
      const rates = Object.fromEntries(subjects.map((s) => [s.name, results[s.name].map((r) => (r === undefined ? undefined : value(r)))]));
      const perRound = (fn) => rates.direct.map((_, i) => fn(rates.direct[i], rates["one process"][i], rates.chain[i]));
      const ratio = median(perRound((_d, o, c) => (o && c ? c / o : undefined)));
      const hopCost = median(
        perRound((d, o, c) => {
          if (!(d && o && c)) return undefined;
          const first = 1 / o - 1 / d;
          return first > 0 ? (1 / c - 1 / o) / first : undefined;
        }),
      );
      const figure = (name) => fmt(median(rates[name].filter((x) => x !== undefined)));
      lines.push(
        `${label} (${unit}): direct ${figure("direct")}, one process ${figure("one process")}, chain ${figure("chain")} = ${fmtRatio(ratio)} of one process; ` +
          `from the rates, second hop ÷ first ${fmtRatio(hopCost)}`,
      );
      const cpuOf = (name) => median(cpu[name]);
      const [cpuOne, cpuFront, cpuBack] = [cpuOf("one process"), cpuOf("front"), cpuOf("back")];
      if (cpuOne !== undefined && cpuFront !== undefined && cpuBack !== undefined) {
        const per = unit === "/s" ? "handshake" : "MiB";
        const second = cpuFront + cpuBack - cpuOne;
        lines.push(
          `  CPU per ${per}: one process ${fmt(cpuOne)} µs; chain front ${fmt(cpuFront)} + back ${fmt(cpuBack)} = ${fmt(cpuFront + cpuBack)} µs; ` +
            `second hop ${fmt(second)} µs = ${fmtRatio(second / cpuOne)} the first (target ≤ 1.00×: ${second <= cpuOne ? "PASS" : "MISS"})`,
        );
      }
      for (const s of subjects) {
        details.push(`chain ${label} ${s.name}: ${unit} per round ${rates[s.name].map((x) => (x === undefined ? "failed" : fmt(x))).join(" / ")}`);
      }
      if (unit === "/s") {
        for (const s of subjects) {
          const ok = results[s.name].filter(Boolean);
          const errors = ok.reduce((n, r) => n + r.errors + r.stalls, 0);
          if (errors > 0) h.problems.push(`chain handshakes / ${s.name}: ${errors} errors and stalls`);
        }
      }
    }
  } finally {
    for (const proxy of proxies) await stopProxy(proxy, "chain");
  }
  return lines;
}
