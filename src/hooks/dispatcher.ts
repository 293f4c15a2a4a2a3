/**
 * Runs addons' hooks for the engine: the engine's HookRunner port implemented over a list of
 * loaded addons (STYLE.md 8, 9).
 *
 * - Order: the order of the `-s` flags, fixed whenever the addon set changes, not per call.
 *   Hooks no addon defines cost nothing (`wantsData()` is false without an onData addon, so the
 *   engine keeps its fast relay path).
 * - Decisions (onOpen, onAuth, onRequest): the first addon that returns one wins.
 *   Changes (onReply, onData, onDatagram): each addon sees the previous addon's output; a drop,
 *   close or reset ends the chain. Observations (onClose): every addon.
 * - Every call goes through `invoke`: a throw, a rejection or a timeout is reported (addon,
 *   hook, session, the addon's file:line) and counts as "no opinion"; the addon stays loaded.
 * - Sync answers stay sync (no promise, no tick): the engine's fast path for hooks that answer
 *   at once.
 * - Reloads swap one addon atomically: sessions in flight use the new version from their next
 *   hook call.
 */
import type {
  AuthAttempt,
  AuthDecision as EngineAuthDecision,
  ConnectionInfo,
  DataChunk as EngineChunk,
  DataVerdict as EngineDataVerdict,
  DatagramInfo,
  DatagramVerdict as EngineDatagramVerdict,
  EngineObserver,
  HookRunner,
  OpenDecision as EngineOpenDecision,
  ReplyChange as EngineReplyChange,
  ReplyInfo as EngineReplyInfo,
  RequestDecision as EngineRequestDecision,
  RequestInfo as EngineRequestInfo,
  SessionClosedFact,
  SessionHandle,
} from "../engine/index.js";
import type {
  Addon,
  AuthDecision,
  AuthInfo,
  DataVerdict,
  DatagramVerdict,
  Direction,
  Endpoint,
  HookContext,
  HookName,
  MaybePromise,
  OpenDecision,
  ReplyChange,
  RequestDecision,
  SessionInfo,
} from "./api.js";

/** One loaded addon, as the dispatcher needs it (the loader's LoadedAddon fits). */
export interface AddonInstance {
  readonly name: string;
  readonly file: string;
  readonly addon: Addon;
  readonly options: Readonly<Record<string, unknown>>;
}

/** A hook call that failed; the session went on as if it had returned undefined. */
export interface HookFailure {
  readonly addon: string;
  readonly hook: HookName;
  /** Absent for onLoad / onDispose. */
  readonly session?: number;
  readonly kind: "threw" | "rejected" | "timed-out";
  readonly message: string;
  /** The addon's own `file.ts:line:column`, when the stack shows it. */
  readonly location?: string;
}

/** Where the dispatcher reports what addons did. */
export interface DispatcherEvents {
  hookFailed(failure: HookFailure): void;
  /** `ctx.tag(key, value)`. */
  tagged(session: number, addon: string, key: string, value: string): void;
  /** `ctx.log(message)`; session is absent for onLoad logs. */
  logged(session: number | undefined, addon: string, message: string): void;
}

export interface DispatcherOptions {
  /** Milliseconds a hook may take before it counts as "no opinion" (default 5000). */
  readonly hookTimeoutMs?: number;
  readonly events: DispatcherEvents;
  /** Finds the addon's own file:line in an error's stack (the loader's addonLocation). */
  readonly locate?: (error: unknown, file: string) => string | undefined;
}

interface SessionState {
  readonly info: { id: number; client: Endpoint; version?: SessionInfo["version"]; command?: SessionInfo["command"]; target?: Endpoint; user?: string; tags: Record<string, string>; replay?: SessionInfo["replay"] };
  readonly handle: SessionHandle;
  readonly openedAt: number;
  readonly contexts: Map<AddonInstance, HookContext>;
}

type Hooked = { readonly [K in HookName]: AddonInstance[] };

const HOOK_NAMES: readonly HookName[] = ["onLoad", "onDispose", "onOpen", "onAuth", "onRequest", "onReply", "onData", "onDatagram", "onClose"];

export class Dispatcher implements HookRunner {
  private addons: AddonInstance[];
  private hooked!: Hooked;
  private readonly sessions = new Map<number, SessionState>();
  private readonly timeoutMs: number;

  constructor(
    addons: readonly AddonInstance[],
    private readonly options: DispatcherOptions,
  ) {
    this.addons = [...addons];
    this.timeoutMs = options.hookTimeoutMs ?? 5_000;
    this.index();
  }

  /** The addons in hook order. */
  get loaded(): readonly AddonInstance[] {
    return this.addons;
  }

