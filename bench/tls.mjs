/**
 * The benchmark's TLS section (`node bench/run.mjs --only tls`, and part of `npm run bench`): what
 * `run --tls` costs, on loopback, as ratios measured in one run (issue 13's targets).
 *
 *   leaves       LeafCertificates signing a leaf for a name: the first of the process (module
 *                warm-up and the leaf key included), the first of a fresh instance (leaf key
 *                included), a new name once the key exists, and a cached name; every request
 *                carries the upstream certificate, as the interceptor's do
 *   download     one TLS 1.3 download (the server writes without end), MiB/s: straight from client
 *                to server, and through socksmith --tls with --no-capture and with full capture.
 *                Target: intercepted ≥ 0.5× direct
 *   handshakes   per second, 32 closed-loop workers: connect, (SOCKS5 greeting + CONNECT,) a full
 *                TLS handshake (no resumption; the proxy's leaf is cached), 1-byte echo, close.
 *                Target: intercepted ≥ 0.3× direct
 *   passthrough  socksmith --tls with a --tls-passthrough filter matching the tunnels, against
 *                socksmith without --tls (plain CONNECT): handshakes/s and the download.
 *                Target: ≥ 0.95× for both
 *
 * The C load generator speaks no TLS, so both ends are Node (bench/tls-peer.mjs), a process per
 * client and one for the servers, the same for every subject: the ratios compare what is in
 * between. The target's certificate comes from a CA of its own, which socksmith trusts through
 * --upstream-ca; the client trusts the socksmith CA (or the target's CA, straight or passed
 * through). Both CAs live in a temporary directory, removed at the end. The CA and leaf code is
 * src/tls itself, bundled by esbuild into bench/build/tls-lib.mjs for this run.
 *
 * Subjects are measured in interleaved rounds like the rest of the benchmark (run.mjs's
 * `interleaved`); a ratio is the median of the per-round ratios. About 80 s on 2 cores.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const HOST = "127.0.0.1";
/** The name the clients ask for (SNI) and the target's certificate carries. */
const NAME = "bench.test";

const TARGETS = { download: 0.5, handshakes: 0.3, passthrough: 0.95 };

/**
 * Runs the section with run.mjs's helpers `h`; returns the lines to print. Per-round figures go to
 * `h.details`, failures to `h.problems`.
 */
