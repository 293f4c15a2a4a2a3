/**
 * Drives one hook answer through a running proxy and checks it against the oracle (answers.ts):
 * a real SOCKS client on loopback does what the hook is about (connect, authenticate, request,
 * relay a chunk, send a datagram), the addon `torture/addons/fuzzed-answers.ts` answers the
 * armed value at that hook, and the outcome on the wire is compared with what the contract
 * says should happen. Two proxies can be driven:
 * - in process (`inProcessProxy`): the loader, the Dispatcher, the engine and a capture
 *   Recorder, as `socksmith run` wires them; answers can be any value, sync or async;
 * - the real CLI (`cliProxy`): answers are JSON, read by the addon from a file.
 */
import type { ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { connect, isIP, type Socket } from "node:net";
import { join } from "node:path";
import { SocksEngine, combineObservers } from "../../src/engine/index.js";
import { Dispatcher, type HookFailure } from "../../src/hooks/dispatcher.js";
import { addonLocation, loadAddon } from "../../src/hooks/loader.js";
import { Recorder } from "../../src/store/recorder.js";
import { classify, confine, realize, show, type AnswerHook, type Decision } from "./answers.js";
import { sleep, startCli, type ProxyProcess } from "./proxy-process.js";
import { echoServer, udpEcho, type Closable } from "./servers.js";

export const FUZZED_ADDON = join(import.meta.dirname, "../addons/fuzzed-answers.ts");

/** The line each hook of the fuzzed addon is defined on (what a report must name). */
export const HOOK_LINES: Readonly<Record<string, number>> = Object.fromEntries(
  readFileSync(FUZZED_ADDON, "utf8")
    .split("\n")
    .map((line, i) => [/^\s+(on\w+): /.exec(line)?.[1], i + 1] as const)
    .filter(([hook]) => hook !== undefined),
);

/** A hook failure as both proxies report it. */
export interface Failure {
  readonly hook: string;
  readonly kind: string;
  readonly location?: string;
  readonly message: string;
}

export interface HookProxy {
  readonly port: number;
  /** Arms `answer` for the first call of `hook` from now on (`async`: answered through a promise). */
  arm(hook: AnswerHook, answer: unknown, async: boolean): void;
  /** Resolves once the armed answer was given (false: not within `ms`). */
  given(ms: number): Promise<boolean>;
  /** Hook failures reported since the last arm. */
  failures(): Failure[];
  /** Waits until no session is open (false: still some after `ms`); the CLI cannot tell: true. */
  idle(ms: number): Promise<boolean>;
  alive(): boolean;
  /** Capture errors so far (the in-process recorder's `failed`). */
  captureErrors(): string[];
  close(): Promise<void>;
}

interface Channel {
  take(hook: string): { readonly answer: unknown } | undefined;
}

/** The loader + Dispatcher + engine + Recorder in this process, on 127.0.0.1:0. */
export async function inProcessProxy(dir: string): Promise<HookProxy> {
  const loaded = await loadAddon(FUZZED_ADDON);
  let failures: Failure[] = [];
  const captureErrors: string[] = [];
  const dispatcher = new Dispatcher([loaded], {
    hookTimeoutMs: 2000,
    locate: addonLocation,
    events: {
      hookFailed: (f: HookFailure) =>
        failures.push({ hook: f.hook, kind: f.kind, message: f.message, ...(f.location === undefined ? {} : { location: f.location }) }),
      tagged: () => {},
      logged: () => {},
    },
  });
  await dispatcher.start();
  const recorder = new Recorder(join(dir, "capture.db"), { listen: [], version: "torture", failed: (e) => captureErrors.push(e.message) });
  const engine = new SocksEngine({
    listen: [{ host: "127.0.0.1", port: 0 }],
    hooks: dispatcher,
    observer: combineObservers([recorder, dispatcher.observer]),
    connectTimeoutMs: 3000,
    handshakeTimeoutMs: 5000,
  });
  const [bound] = await engine.start();
  let armed: { hook: string; answer: unknown; async: boolean } | undefined;
  let given: (() => void) | undefined;
  let givenPromise = Promise.resolve();
  const channel: Channel = {
    take(hook) {
      if (armed === undefined || armed.hook !== hook) return undefined;
      const { answer, async } = armed;
      armed = undefined;
      given?.();
      return { answer: async ? Promise.resolve().then(() => answer) : answer };
    },
  };
  (globalThis as { __socksmithTorture?: Channel }).__socksmithTorture = channel;
  return {
    port: bound!.port,
    arm(hook, answer, async) {
      failures = [];
      armed = { hook, answer, async };
      givenPromise = new Promise((resolve) => (given = resolve));
    },
    given: (ms) => Promise.race([givenPromise.then(() => true), sleep(ms).then(() => false)]),
    failures: () => failures,
    async idle(ms) {
      const deadline = Date.now() + ms;
      while (engine.sessionCount > 0 && Date.now() < deadline) await sleep(5);
      return engine.sessionCount === 0;
    },
    alive: () => true,
    captureErrors: () => captureErrors,
    async close() {
      delete (globalThis as { __socksmithTorture?: Channel }).__socksmithTorture;
      await engine.stop(200);
      await dispatcher.stop();
      await recorder.close();
    },
  };
}

/** `socksmith run -s fuzzed-answers.ts` with capture on; answers go through a JSON file in `dir`. */
export async function cliProxy(dir: string, children: ChildProcess[]): Promise<HookProxy & { readonly process: ProxyProcess }> {
  const file = join(dir, "answer.json");
  writeFileSync(file, JSON.stringify({ id: 0, hook: "none", answer: null }));
  const proxy = await startCli(["-s", FUZZED_ADDON, "--set", `fuzzed.answers=${file}`, "--connect-timeout", "3s", "-q"], { cwd: dir, children });
  let id = 0;
  let from = 0;
  const failures = (): Failure[] =>
    proxy.stderr.slice(from).flatMap((line) => {
      // `error: addon fuzzed: onRequest gave an invalid answer at FILE:L:C: message (session #N)`
      const m = /addon fuzzed: (on\w+) (threw|rejected|gave an invalid answer|timed out after \d+ ms)(?: at (\S+?:\d+:\d+))?: (.*)$/.exec(line);
      if (m === null) return [];
      const said = m[2]!;
      const kind = said.startsWith("timed out") ? "timed-out" : said === "gave an invalid answer" ? "invalid" : said;
      return [{ hook: m[1]!, kind, message: m[4]!, ...(m[3] === undefined ? {} : { location: m[3] }) }];
    });
  return {
    process: proxy,
    port: proxy.port,
    arm(hook, answer) {
      from = proxy.stderr.length;
      writeFileSync(file, JSON.stringify({ id: ++id, hook, answer }));
    },
    async given(ms) {
      const deadline = Date.now() + ms;
      const mark = `answered ${id}`;
      while (Date.now() < deadline) {
        if (proxy.stderr.slice(from).some((l) => l.endsWith(mark))) return true;
        await sleep(5);
      }
      return false;
    },
    failures,
    idle: async () => true,
    alive: () => proxy.alive(),
    captureErrors: () => proxy.stderr.filter((l) => /capture stopped/.test(l)),
    close: async () => {
      await proxy.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios and outcomes
// ---------------------------------------------------------------------------------------------

/** The targets the scenarios reach: an echo, a prefixed echo (redirects land there), UDP ones. */
export interface Targets {
  readonly echo: Closable;
  /** Echo that writes "R:" first: where a redirect is confined to. */
  readonly redirected: Closable;
  readonly udp: Closable;
  /** UDP echo answering "R:" + datagram. */
  readonly udpRedirected: Closable;
  /** A loopback port nothing listens on (connects are refused). */
  readonly closedPort: number;
  /** The bound address of a refused CONNECT's reply as the proxy sends it (learnt by `learn`). */
  failedBound: string;
  close(): Promise<void>;
}

export async function startTargets(): Promise<Targets> {
  const echo = await echoServer();
  const redirected = await echoServer("R:");
  const udp = await udpEcho();
  const udpRedirected = await udpEcho("R:");
  const spare = await echoServer();
  const closedPort = spare.port;
  await spare.close();
  return {
    echo,
    redirected,
    udp,
    udpRedirected,
    closedPort,
    failedBound: "0.0.0.0:0",
    close: async () => {
      await Promise.all([echo.close(), redirected.close(), udp.close(), udpRedirected.close()]);
    },
  };
}

/** Learns what the proxy puts in a refused CONNECT's reply when no hook changes it. */
export async function learn(proxy: HookProxy, targets: Targets): Promise<void> {
  const outcome = await driveRequest(proxy.port, targets.closedPort);
  const m = /^rep \d+ bound (\S+), closed$/.exec(outcome);
  if (!m) throw new Error(`a refused CONNECT: ${outcome}`);
  targets.failedBound = m[1]!;
  await proxy.idle(3000);
}

/** One property case: a hook, an answer, and for onReply whether the request fails. */
export interface Case {
  readonly hook: AnswerHook;
  readonly answer: unknown;
  /** Answer through a promise (in process only). */
  readonly async: boolean;
  /** onReply: CONNECT to a refused port instead of the echo. */
  readonly failing: boolean;
}

/**
 * Runs one case and returns what is wrong with it (empty when the contract held): the outcome
 * on the wire, the hook error report, the session's end, the capture, the process.
 */
export async function checkCase(proxy: HookProxy, targets: Targets, c: Case): Promise<string[]> {
  const answer = realize(c.answer);
  const given =
    c.hook === "onRequest" || c.hook === "onDatagram" ? confine(answer, c.hook === "onRequest" ? targets.redirected.port : targets.udpRedirected.port) : answer;
  const verdict = classify(c.hook, given, { failed: c.failing, direction: "up" });
  proxy.arm(c.hook, given, c.async);
  const observed = await drive(proxy, targets, c);
  const problems: string[] = [];
  const ifNone = expected(c.hook, { kind: "none" }, targets, c);
  const ifDecided = expected(c.hook, verdict.decision, targets, c);
  const allowed = verdict.validity === "invalid" ? [ifNone] : verdict.validity === "valid" ? [ifDecided] : [ifDecided, ifNone];
  if (!allowed.includes(observed)) {
    problems.push(`outcome ${JSON.stringify(observed)}, expected ${allowed.map((a) => JSON.stringify(a)).join(" or ")} (${verdict.validity}: ${verdict.why})`);
  }
  const failures = proxy.failures();
  const own = failures.filter((f) => f.hook === c.hook);
  const others = failures.filter((f) => f.hook !== c.hook);
  if (others.length > 0) problems.push(`hooks that answered undefined were reported: ${others.map((f) => `${f.hook} ${f.kind}: ${f.message}`).join("; ")}`);
  if (verdict.validity === "invalid") {
    const line = HOOK_LINES[c.hook];
    // Through a promise, a value whose `then` throws rejects the promise itself (JavaScript's
    // resolution reads `then`): then "rejected" is the right report.
    const kinds = c.async ? ["invalid", "rejected"] : ["invalid"];
    const named = own.find((f) => kinds.includes(f.kind) && f.location !== undefined && new RegExp(`fuzzed-answers\\.ts:${line}:\\d+$`).test(f.location));
    if (named === undefined)
      problems.push(
        `no "invalid" hook error at fuzzed-answers.ts:${line} (got ${own.length === 0 ? "none" : own.map((f) => `${f.kind} at ${f.location}: ${f.message}`).join("; ")})`,
      );
  } else if (verdict.validity === "valid" && own.length > 0) {
    problems.push(`a valid answer was reported: ${own.map((f) => `${f.kind}: ${f.message}`).join("; ")}`);
  }
  if (!(await proxy.idle(3000))) problems.push("the session did not end after the client left");
  if (!proxy.alive()) problems.push("the proxy process died");
  if (proxy.captureErrors().length > 0) problems.push(`capture failed: ${proxy.captureErrors().join("; ")}`);
  return problems.map((p) => `${c.hook}${c.async ? " (async)" : ""}${c.failing ? " (failing request)" : ""} answered ${show(given)}: ${p}`);
}

/** What the client sees when the hook decides `decision` (an outcome string; equal = same). */
export function expected(hook: AnswerHook, decision: Decision, targets: Targets, c: Case): string {
  const ok = "rep 0 bound 127.0.0.1 echo ping";
  switch (hook) {
    case "onOpen":
      return decision.kind === "reject" ? "closed" : ok;
    case "onAuth":
      return decision.kind === "reject" ? "method ff, closed" : ok;
    case "onRequest":
      switch (decision.kind) {
        case "deny":
          return `rep ${decision.rep} bound 0.0.0.0:0, closed`;
        case "redirect":
          return decision.to.port === targets.redirected.port ? "rep 0 bound 127.0.0.1 echo R:ping" : ok;
        case "serve":
          // Nothing was dialled: the reply carries no address of an upstream, and nothing echoes.
          return "rep 0 bound 0.0.0.0:0 echo ";
        default:
          return ok;
      }
    case "onReply": {
      const change: { rep?: number; bound?: { host: string; port: number } } = decision.kind === "reply" ? decision : {};
      const rep = change.rep ?? (c.failing ? 5 : 0);
      const bound =
        change.bound === undefined ? (c.failing ? targets.failedBound : "127.0.0.1") : ownBound(`${normalHost(change.bound.host)}:${change.bound.port}`);
      return rep === 0 ? `rep 0 bound ${bound} echo ping` : `rep ${rep} bound ${bound}, closed`;
    }
    case "onData":
      switch (decision.kind) {
        case "replace":
          return `data ${Buffer.concat([decision.data, Buffer.from("pong")]).toString("hex")} open`;
        case "drop":
          return `data ${Buffer.from("pong").toString("hex")} open`;
        case "close":
          return "data  fin";
        case "reset":
          return "data  reset";
        default:
          return `data ${Buffer.from("pingpong").toString("hex")} open`;
      }
    case "onDatagram": {
      const pong = `E:${Buffer.from("pong").toString("hex")}`;
      switch (decision.kind) {
        case "replace":
          // An empty datagram may be sent or left out.
          return decision.data.length === 0 ? `datagrams ${pong}` : `datagrams E:${decision.data.toString("hex")} ${pong}`;
        case "drop":
          return `datagrams ${pong}`;
        case "redirect":
          return decision.to.port === targets.udpRedirected.port
            ? `datagrams R:${Buffer.from("R:ping").toString("hex")} ${pong}`
            : `datagrams E:${Buffer.from("ping").toString("hex")} ${pong}`;
        default:
          return `datagrams E:${Buffer.from("ping").toString("hex")} ${pong}`;
      }
    }
    default: {
      const unreachable: never = hook;
      throw new Error(`no hook ${String(unreachable)}`);
    }
  }
}

/**
 * A bound address as outcomes show it: 127.0.0.1 with a non-zero port is shown without the
 * port, because the proxy's own upstream address (what an unchanged CONNECT reply carries)
 * has a different port each time.
 */
function ownBound(hostPort: string): string {
  return /^127\.0\.0\.1:[1-9]\d*$/.test(hostPort) ? "127.0.0.1" : hostPort;
}

function normalHost(host: string): string {
  return isIP(host) === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
}

async function drive(proxy: HookProxy, targets: Targets, c: Case): Promise<string> {
  switch (c.hook) {
    case "onOpen":
    case "onAuth":
    case "onRequest":
    case "onReply":
      return driveRequest(proxy.port, c.failing ? targets.closedPort : targets.echo.port);
    case "onData":
      return driveData(proxy, targets);
    case "onDatagram":
      return driveDatagram(proxy, targets);
    default: {
      const unreachable: never = c.hook;
      throw new Error(`no hook ${String(unreachable)}`);
    }
  }
}

/** A raw client: everything received, and how the connection ended. */
class Client {
  received = Buffer.alloc(0);
  ended = false;
  reset = false;
  closed = false;
  private waiters: Array<() => void> = [];
  constructor(readonly socket: Socket) {
    socket.on("data", (d: Buffer) => this.wake((this.received = Buffer.concat([this.received, d]))));
    socket.on("end", () => this.wake((this.ended = true)));
    socket.on("error", (e: NodeJS.ErrnoException) => this.wake((this.reset = this.reset || e.code === "ECONNRESET")));
    socket.on("close", () => this.wake((this.closed = true)));
  }
  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1", noDelay: true, allowHalfOpen: false });
      socket.once("connect", () => resolve(new Client(socket)));
      socket.once("error", reject);
    });
  }
  private wake(_: unknown): void {
    for (const w of this.waiters.splice(0)) w();
  }
  /** Waits until `ready()` or the connection closed, at most `ms`. */
  async until(ready: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready() && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now())));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  take(n: number): Buffer {
    const out = this.received.subarray(0, n);
    this.received = this.received.subarray(n);
    return out;
  }
}