  /** Runs every addon's onLoad (isolated, in order). */
  async start(): Promise<void> {
    for (const instance of this.addons) await this.lifecycle(instance, "onLoad");
  }

  /**
   * Swaps in a new version of the addon at `index` (a reload): its onLoad runs first; if that
   * fails the old version stays. Then the swap, then the old version's onDispose.
   */
  async replace(index: number, next: AddonInstance): Promise<boolean> {
    const previous = this.addons[index];
    if (previous === undefined) throw new RangeError(`no addon at ${index}`);
    if (!(await this.lifecycle(next, "onLoad"))) return false;
    this.addons = this.addons.map((a, i) => (i === index ? next : a));
    this.index();
    await this.lifecycle(previous, "onDispose");
    return true;
  }

  /** Runs every addon's onDispose (the proxy stops). */
  async stop(): Promise<void> {
    for (const instance of this.addons) await this.lifecycle(instance, "onDispose");
  }

  // --- HookRunner --------------------------------------------------------------------------

  open(conn: ConnectionInfo, handle: SessionHandle): MaybePromise<EngineOpenDecision> {
    const state: SessionState = { info: { id: conn.id, client: conn.client, tags: {} }, handle, openedAt: Date.now(), contexts: new Map() };
    this.sessions.set(conn.id, state);
    const of = this.clientReplays.get(conn.client.port);
    if (of !== undefined) {
      this.clientReplays.delete(conn.client.port);
      state.info.replay = { kind: "client", of };
    }
    const info = { client: conn.client, local: conn.local };
    return this.first<OpenDecision, EngineOpenDecision>(this.hooked.onOpen, "onOpen", state, (a, ctx) => a.onOpen!(info, ctx), (d) => ("reject" in d ? { reject: true as const } : undefined));
  }

  auth(attempt: AuthAttempt, conn: ConnectionInfo, handle: SessionHandle): MaybePromise<EngineAuthDecision> {
    const state = this.state(conn.id, conn.client, handle);
    const info: AuthInfo =
      attempt.method === "none"
        ? { method: "none", offered: attempt.offered }
        : attempt.method === "userpass"
          ? { method: "userpass", offered: attempt.offered, user: attempt.user.toString("latin1"), password: attempt.password.toString("latin1") }
          : { method: "socks4", user: attempt.userid.toString("latin1") };
    if (info.method !== "none" && info.user !== "") state.info.user = info.user;
    return this.first<AuthDecision, EngineAuthDecision>(this.hooked.onAuth, "onAuth", state, (a, ctx) => a.onAuth!(info, ctx), (d) => ("accept" in d ? { accept: true as const } : { reject: true as const }));
  }

  request(request: EngineRequestInfo, handle: SessionHandle): MaybePromise<EngineRequestDecision> {
    const state = this.state(request.id, request.client, handle);
    const { destination } = request;
    Object.assign(state.info, { version: request.version, command: request.command, target: { host: destination.host, port: destination.port } });
    const info = {
      command: request.command,
      host: destination.host,
      port: destination.port,
      addressType: destination.type,
      version: request.version,
      client: request.client,
      ...(request.user === undefined ? {} : { user: request.user }),
    };
    return this.first<RequestDecision, EngineRequestDecision>(this.hooked.onRequest, "onRequest", state, (a, ctx) => a.onRequest!(info, ctx), (d): EngineRequestDecision => {
      if ("allow" in d) return { allow: true };
      if ("deny" in d) return { deny: d.deny };
      if ("serve" in d) return { serve: true };
      return { redirect: d.redirect };
    });
  }

  reply(reply: EngineReplyInfo, handle: SessionHandle): MaybePromise<EngineReplyChange> {
    const list = this.hooked.onReply;
    if (list.length === 0) return undefined;
    const state = this.state(reply.id, undefined, handle);
    let current = { command: reply.command, stage: reply.stage, rep: reply.rep, bound: reply.bound, ...(reply.code === undefined ? {} : { code: reply.code }), ...(reply.errno === undefined ? {} : { errno: reply.errno }) };
    let changed = false;
    return this.sequence<ReplyChange, EngineReplyChange>(list, "onReply", state, (a, ctx) => a.onReply!(current, ctx), (change) => {
      if (change.rep !== undefined || change.bound !== undefined) {
        current = { ...current, rep: change.rep ?? current.rep, bound: change.bound ?? current.bound };
        changed = true;
      }
      return false;
    }, () => (changed ? { rep: current.rep, bound: current.bound } : undefined));
  }

  wantsData(): boolean {
    return this.hooked.onData.length > 0;
  }

