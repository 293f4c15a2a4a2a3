/**
 * Socket plumbing shared by the integration tests: an in-process engine on port 0, target
 * servers, and a raw client that reads exact byte counts with deadlines. Loopback only.
 */
import { createServer, connect, isIP, type Server, type Socket, type AddressInfo } from "node:net";
import { once } from "node:events";
import { afterEach, expect } from "vitest";
import { SocksEngine, type EngineObserver, type EngineOptions, type Lookup } from "../../src/engine/index.js";
import type { AnomalyFact, AuthFact, ChunkFact, DatagramFact, ReplyFact, RequestFact, SessionClosedFact, SessionOpenedFact } from "../../src/engine/ports.js";

export const HOST = "127.0.0.1";

/**
 * `list[index]` (negative counts from the end), or a thrown error naming `what` when there is no
 * such element: an assertion on a missing fact fails loudly instead of reading `undefined`.
 */
export function nth<T>(list: readonly T[], index: number, what: string): T {
  const at = index < 0 ? list.length + index : index;
  if (at < 0 || at >= list.length) throw new Error(`no ${what} at index ${index} (${list.length} recorded)`);
  return list[at] as T;
}

/** The first element of `list`; throws naming `what` when it is empty. */
export function first<T>(list: readonly T[], what: string): T {
  return nth(list, 0, what);
}

/** `value` (typically a `.find` result); throws naming `what` when it is undefined. */
export function found<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`no ${what} found`);
  return value;
}

/** The facts a RecordingObserver keeps, by kind (typed: a misspelt field is a compile error). */
export interface RecordedFacts {
  opened: SessionOpenedFact;
  auth: AuthFact;
  request: RequestFact;
  reply: ReplyFact;
  anomaly: AnomalyFact;
  closed: SessionClosedFact;
  chunk: ChunkFact;
  datagram: DatagramFact;
}
type RecordedKind = keyof RecordedFacts;
type Recorded = { [K in RecordedKind]: { kind: K; fact: RecordedFacts[K] } }[RecordedKind];

/** Every fact the engine reported, in order, for assertions. */
export class RecordingObserver implements EngineObserver {
  readonly facts: Recorded[] = [];
  /** Set by a test to observe chunks (the engine then reports every chunk). */
  chunk?: (fact: ChunkFact) => void | PromiseLike<void>;
  /** Set by a test to observe datagrams. */
  datagram?: (fact: DatagramFact) => void;
  private closeWaiters = new Map<number, Array<(fact: SessionClosedFact) => void>>();

  sessionOpened(fact: SessionOpenedFact) {
    this.facts.push({ kind: "opened", fact });
  }
  authenticated(fact: AuthFact) {
    this.facts.push({ kind: "auth", fact });
  }
  requested(fact: RequestFact) {
    this.facts.push({ kind: "request", fact });
  }
  replied(fact: ReplyFact) {
    this.facts.push({ kind: "reply", fact });
  }
  anomaly(fact: AnomalyFact) {
    this.facts.push({ kind: "anomaly", fact });
  }
  sessionClosed(fact: SessionClosedFact) {
    this.facts.push({ kind: "closed", fact });
    for (const resolve of this.closeWaiters.get(fact.id) ?? []) resolve(fact);
    this.closeWaiters.delete(fact.id);
  }

  of<K extends RecordedKind>(kind: K): RecordedFacts[K][] {
    return this.facts.filter((f) => f.kind === kind).map((f) => f.fact as RecordedFacts[K]);
  }

  /** The first fact of `kind`; throws (a failed test, never a silent undefined) when there is none. */
  first<K extends RecordedKind>(kind: K): RecordedFacts[K] {
    return nth(this.of(kind), 0, `${kind} fact`);
  }

  /** The last fact of `kind` so far; throws when there is none. */
  last<K extends RecordedKind>(kind: K): RecordedFacts[K] {
    return nth(this.of(kind), -1, `${kind} fact`);
  }

