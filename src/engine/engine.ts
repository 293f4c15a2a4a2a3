/**
 * The SOCKS engine: listeners, the session table, limits and graceful shutdown. The only entry
 * point other folders use (through index.ts).
 */
import { createServer, type Server, type Socket } from "node:net";
import {
  allowAllHooks,
  noopObserver,
  silentLogger,
  systemClock,
  systemLookup,
  type AuthAttempt,
  type Clock,
  type ClockTimer,
  type EngineObserver,
  type HookRunner,
  type Logger,
  type RequestInfo,
  type Lookup,
} from "./ports.js";
import type { Endpoint } from "./types.js";
import { formatEndpoint, normalizeHost } from "./codec/address.js";
import { Credentials } from "./credentials.js";
import type { TlsInterceptor } from "./tls-ports.js";
import type { Route } from "./upstream.js";
import type { DestinationRules } from "./destination-rules.js";
import { ClientSession } from "./io/client-session.js";
import { SocketReader, acceptReading, adoptSocket, checkAdoption } from "./io/socket-reader.js";
import { IdleSweeper } from "./io/idle-sweeper.js";
import { DeadlineQueue } from "./io/deadline-queue.js";
import type { EngineContext, EngineSession, SessionLimits } from "./io/engine-context.js";

export interface EngineOptions {
  /** Addresses to listen on. */
  readonly listen: readonly Endpoint[];
  readonly hooks?: HookRunner;
  readonly observer?: EngineObserver;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Resolves destination names; the system resolver by default. */
  readonly lookup?: Lookup;
  /** Users for username/password; when non-empty, clients must authenticate. */
  readonly credentials?: Credentials;
  readonly handshakeTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  /** How long a BIND waits for its peer (SOCKS4 suggests 2 minutes). */
  readonly bindTimeoutMs?: number;
  /** UDP associations open at once; more UDP ASSOCIATE requests get REP 01. */
  readonly maxUdpAssociations?: number;
  /** Close a UDP association after this long without a datagram; 0 = only when its TCP connection ends. */
  readonly udpIdleTimeoutMs?: number;
  /** Relay datagrams from remote hosts the client never sent to (full-cone). */
  readonly udpAllowUnsolicited?: boolean;
  /** Distinct remote hosts one UDP association may send to. */
  readonly udpMaxPeers?: number;
  /** Sessions open at once; connections beyond it are closed at accept. */
  readonly maxSessions?: number;
  /** TLS interception of CONNECT tunnels that begin with a ClientHello; absent = tunnels are opaque. */
  readonly tls?: TlsInterceptor;
  /**
   * The upstream proxies a request goes through when its hooks did not choose (`{ upstream }`):
   * `run --upstream` / `--route`. Absent or empty: direct.
   */
  readonly route?: (request: RequestInfo) => Route;
  /**
   * `--allow` / `--deny`, first match wins, no match allows (destination-rules.ts). Whatever
   * they say, a CONNECT to one of this engine's own listeners is refused (no loops).
   */
  readonly rules?: DestinationRules;
}

export const DEFAULTS = {
  handshakeTimeoutMs: 15_000,
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 3_600_000,
  bindTimeoutMs: 120_000,
  maxUdpAssociations: 1_000,
  udpIdleTimeoutMs: 0,
  udpMaxPeers: 1_024,
  maxSessions: 10_000,
} as const;

/** A listen address that could not be bound. */
export class ListenError extends Error {
  constructor(
    readonly address: Endpoint,
    readonly errno: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = "ListenError";
  }
}