  data(chunk: EngineChunk, handle: SessionHandle): MaybePromise<EngineDataVerdict> {
    const state = this.state(chunk.id, undefined, handle);
    let data: Uint8Array = chunk.data;
    let changed = false;
    let final: EngineDataVerdict;
    return this.sequence<DataVerdict, EngineDataVerdict>(this.hooked.onData, "onData", state, (a, ctx) => a.onData!({ direction: chunk.direction, data, seq: chunk.seq }, ctx), (verdict) => {
      if ("replace" in verdict) {
        data = bytes(verdict.replace);
        changed = true;
        return false;
      }
      final = "drop" in verdict ? { drop: true } : "close" in verdict ? { close: true } : { reset: true };
      return true;
    }, () => final ?? (changed ? { replace: data } : undefined));
  }

  wantsDatagrams(): boolean {
    return this.hooked.onDatagram.length > 0;
  }

  datagram(datagram: DatagramInfo, handle: SessionHandle): MaybePromise<EngineDatagramVerdict> {
    const state = this.state(datagram.id, undefined, handle);
    let data: Uint8Array = datagram.data;
    let peer: Endpoint = { host: datagram.peer.host, port: datagram.peer.port };
    let changed = false;
    let redirected = false;
    let dropped = false;
    return this.sequence<DatagramVerdict, EngineDatagramVerdict>(this.hooked.onDatagram, "onDatagram", state, (a, ctx) => a.onDatagram!({ direction: datagram.direction, peer, data, seq: datagram.seq }, ctx), (verdict) => {
      if ("drop" in verdict) return (dropped = true);
      if ("replace" in verdict) {
        data = bytes(verdict.replace);
        changed = true;
      } else if (datagram.direction === "up") {
        peer = { host: verdict.redirect.host ?? peer.host, port: verdict.redirect.port ?? peer.port };
        redirected = true;
      }
      return false;
    }, (): EngineDatagramVerdict => {
      if (dropped) return { drop: true };
      if (redirected) return changed ? { redirect: peer, replace: data } : { redirect: peer };
      return changed ? { replace: data } : undefined;
    });
  }

  /**
   * The proxy's own client replay of recorded session `of` connects from `clientPort` (on
   * loopback): its session gets `replay: { kind: "client" }`, whether it is open already or not yet.
   */
  clientReplay(clientPort: number, of: number): void {
    for (const state of this.sessions.values()) {
      if (state.info.client.port === clientPort && state.info.replay === undefined) {
        state.info.replay = { kind: "client", of };
        return;
      }
    }
    this.clientReplays.set(clientPort, of);
  }

  private readonly clientReplays = new Map<number, number>();

  /** Marks a session as answered from a recording (server replay), before its onRequest. */
  servedFrom(id: number, handle: SessionHandle, of: number | undefined): void {
    const state = this.state(id, undefined, handle);
    if (of === undefined) delete state.info.replay;
    else state.info.replay = { kind: "server", of };
  }

  // --- observer: onClose ---------------------------------------------------------------------

  /** Tells addons that sessions ended (onClose), and forgets their state. */
  readonly observer: EngineObserver = {
    sessionOpened: () => {},
    authenticated: () => {},
    requested: () => {},
    replied: () => {},
    anomaly: () => {},
    sessionClosed: (fact: SessionClosedFact) => this.closed(fact),
  };

  private closed(fact: SessionClosedFact): void {
    const state = this.sessions.get(fact.id);
    this.sessions.delete(fact.id);
    if (state === undefined) return;
    const summary = {
      reason: fact.reason,
      bytesUp: fact.bytesUpReceived,
      bytesDown: fact.bytesDownReceived,
      durationMs: fact.at - state.openedAt,
      ...(fact.errno === undefined ? {} : { errno: fact.errno }),
    };
    for (const instance of this.hooked.onClose) {
      const ctx = this.context(state, instance);
      void this.invoke(instance, "onClose", state.info.id, () => instance.addon.onClose!(summary, ctx));
    }
  }

  // --- runners -------------------------------------------------------------------------------

  /** First decision wins; stays synchronous while every answer is. */
  private first<D, R>(list: readonly AddonInstance[], hook: HookName, state: SessionState, call: (addon: Addon, ctx: HookContext) => unknown, map: (decision: D) => R): MaybePromise<R | undefined> {
    const step = (i: number): MaybePromise<R | undefined> => {
      for (; i < list.length; i++) {
        const instance = list[i]!;
        const answer = this.invoke(instance, hook, state.info.id, () => call(instance.addon, this.context(state, instance)));
        if (isThenable(answer)) {
          const next = i + 1;
          return Promise.resolve(answer).then((d) => (d === undefined || d === null ? step(next) : map(d as D)));
        }
        if (answer !== undefined && answer !== null) return map(answer as D);
      }
      return undefined;
    };
    return step(0);
  }