/** The length of a SOCKS5 reply whose first bytes are `head`, or undefined when it cannot tell yet. */
function replyLength(head: Buffer): number | undefined {
  if (head.length < 5) return undefined;
  switch (head[3]) {
    case 1:
      return 10;
    case 4:
      return 22;
    case 3:
      return 7 + head[4]!;
    default:
      return 4;
  }
}

function decodeBound(reply: Buffer): string {
  const port = (a: number) => reply.readUInt16BE(a);
  switch (reply[3]) {
    case 1:
      return `${[...reply.subarray(4, 8)].join(".")}:${port(8)}`;
    case 4: {
      const parts: string[] = [];
      for (let i = 0; i < 8; i++) parts.push(reply.readUInt16BE(4 + i * 2).toString(16));
      return `${normalHost(parts.join(":"))}:${port(20)}`;
    }
    case 3:
      return `${reply.subarray(5, 5 + reply[4]!).toString("latin1")}:${port(5 + reply[4]!)}`;
    default:
      return `atyp ${reply[3]}`;
  }
}

/**
 * Greeting (no auth), CONNECT 127.0.0.1:port, then "ping" through the tunnel. The outcome names
 * how far it got: `closed`, `method ff, closed`, `rep N bound H[:P], closed` or
 * `rep 0 bound H[:P] echo BYTES` (see ownBound).
 */