  /** Resolves with the close fact of session `id` (or of the next session to close when omitted). */
  closed(id?: number, timeoutMs = 5000): Promise<SessionClosedFact> {
    if (id !== undefined) {
      const done = this.of("closed").find((f) => f.id === id);
      if (done) return Promise.resolve(done);
    }
    return withTimeout(
      new Promise<SessionClosedFact>((resolve) => {
        if (id === undefined) {
          const before = this.of("closed").length;
          const timer = setInterval(() => {
            const all = this.of("closed");
            if (all.length > before) {
              clearInterval(timer);
              resolve(all[before]!);
            }
          }, 5);
          return;
        }
        const list = this.closeWaiters.get(id) ?? [];
        list.push(resolve);
        this.closeWaiters.set(id, list);
      }),
      timeoutMs,
      `session ${id ?? "(next)"} did not close`,
    );
  }

  /** The close fact of the only/last session, waiting until one has closed. */
  async lastClosed(timeoutMs = 5000): Promise<SessionClosedFact> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const all = this.of("closed");
      if (all.length > 0) return all[all.length - 1]!;
      await sleep(5);
    }
    throw new Error("no session closed");
  }
}

export interface TestProxy {
  engine: SocksEngine;
  port: number;
  observer: RecordingObserver;
  stop(): Promise<void>;
}

/** Starts an engine on 127.0.0.1:0 with a RecordingObserver (unless one is given). */
export async function startProxy(options: Partial<EngineOptions> = {}): Promise<TestProxy> {
  const observer = new RecordingObserver();
  const engine = new SocksEngine({ listen: [{ host: HOST, port: 0 }], observer, ...options });
  const [bound] = await engine.start();
  return { engine, port: bound!.port, observer, stop: () => engine.stop(200) };
}