  /**
   * Each addon in turn; `apply` folds an answer into the running result and returns true to stop
   * the chain; `result` gives the outcome. Synchronous while every answer is.
   */
  private sequence<D, R>(list: readonly AddonInstance[], hook: HookName, state: SessionState, call: (addon: Addon, ctx: HookContext) => unknown, apply: (answer: D) => boolean, result: () => R): MaybePromise<R> {
    const step = (i: number): MaybePromise<R> => {
      for (; i < list.length; i++) {
        const instance = list[i]!;
        const answer = this.invoke(instance, hook, state.info.id, () => call(instance.addon, this.context(state, instance)));
        if (isThenable(answer)) {
          const next = i + 1;
          return Promise.resolve(answer).then((d) => (d !== undefined && d !== null && apply(d as D) ? result() : step(next)));
        }
        if (answer !== undefined && answer !== null && apply(answer as D)) break;
      }
      return result();
    };
    return step(0);
  }

  /** The isolation wrapper around every addon call. */
  private invoke(instance: AddonInstance, hook: HookName, session: number | undefined, call: () => unknown): unknown {
    let answer: unknown;
    try {
      answer = call();
    } catch (err) {
      this.fail(instance, hook, session, "threw", err);
      return undefined;
    }
    if (!isThenable(answer)) return answer;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.fail(instance, hook, session, "timed-out", new Error(`no answer within ${this.timeoutMs} ms`));
        resolve(undefined);
      }, this.timeoutMs);
      (answer as PromiseLike<unknown>).then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.fail(instance, hook, session, "rejected", err);
          resolve(undefined);
        },
      );
    });
  }

  private fail(instance: AddonInstance, hook: HookName, session: number | undefined, kind: HookFailure["kind"], err: unknown): void {
    this.failures++;
    const location = kind === "timed-out" ? undefined : this.options.locate?.(err, instance.file);
    this.options.events.hookFailed({
      addon: instance.name,
      hook,
      kind,
      message: err instanceof Error ? err.message : String(err),
      ...(session === undefined ? {} : { session }),
      ...(location === undefined ? {} : { location }),
    });
  }

  private async lifecycle(instance: AddonInstance, hook: "onLoad" | "onDispose"): Promise<boolean> {
    const fn = instance.addon[hook];
    if (fn === undefined) return true;
    const before = this.failures;
    await this.invoke(instance, hook, undefined, () =>
      hook === "onLoad"
        ? instance.addon.onLoad!({ options: instance.options, log: (m) => this.options.events.logged(undefined, instance.name, m) })
        : instance.addon.onDispose!(),
    );
    return this.failures === before;
  }

  /** Hook failures so far (a lifecycle call succeeded when it added none). */
  private failures = 0;

  /** Which addons define each hook, in order; recomputed when the addon set changes. */
  private index(): void {
    this.hooked = Object.fromEntries(HOOK_NAMES.map((h) => [h, this.addons.filter((a) => typeof a.addon[h] === "function")])) as unknown as Hooked;
  }

  private state(id: number, client: Endpoint | undefined, handle: SessionHandle): SessionState {
    let state = this.sessions.get(id);
    if (state === undefined) {
      state = { info: { id, client: client ?? { host: "?", port: 0 }, tags: {} }, handle, openedAt: Date.now(), contexts: new Map() };
      this.sessions.set(id, state);
    }
    return state;
  }

  /** One context per session and addon version, made on first use. */
  private context(state: SessionState, instance: AddonInstance): HookContext {
    let ctx = state.contexts.get(instance);
    if (ctx === undefined) {
      const events = this.options.events;
      ctx = {
        session: state.info,
        options: instance.options,
        get replayed() {
          return state.info.replay !== undefined;
        },
        tag: (key, value) => {
          state.info.tags[key] = String(value);
          events.tagged(state.info.id, instance.name, key, String(value));
        },
        log: (message) => events.logged(state.info.id, instance.name, String(message)),
        inject: (direction: Direction, data) => state.handle.inject(direction, bytes(data)),
        injectDatagram: (peer, data) => state.handle.injectDatagram({ host: peer.host, port: peer.port }, bytes(data)),
      };
      state.contexts.set(instance, ctx);
    }
    return ctx;
  }
}

function bytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? Buffer.from(data) : data;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as PromiseLike<unknown>).then === "function";
}