async function driveRequest(proxyPort: number, port: number): Promise<string> {
  const client = await Client.open(proxyPort);
  try {
    client.socket.write(Buffer.from([5, 1, 0]));
    await client.until(() => client.received.length >= 2, 3000);
    if (client.received.length < 2) return client.closed ? "closed" : "no method selection";
    const method = client.take(2);
    if (method[1] !== 0) {
      await client.until(() => false, 3000);
      return `method ${method.toString("hex").slice(2)}, ${client.closed ? "closed" : "open"}`;
    }
    client.socket.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
    await client.until(() => {
      const n = replyLength(client.received);
      return n !== undefined && client.received.length >= n;
    }, 5000);
    const n = replyLength(client.received);
    if (n === undefined || client.received.length < n) return `no reply (${client.received.toString("hex")}), ${client.closed ? "closed" : "open"}`;
    const reply = client.take(n);
    const maybeOwn = ownBound(decodeBound(reply));
    if (reply[1] !== 0) {
      await client.until(() => false, 3000);
      return `rep ${reply[1]} bound ${maybeOwn}, ${client.closed ? "closed" : "open"}`;
    }
    client.socket.write("ping");
    // A served session answers nothing: give it half a second.
    await client.until(() => client.received.toString().endsWith("ping"), 500);
    return `rep 0 bound ${maybeOwn} echo ${client.received.toString()}`;
  } finally {
    client.socket.destroy();
  }
}