export async function tlsSection(h) {
  const { ROOT, CFG, OPTS, Child, LOADGEN, CHILD_LIFETIME_S, startSocksmith, stopProxy, interleaved, median, fmt, fmtRatio, details } = h;
  const PEER = path.join(ROOT, "bench", "tls-peer.mjs");
  const lines = [];
  const dir = mkdtempSync(path.join(tmpdir(), "socksmith-bench-tls-"));
  const started = [];
  try {
    const lib = await bundleTlsCode(ROOT);
    const { loadOrCreateCa, LeafCertificates } = await import(pathToFileURL(lib).href);
    const proxyCaDir = path.join(dir, "proxy-ca");
    const targetCaDir = path.join(dir, "target-ca");
    const proxyCa = await loadOrCreateCa(proxyCaDir);
    const targetCa = await loadOrCreateCa(targetCaDir);

    // --- leaves ---
    const upstream = (await new LeafCertificates(targetCa).leafFor({ sni: NAME, target: HOST })).certificate;
    const request = (sni) => ({ sni, target: HOST, upstream });
    const timed = async (fn) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const firstOfProcess = await timed(() => new LeafCertificates(proxyCa).leafFor(request("first.bench.test")));
    const fresh = [];
    for (let i = 0; i < (OPTS.quick ? 3 : 7); i++) fresh.push(await timed(() => new LeafCertificates(proxyCa).leafFor(request(`fresh${i}.bench.test`))));
    const leaves = new LeafCertificates(proxyCa);
    await leaves.leafFor(request(NAME));
    const newName = [];
    for (let i = 0; i < (OPTS.quick ? 20 : 60); i++) newName.push(await timed(() => leaves.leafFor(request(`n${i}.bench.test`))));
    const cachedCalls = OPTS.quick ? 500 : 3000;
    for (let i = 0; i < 200; i++) await leaves.leafFor(request(NAME)); // warm-up
    const cachedMs =
      (await timed(async () => {
        for (let i = 0; i < cachedCalls; i++) await leaves.leafFor(request(NAME));
      })) / cachedCalls;
    const cachedNoUpstreamMs =
      (await timed(async () => {
        for (let i = 0; i < cachedCalls; i++) await leaves.leafFor({ sni: NAME, target: HOST });
      })) / cachedCalls;
    lines.push(
      `leaf generation (ms): first of the process ${fmtMs(firstOfProcess)}, first of a new instance (leaf key included) ${fmtMs(median(fresh))}, ` +
        `new name with the key made ${fmtMs(median(newName))} (p90 ${fmtMs(quantile(newName, 0.9))}), ` +
        `cached ${fmtMs(cachedMs)} (${fmtMs(cachedNoUpstreamMs)} without an upstream certificate to read); ${leaves.generated} leaves signed by the last instance`,
    );

    // --- servers and proxies ---
    const server = new Child("tls-peer serve", LOADGEN, [
      "guard",
      String(CHILD_LIFETIME_S),
      process.execPath,
      PEER,
      "serve",
      "--lib",
      lib,
      "--ca-dir",
      targetCaDir,
      "--name",
      NAME,
    ]);
    started.push({ child: server });
    const ports = await server.nextJson(10000, "listening line");
    const tlsArgs = ["--tls", "--ca-dir", proxyCaDir, "--upstream-ca", targetCa.certPath];
    const direct = { name: "direct", port: 0, ca: targetCa.certPath };
    const start = async (args, name, ca) => {
      const proxy = await startSocksmith(args, name);
      started.push({ proxy, section: `tls ${name}` });
      return { ...proxy, ca };
    };
    const intercepted = await start(tlsArgs, "intercepted", proxyCa.certPath);
    const capturing = await start([...tlsArgs, "-w", path.join(dir, "capture.db")], "intercepted+capture", proxyCa.certPath);
    const plain = await start([], "plain CONNECT", targetCa.certPath);
    const passthrough = await start([...tlsArgs, "--tls-passthrough", `sni:${NAME}`], "passthrough", targetCa.certPath);

    const peer = async (args, timeoutMs) => {
      const child = new Child(`tls-peer ${args[0]}`, process.execPath, [PEER, ...args]);
      const timer = setTimeout(() => child.stop("SIGKILL"), timeoutMs);
      const exit = await child.closed;
      clearTimeout(timer);
      const result = child.lines
        .map((l) => {
          try {
            return JSON.parse(l);
          } catch {
            return undefined;
          }
        })
        .filter(Boolean)
        .pop();
      if (exit.code !== 0 || result === undefined) throw new Error(`tls-peer ${args.join(" ")}: ${exit.signal ?? `code ${exit.code}`} ${child.stderrTail()}`);
      return result;
    };
    const common = (subject) => [...(subject.port > 0 ? ["--proxy", String(subject.port)] : []), "--ca", subject.ca, "--name", NAME];
    const download = (subject) => {
      const watch = [`server=${server.pid}`, ...(subject.child === undefined ? [] : [`proxy=${subject.child.pid}`])].join(",");
      return peer(
        ["bulk", "--port", String(ports.bulk), ...common(subject), "--seconds", String(CFG.cellSeconds), "--warmup", String(CFG.warmup), "--watch", watch],
        (CFG.cellSeconds + CFG.warmup) * 1000 + 30000,
      );
    };
    const handshakes = (subject) =>
      peer(
        ["handshakes", "--port", String(ports.echo), ...common(subject), "--workers", "32", "--seconds", String(CFG.hsSeconds), "--warmup", String(CFG.warmup)],
        (CFG.hsSeconds + CFG.warmup) * 1000 + 30000,
      );

    const ratio = (results, a, b, value) =>
      median(results[a].map((x, i) => (x !== undefined && results[b][i] !== undefined ? value(x) / value(results[b][i]) : undefined)));
    const figure = (results, name, value) => median(results[name].filter((r) => r !== undefined).map(value));
    const perRound = (results, name, value) => results[name].map((r) => (r === undefined ? "failed" : fmt(value(r)))).join(" / ");
    const verdict = (r, target) => `target ≥ ${target}×: ${r === undefined ? "n/a" : r >= target ? "PASS" : "MISS"}`;
    const noteHandshakeErrors = (label, results) => {
      for (const [name, rs] of Object.entries(results)) {
        const ok = rs.filter((r) => r !== undefined);
        const errors = ok.reduce((n, r) => n + r.errors, 0);
        const mid = ok.sort((a, b) => a.rate - b.rate)[Math.floor((ok.length - 1) / 2)];
        details.push(
          `${label} ${name}: /s per round ${perRound(results, name, (r) => r.rate)}; one session (median round) p50 ${mid?.p50_us ?? "—"} µs, p99 ${mid?.p99_us ?? "—"} µs; errors ${errors}`,
        );
        if (errors > 0)
          h.problems.push(
            `${label} / ${name}: ${errors} failed sessions (last: ${ok
              .map((r) => r.last_error)
              .filter(Boolean)
              .pop()})`,
          );
      }
    };
    const mibps = (r) => r.mibps;
    const rate = (r) => r.rate;

    // --- download ---
    console.error("bench: tls download");
    const dl = await interleaved("tls download", [direct, intercepted, capturing], CFG.rounds, download);
    for (const name of Object.keys(dl)) details.push(`tls download ${name}: MiB/s per round ${perRound(dl, name, mibps)}`);
    const dlRatio = ratio(dl, "intercepted", "direct", mibps);
    lines.push(
      `HTTPS-like download, 1 stream (MiB/s): direct ${fmt(figure(dl, "direct", mibps))}, intercepted ${fmt(figure(dl, "intercepted", mibps))} = ` +
        `${fmtRatio(dlRatio)} (${verdict(dlRatio, TARGETS.download)}); with capture ${fmt(figure(dl, "intercepted+capture", mibps))} = ` +
        `${fmtRatio(ratio(dl, "intercepted+capture", "direct", mibps))} of direct, ${fmtRatio(ratio(dl, "intercepted+capture", "intercepted", mibps))} of no capture`,
    );
    lines.push(...downloadCpuLines(dl, { median, fmt, fmtRatio, cores: availableParallelism() }));

    // --- handshakes ---
    console.error("bench: tls handshakes");
    const hs = await interleaved("tls handshakes", [direct, intercepted, capturing], CFG.rounds, handshakes);
    noteHandshakeErrors("tls handshakes", hs);
    const hsRatio = ratio(hs, "intercepted", "direct", rate);
    lines.push(
      `TLS handshakes, 32 workers (/s): direct ${fmt(figure(hs, "direct", rate))}, intercepted ${fmt(figure(hs, "intercepted", rate))} = ` +
        `${fmtRatio(hsRatio)} (${verdict(hsRatio, TARGETS.handshakes)}); with capture ${fmt(figure(hs, "intercepted+capture", rate))} = ` +
        `${fmtRatio(ratio(hs, "intercepted+capture", "direct", rate))} of direct, ${fmtRatio(ratio(hs, "intercepted+capture", "intercepted", rate))} of no capture`,
    );

    // --- passthrough ---
    console.error("bench: tls passthrough");
    const ptHs = await interleaved("tls passthrough handshakes", [plain, passthrough], CFG.rounds, handshakes);
    noteHandshakeErrors("tls passthrough handshakes", ptHs);
    const ptDl = await interleaved("tls passthrough download", [plain, passthrough], CFG.rounds, download);
    for (const name of Object.keys(ptDl)) details.push(`tls passthrough download ${name}: MiB/s per round ${perRound(ptDl, name, mibps)}`);
    const ptHsRatio = ratio(ptHs, "passthrough", "plain CONNECT", rate);
    const ptDlRatio = ratio(ptDl, "passthrough", "plain CONNECT", mibps);
    lines.push(
      `passthrough TLS sessions (--tls --tls-passthrough sni:${NAME}) vs plain CONNECT (no --tls): handshakes/s ${fmt(figure(ptHs, "plain CONNECT", rate))} → ` +
        `${fmt(figure(ptHs, "passthrough", rate))} = ${fmtRatio(ptHsRatio)} (${verdict(ptHsRatio, TARGETS.passthrough)}); download MiB/s ` +
        `${fmt(figure(ptDl, "plain CONNECT", mibps))} → ${fmt(figure(ptDl, "passthrough", mibps))} = ${fmtRatio(ptDlRatio)} (${verdict(ptDlRatio, TARGETS.passthrough)})`,
    );
  } finally {
    for (const s of started.reverse()) {
      if (s.proxy !== undefined) await stopProxy(s.proxy, s.section);
      else await s.child.stop("SIGTERM", 3000);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}

/**
 * Where the download's time goes: CPU µs per MiB of the client, the server and the proxy (user +
 * kernel, medians over rounds), and what that allows. The proxy decrypts and re-encrypts every
 * byte, the work the client and the server do between them, so even on a core of its own it
 * reaches at most 1 ÷ (its µs per MiB) while the direct transfer runs at the pace of the busier
 * end; with every process busy on `cores` cores the download cannot pass cores ÷ (client + server
 * + proxy µs per MiB). Both bounds are printed as ratios to the measured direct rate. The ends'
 * cost per MiB is not fixed (a sender whose reader lags pays more per byte), so the proxy is
 * compared with the ends of the same transfer as well as with the direct one.
 */
function downloadCpuLines(dl, { median, fmt, fmtRatio, cores }) {
  const perMiB = (name, who) => median(dl[name].filter((r) => r?.cpu?.[who] !== undefined).map((r) => r.cpu[who] / (r.bytes / 2 ** 20)));
  const direct = { client: perMiB("direct", "client"), server: perMiB("direct", "server") };
  const proxied = { client: perMiB("intercepted", "client"), server: perMiB("intercepted", "server"), proxy: perMiB("intercepted", "proxy") };
  if ([direct.client, direct.server, proxied.client, proxied.server, proxied.proxy].some((x) => x === undefined)) return [];
  const directRate = median(dl.direct.filter(Boolean).map((r) => r.mibps));
  const ownCore = 1e6 / proxied.proxy / directRate;
  const shared = (cores * 1e6) / (proxied.client + proxied.server + proxied.proxy) / directRate;
  return [
    `  CPU per MiB (µs, user + kernel): direct client ${fmt(direct.client)} + server ${fmt(direct.server)} = ${fmt(direct.client + direct.server)}; ` +
      `intercepted client ${fmt(proxied.client)} + server ${fmt(proxied.server)} + proxy ${fmt(proxied.proxy)}; ` +
      `proxy = ${fmtRatio(proxied.proxy / (direct.client + direct.server))} of client + server direct, ` +
      `${fmtRatio(proxied.proxy / (proxied.client + proxied.server))} of client + server in the same transfer`,
    `  what the CPU allows, as ratios to direct: the proxy on a core of its own ${fmtRatio(ownCore)}; all three sharing ${cores} cores ${fmtRatio(shared)}`,
  ];
}

/** src/tls's CA and leaf code as one ES module (packages left external), for this process and the TLS server. */
async function bundleTlsCode(root) {
  const { build } = await import("esbuild");
  const outfile = path.join(root, "bench", "build", "tls-lib.mjs");
  await build({
    stdin: {
      contents: 'export { loadOrCreateCa } from "./src/tls/ca.ts";\nexport { LeafCertificates } from "./src/tls/certificates.ts";\n',
      resolveDir: root,
      sourcefile: "tls-lib.ts",
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  return outfile;
}

function quantile(values, q) {
  const xs = [...values].sort((a, b) => a - b);
  return xs.length === 0 ? undefined : xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
}

function fmtMs(ms) {
  if (ms === undefined) return "—";
  return ms >= 10 ? ms.toFixed(0) : ms >= 0.1 ? ms.toFixed(2) : ms.toFixed(4);
}