/** A TCP server on loopback; `handler` gets each connection. */
export async function startServer(
  handler: (socket: Socket) => void,
  host = HOST,
  options: { allowHalfOpen?: boolean } = {},
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    handler(socket);
  });
  server.listen(0, host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Echoes every byte back; ends when the client ends (half-close aware). */
export function startEchoServer(host = HOST) {
  return startServer((socket) => socket.pipe(socket), host, { allowHalfOpen: true });
}

/**
 * A raw TCP client that buffers everything it receives, so tests can ask for exact byte
 * counts, wait for the FIN, or see a reset.
 */
export class RawClient {
  readonly socket: Socket;
  private buffer = Buffer.alloc(0);
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | undefined;
  private wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.wake?.();
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static async connect(port: number, host = HOST): Promise<RawClient> {
    const socket = connect({ port, host, allowHalfOpen: true, noDelay: true });
    await once(socket, "connect");
    return new RawClient(socket);
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(typeof bytes === "string" ? Buffer.from(bytes.replace(/\s+/g, ""), "hex") : bytes);
  }

  /** Bytes received and not yet read. */
  get pending(): Buffer {
    return this.buffer;
  }

  /** Waits for exactly `n` bytes and consumes them. */
  async read(n: number, timeoutMs = 3000): Promise<Buffer> {
    await this.until(() => this.buffer.length >= n || this.ended || this.closed, timeoutMs, `wanted ${n} bytes, have ${this.buffer.length}`);
    if (this.buffer.length < n) throw new Error(`connection ended after ${this.buffer.length} of ${n} bytes: ${this.buffer.toString("hex")}`);
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return Buffer.from(out);
  }

  /** Waits for the peer's FIN (or close) and returns everything left unread. */
  async readToEnd(timeoutMs = 3000): Promise<Buffer> {
    await this.until(() => this.ended || this.closed, timeoutMs, "no FIN from the peer");
    const out = this.buffer;
    this.buffer = Buffer.alloc(0);
    return out;
  }

  /** Waits until the socket has fully closed. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    await this.until(() => this.closed, timeoutMs, "socket did not close");
  }

  private async until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout: ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `ready()` holds, checking every 5 ms; fails with "timeout: <what>" after `ms`. For
 * conditions with no event to wait on (a fact recorded, a counter reached): never a fixed sleep.
 */
export async function until(ready: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() >= deadline) throw new Error(`timeout: ${what}`);
    await sleep(5);
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timeout: ${message}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A resolver for EngineOptions.lookup that never asks the system: each name in `answers` resolves
 * to its addresses or fails with its errno (as getaddrinfo's errors do, on a later tick); any other
 * name fails with ENOTFOUND. `asked` lists every name looked up, in order.
 */
export function fakeLookup(answers: Readonly<Record<string, readonly string[] | "ENOTFOUND" | "EAI_AGAIN">>): Lookup & { readonly asked: string[] } {
  const asked: string[] = [];
  const lookup: Lookup = (name, callback) => {
    asked.push(name);
    const answer = Object.hasOwn(answers, name) ? answers[name]! : "ENOTFOUND";
    process.nextTick(() => {
      if (typeof answer !== "string")
        return callback(
          null,
          answer.map((address) => ({ address, family: isIP(address) })),
        );
      callback(Object.assign(new Error(`getaddrinfo ${answer} ${name}`), { code: answer, syscall: "getaddrinfo", hostname: name }), []);
    });
  };
  return Object.assign(lookup, { asked });
}

/** 10-byte SOCKS5 CONNECT request to 127.0.0.1:port. */
export function connect5(port: number, host = HOST): Buffer {
  const [a, b, c, d] = host.split(".").map(Number);
  return Buffer.from([5, 1, 0, 1, a!, b!, c!, d!, port >> 8, port & 0xff]);
}

/** SOCKS4 CONNECT request to 127.0.0.1:port with an empty USERID. */
export function connect4(port: number, host = HOST, userid = ""): Buffer {
  const [a, b, c, d] = host.split(".").map(Number);
  return Buffer.concat([Buffer.from([4, 1, port >> 8, port & 0xff, a!, b!, c!, d!]), Buffer.from(userid, "latin1"), Buffer.of(0)]);
}

/** Opens a no-auth SOCKS5 CONNECT tunnel and returns the client after the success reply. */
export async function openTunnel(proxyPort: number, targetPort: number): Promise<RawClient> {
  const c = await RawClient.connect(proxyPort);
  c.write(Buffer.concat([hex("050100"), connect5(targetPort)]));
  const sel = await c.read(2);
  if (sel.toString("hex") !== "0500") throw new Error(`method selection ${sel.toString("hex")}`);
  const reply = await c.read(10);
  if (reply[1] !== 0) throw new Error(`reply ${reply.toString("hex")}`);
  return c;
}

/** A loopback port with nothing listening on it (bound to port 0, then released): connects are refused. */
export async function closedPort(host = HOST): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Checks the observer contract of ports.ts over everything recorded: per session exactly one
 * `opened` before anything else and exactly one `closed` after everything else. Returns one line
 * per violation (empty when the facts are well formed); call it after the engine has stopped.
 */
export function sessionFactProblems(observer: RecordingObserver): string[] {
  const problems: string[] = [];
  const state = new Map<number, "open" | "closed">();
  for (const { kind, fact } of observer.facts) {
    const id = fact.id;
    const now = state.get(id);
    if (kind === "opened") {
      if (now !== undefined) problems.push(`session ${id}: opened twice`);
      state.set(id, "open");
    } else if (now === undefined) {
      problems.push(`session ${id}: ${kind} before opened`);
    } else if (now === "closed") {
      problems.push(`session ${id}: ${kind} after closed`);
    } else if (kind === "closed") {
      state.set(id, "closed");
    }
  }
  for (const [id, now] of state) if (now !== "closed") problems.push(`session ${id}: never closed`);
  return problems;
}

/**
 * Per-file test scaffolding: cleanups run after each test (all of them, even when one fails,
 * then the first failure is reported), and a `proxy()` that starts an engine, stops it after the
 * test, and checks the observer contract (one `opened` first and one `closed` last per session).
 */
export function useTestProxies(): { cleanups: Array<() => Promise<void> | void>; proxy(options?: Parameters<typeof startProxy>[0]): Promise<TestProxy> } {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    const failures: unknown[] = [];
    for (const c of cleanups.splice(0).reverse())
      await Promise.resolve()
        .then(c)
        .catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw failures[0];
  });
  async function proxy(options: Parameters<typeof startProxy>[0] = {}): Promise<TestProxy> {
    const p = await startProxy(options);
    cleanups.push(async () => {
      await p.stop();
      expect(sessionFactProblems(p.observer)).toEqual([]);
    });
    return p;
  }
  return { cleanups, proxy };
}