/** A tunnel to the echo; "ping", then (after the hook answered) "pong"; what comes back and how it ends. */
async function driveData(proxy: HookProxy, targets: Targets): Promise<string> {
  const client = await Client.open(proxy.port);
  try {
    const port = targets.echo.port;
    client.socket.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
    await client.until(() => client.received.length >= 12, 5000);
    if (client.received.length < 12 || client.received[3] !== 0) return `no tunnel: ${client.received.toString("hex")}`;
    client.take(12);
    client.socket.write("ping");
    if (!(await proxy.given(3000))) return "onData was not called";
    // Pacing, not a measurement: "pong" must be a read of its own, after the answer took effect.
    await sleep(30);
    if (!client.closed && !client.ended) client.socket.write("pong");
    await client.until(() => client.received.toString("latin1").endsWith("pong") || client.ended || client.reset, 3000);
    const ending = client.ended ? "fin" : client.reset ? "reset" : client.closed ? "closed" : "open";
    return `data ${client.received.toString("hex")} ${ending}`;
  } finally {
    client.socket.destroy();
  }
}

/** A UDP association; "ping" to the UDP echo, then "pong"; the datagrams that come back. */
async function driveDatagram(proxy: HookProxy, targets: Targets): Promise<string> {
  const control = await Client.open(proxy.port);
  const udp = createSocket("udp4");
  try {
    control.socket.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    await control.until(() => control.received.length >= 12, 5000);
    if (control.received.length < 12 || control.received[3] !== 0) return `no association: ${control.received.toString("hex")}`;
    const reply = control.take(12).subarray(2);
    const relayPort = reply.readUInt16BE(8);
    const relayHost = [...reply.subarray(4, 8)].join(".");
    udp.bind(0, "127.0.0.1");
    await new Promise((resolve) => udp.once("listening", resolve));
    const got: string[] = [];
    let sawPong = false;
    udp.on("message", (msg) => {
      // RSV RSV FRAG ATYP=1 ADDR(4) PORT(2) DATA
      if (msg.length < 10 || msg[3] !== 1) return void got.push(`? ${msg.toString("hex")}`);
      const from = msg.readUInt16BE(8);
      const data = msg.subarray(10);
      const who = from === targets.udp.port ? "E" : from === targets.udpRedirected.port ? "R" : String(from);
      got.push(`${who}:${data.toString("hex")}`);
      if (who === "E" && data.toString() === "pong") sawPong = true;
    });
    const frame = (data: string) => {
      const p = targets.udp.port;
      return Buffer.concat([Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, p >> 8, p & 0xff]), Buffer.from(data)]);
    };
    udp.send(frame("ping"), relayPort, relayHost);
    if (!(await proxy.given(3000))) return "onDatagram was not called";
    await sleep(30);
    udp.send(frame("pong"), relayPort, relayHost);
    const deadline = Date.now() + 3000;
    while (!sawPong && Date.now() < deadline) await sleep(5);
    // An empty datagram answered by the echo is allowed to appear or not (see expected()).
    return `datagrams ${got.filter((g) => g !== "E:").join(" ")}`;
  } finally {
    udp.close();
    control.socket.destroy();
  }
}