export class SocksEngine implements EngineContext {
  readonly options: SessionLimits;
  readonly hooks: HookRunner;
  readonly observer: EngineObserver;
  readonly hooked: boolean;
  readonly observed: boolean;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly lookup: Lookup;
  readonly tls: TlsInterceptor | undefined;
  readonly route: ((request: RequestInfo) => Route) | undefined;
  readonly rules: DestinationRules | undefined;
  readonly idleSweeper: IdleSweeper | undefined;
  readonly handshakeDeadlines: DeadlineQueue;
  readonly connectDeadlines: DeadlineQueue;
  private readonly credentials: Credentials;
  private readonly maxSessions: number;
  private readonly servers: Server[] = [];
  /** Bound listeners, for the loop check. */
  private readonly bound: Endpoint[] = [];
  private readonly sessions = new Set<EngineSession>();
  private lastId = 0;
  private udpAssociations = 0;
  private stopping = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly config: EngineOptions) {
    this.hooks = config.hooks ?? allowAllHooks;
    this.observer = config.observer ?? noopObserver;
    this.hooked = this.hooks !== allowAllHooks;
    this.observed = this.observer !== noopObserver;
    this.logger = config.logger ?? silentLogger;
    this.clock = config.clock ?? systemClock;
    this.lookup = config.lookup ?? systemLookup;
    this.tls = config.tls;
    this.route = config.route;
    this.rules = config.rules;
    this.credentials = config.credentials ?? new Credentials();
    this.maxSessions = config.maxSessions ?? DEFAULTS.maxSessions;
    this.options = {
      handshakeTimeoutMs: config.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      connectTimeoutMs: config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      bindTimeoutMs: config.bindTimeoutMs ?? DEFAULTS.bindTimeoutMs,
      udp: {
        maxAssociations: config.maxUdpAssociations ?? DEFAULTS.maxUdpAssociations,
        idleTimeoutMs: config.udpIdleTimeoutMs ?? DEFAULTS.udpIdleTimeoutMs,
        allowUnsolicited: config.udpAllowUnsolicited ?? false,
        maxPeers: config.udpMaxPeers ?? DEFAULTS.udpMaxPeers,
      },
      authRequired: this.credentials.size > 0,
    };
    this.idleSweeper = this.options.idleTimeoutMs > 0 ? new IdleSweeper(this.options.idleTimeoutMs, this.clock) : undefined;
    this.handshakeDeadlines = new DeadlineQueue(this.options.handshakeTimeoutMs, this.clock);
    this.connectDeadlines = new DeadlineQueue(this.options.connectTimeoutMs, this.clock);
  }

  /**
   * Binds every listen address; on any failure closes the others and throws a ListenError.
   * First (once per process) checks that this Node lets accepted sockets be adopted for fast
   * reads (socket-reader.ts); where it does not, they read plainly, and one warning says so.
   */
  async start(): Promise<Endpoint[]> {
    const adoption = await checkAdoption();
    if (adoption !== undefined) {
      const why = `adopting their sockets does not work on Node ${process.version}: ${adoption}`;
      this.logger.log("warn", `accepted connections use Node's plain reads (slower): ${why}`);
    }
    const bound: Endpoint[] = [];
    try {
      for (const address of this.config.listen) bound.push(await this.listenOn(address));
    } catch (err) {
      await this.closeServers();
      throw err;
    }
    return bound;
  }

  /** Open sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting, lets open sessions finish for up to `graceMs`, then destroys the rest.
   * Resolves when every session has ended.
   */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    const closing = this.closeServers();
    if (this.sessions.size > 0) {
      const drained = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      let timer: ClockTimer | undefined;
      const grace = new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, graceMs)));
      await Promise.race([drained, grace]);
      this.clock.clearTimeout(timer);
      for (const session of [...this.sessions]) session.destroy("shutdown");
      if (this.sessions.size > 0) await drained;
    }
    await closing;
  }

  /** Ends every open session now (a second Ctrl-C). */
  destroyAll(): void {
    for (const session of [...this.sessions]) session.destroy("shutdown");
  }

  // --- EngineContext ---------------------------------------------------------------------------

  get listening(): readonly Endpoint[] {
    return this.bound;
  }

  nextSessionId(): number {
    return ++this.lastId;
  }

  checkCredentials(attempt: AuthAttempt): boolean {
    switch (attempt.method) {
      case "none":
        return !this.options.authRequired;
      case "userpass":
        // Without configured users, any credentials are accepted (and the user is recorded).
        return !this.options.authRequired || this.credentials.verify(attempt.user, attempt.password);
      case "socks4":
        // SOCKS4 carries no password: refuse it when authentication is required.
        return !this.options.authRequired;
    }
  }

  udpAssociationOpened(): boolean {
    if (this.udpAssociations >= this.options.udp.maxAssociations) return false;
    this.udpAssociations++;
    return true;
  }

  udpAssociationClosed(): void {
    this.udpAssociations--;
  }

  /** UDP associations open. */
  get udpAssociationCount(): number {
    return this.udpAssociations;
  }

  sessionEnded(session: EngineSession): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((resolve) => resolve());
    }
  }

  // --- accept loop -----------------------------------------------------------------------------

  private listenOn(address: Endpoint): Promise<Endpoint> {
    // Once listening, the listener builds accepted sockets that read fast itself (acceptReading);
    // where it cannot, pauseOnConnect: the accepted Socket never reads; it is adopted into one that does.
    // A listener bound to one address tells its sessions their local address (no getsockname).
    let specific: Endpoint | undefined;
    const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (accepted) => {
      const reader = new SocketReader();
      if (!this.refused(accepted, reader)) this.begin(adoptSocket(accepted, reader, true, true), reader, specific);
    });
    const accepted = (socket: Socket, reader: SocketReader): void => {
      if (!this.refused(socket, reader)) this.begin(socket, reader, specific);
    };
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const where = formatEndpoint(address);
        const message =
          err.code === "EADDRINUSE"
            ? `cannot listen on ${where}: the address is already in use (is another proxy running?)`
            : err.code === "EADDRNOTAVAIL"
              ? `cannot listen on ${where}: no such local address`
              : err.code === "EACCES"
                ? `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`
                : `cannot listen on ${where}: ${err.message}`;
        reject(new ListenError(address, err.code, message));
      };
      server.once("error", onError);
      server.listen({ host: address.host, port: address.port }, () => {
        server.removeListener("error", onError);
        server.on("error", (err) => this.logger.log("error", `listener ${formatEndpoint(address)}: ${err.message}`));
        this.servers.push(server);
        acceptReading(server, { allowHalfOpen: true, noDelay: true }, accepted);
        const info = server.address();
        if (info === null || typeof info === "string") return resolve(address);
        const bound = { host: normalizeHost(info.address), port: info.port };
        this.bound.push(bound);
        if (bound.host !== "0.0.0.0" && bound.host !== "::") specific = bound;
        resolve(bound);
      });
    });
  }

  /** Refuses a connection when stopping or at the session limit (recorded as a session that ended at once); true if it did. */
  private refused(socket: Socket, reader: SocketReader): boolean {
    if (this.stopping || this.sessions.size >= this.maxSessions) {
      const session = new ClientSession(this, socket, reader);
      this.sessions.add(session);
      socket.on("error", () => {});
      // Recorded as a session that ended at once, so the limit is visible in logs and capture.
      this.observer.sessionOpened({ ...session.conn, at: this.clock.now() });
      this.observer.anomaly({
        id: session.id,
        at: this.clock.now(),
        code: "session-limit",
        detail: `${this.sessions.size - 1} sessions open (max ${this.maxSessions})`,
      });
      this.sessions.delete(session);
      this.observer.sessionClosed({
        id: session.id,
        at: this.clock.now(),
        reason: this.stopping ? "shutdown" : "session-limit",
        bytesUpReceived: 0,
        bytesUpSent: 0,
        bytesDownReceived: 0,
        bytesDownSent: 0,
      });
      socket.destroy();
      return true;
    }
    return false;
  }

  /** Starts a session on an accepted socket that reads through `reader` (paused until the open hook lets it in). */
  private begin(socket: Socket, reader: SocketReader, local: Endpoint | undefined): void {
    const session = new ClientSession(this, socket, reader, local);
    this.sessions.add(session);
    session.start();
  }

  private closeServers(): Promise<void> {
    const servers = this.servers.splice(0);
    return Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
  }
}

export { formatEndpoint } from "./codec/address.js";
