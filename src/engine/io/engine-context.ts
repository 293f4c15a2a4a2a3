/** What every session of one engine shares. */
import type { RequestInfo, AuthAttempt, Clock, CloseReason, EngineObserver, HookRunner, Logger, Lookup } from "../ports.js";
import type { TlsInterceptor } from "../tls-ports.js";
import type { Route } from "../upstream.js";
import type { UdpOptions } from "./udp-association.js";
import type { IdleSweeper } from "./idle-sweeper.js";
import type { DeadlineQueue } from "./deadline-queue.js";
import type { Endpoint } from "../types.js";
import type { DestinationRules } from "../destination-rules.js";

export interface SessionLimits {
  /** Milliseconds from accept until the request has been read. */
  readonly handshakeTimeoutMs: number;
  /** Milliseconds for resolution plus connect. */
  readonly connectTimeoutMs: number;
  /** Milliseconds without a byte in either direction before a tunnel is closed; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Milliseconds a BIND waits for its inbound connection. */
  readonly bindTimeoutMs: number;
  /** UDP ASSOCIATE settings. */
  readonly udp: UdpOptions & { readonly maxAssociations: number };
  /** Whether clients must authenticate (set when credentials are configured). */
  readonly authRequired: boolean;
}

/** What the engine keeps of each session: enough to end it. */
export interface EngineSession {
  readonly id: number;
  /** Ends the session now, without a reply (shutdown). */
  destroy(reason: CloseReason): void;
}

export interface EngineContext {
  readonly options: SessionLimits;
  readonly hooks: HookRunner;
  readonly observer: EngineObserver;
  /**
   * False when `hooks` is `allowAllHooks`: every answer is "no opinion" at once, so sessions skip
   * the calls and the payloads built for them.
   */
  readonly hooked: boolean;
  /** False when `observer` is `noopObserver`: sessions build no facts for it. */
  readonly observed: boolean;
  readonly logger: Logger;
  /** Enforces the idle timeout of relayed tunnels; absent when it is 0 (never). */
  readonly idleSweeper: IdleSweeper | undefined;
  readonly clock: Clock;
  /** Every session's handshake timeout (one timer for all; `options.handshakeTimeoutMs`). */
  readonly handshakeDeadlines: DeadlineQueue;
  /** Every direct dial's connect timeout (one timer for all; `options.connectTimeoutMs`). */
  readonly connectDeadlines: DeadlineQueue;
  /** Resolves destination names (CONNECT and UDP datagrams). */
  readonly lookup: Lookup;
  /** TLS interception of CONNECT tunnels; absent when off. */
  readonly tls: TlsInterceptor | undefined;
  /** The default route of a request (`EngineOptions.route`); absent: direct. */
  readonly route: ((request: RequestInfo) => Route) | undefined;
  /** `--allow` / `--deny`; absent: every destination is allowed (but the loop check). */
  readonly rules: DestinationRules | undefined;
  /** The bound listeners (for the loop check), each added as soon as it listens. */
  readonly listening: readonly Endpoint[];
  nextSessionId(): number;
  /** The engine's own decision when no hook decided an auth step. */
  checkCredentials(attempt: AuthAttempt): boolean;
  sessionEnded(session: EngineSession): void;
  /** Counts a new UDP association; false when the limit is reached. */
  udpAssociationOpened(): boolean;
  udpAssociationClosed(): void;
}
