/**
 * Runs addons' hooks for the engine: the engine's HookRunner port implemented over a list of
 * loaded addons, through one isolation wrapper (docs/architecture.md, "Conventions").
 *
 * - Order: the order of the `-s` flags, fixed whenever the addon set changes, not per call.
 *   Hooks no addon defines cost nothing (`wantsData()` is false without an onData addon, so the
 *   engine keeps its fast relay path).
 * - Decisions (onOpen, onAuth, onRequest, onTlsClientHello): the first addon that returns one wins.
 *   Changes (onReply, onData, onDatagram): each addon sees the previous addon's output; a drop,
 *   close or reset ends the chain. Observations (onClose): every addon.
 * - Facts the engine reports fill what hooks read of the session: a `tls` fact sets
 *   `ctx.session.tls`, `sessionClosed` runs onClose and forgets the session.
 * - Every call goes through `invoke`: a throw, a rejection or a timeout is reported (addon,
 *   hook, session, the addon's file:line) and counts as "no opinion"; the addon stays loaded.
 * - Every answer is checked against the contract (answers.ts) before the engine sees it: one
 *   that is not a documented shape is reported like a throw ("invalid", with the hook's
 *   file:line) and counts as "no opinion". So are bad arguments to `ctx` helpers (the call is
 *   ignored). Nothing an addon returns or passes reaches the engine unchecked. The check also
 *   maps: onRequest's `{ upstream: URL | URL[] | "direct" }` is parsed there, once, into the
 *   engine's `{ upstream: Route }`.
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
  TlsFact,
  TlsHelloDecision,
  TlsHelloInfo,
} from "../engine/index.js";
import type {
  Addon,
  AuthInfo,
  DataVerdict,
  DatagramVerdict,
  Direction,
  Endpoint,
  HookContext,
  HookName,
  MaybePromise,
  ReplyChange,
  SessionInfo,
  TlsClientHello,
  TlsSessionInfo,
} from "./api.js";
import {
  checkAuth,
  checkData,
  checkDatagram,
  checkOpen,
  checkPeer,
  checkReply,
  checkRequest,
  checkTlsHello,
  describe,
  isProblem,
  payload,
  type Checked,
} from "./answers.js";
import { perHook } from "./hook-names.js";
import { hookLocation } from "./stack-frames.js";
import { messageHelper, type MessageHelper } from "./message-buffer.js";
import { noReplays, type ReplayLookup } from "./replay-marks.js";

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
  /** "invalid": the hook answered something that is not one of its documented shapes. */
  readonly kind: "threw" | "rejected" | "timed-out" | "invalid";
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
  /**
   * Finds where a hook is defined, `file.ts:line:column`, for failures that have no stack of
   * their own (an invalid answer, a timeout). Default: the loader's hookLocation.
   */
  readonly locateHook?: (instance: AddonInstance, hook: HookName) => string | undefined;
  /** Told around every synchronous hook call (a watchdog names the hook that blocks the thread). */
  readonly activity?: HookActivity;
  /** Which sessions are replays, for `session.replay` (replay-marks.ts; the proxy marks them). Default: none is. */
  readonly replays?: ReplayLookup;
}

/**
 * Which hook is running right now. `enter` and `leave` bracket the synchronous part of each
 * call (an async hook's pending promise does not block anything); `addon` is the addon's index
 * in `Dispatcher.loaded`. Calls never nest. Must be cheap and must not throw.
 */
export interface HookActivity {
  enter(addon: number, hook: HookName, session: number | undefined): void;
  leave(): void;
}

interface SessionState {
  readonly info: {
    id: number;
    client: Endpoint;
    version?: SessionInfo["version"];
    command?: SessionInfo["command"];
    target?: Endpoint;
    user?: string;
    tags: Record<string, string>;
    replay?: SessionInfo["replay"];
    tls?: TlsSessionInfo;
  };
  readonly handle: SessionHandle;
  readonly openedAt: number;
  readonly contexts: Map<AddonInstance, HookContext>;
  /** The hook last called for this session (what a failing `ctx` helper is reported under). */
  hook?: HookName;
}

type Hooked = { readonly [K in HookName]: AddonInstance[] };

export class Dispatcher implements HookRunner {
  private addons: AddonInstance[];
  private hooked!: Hooked;
  /** Each addon's index in `addons` (what `activity.enter` is told). */
  private positions = new Map<AddonInstance, number>();
  private readonly sessions = new Map<number, SessionState>();
  private readonly timeoutMs: number;
  private readonly replays: ReplayLookup;

  constructor(
    addons: readonly AddonInstance[],
    private readonly options: DispatcherOptions,
  ) {
    this.addons = [...addons];
    this.timeoutMs = options.hookTimeoutMs ?? 5_000;
    this.replays = options.replays ?? noReplays;
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
    // The new version's onLoad runs as the addon at `index` (what a watchdog names).
    this.positions.set(next, index);
    if (!(await this.lifecycle(next, "onLoad"))) {
      this.positions.delete(next);
      return false;
    }
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
    this.markReplay(state);
    const info = { client: conn.client, local: conn.local };
    return this.first<EngineOpenDecision>(this.hooked.onOpen, "onOpen", state, (a, ctx) => a.onOpen!(info, ctx), checkOpen);
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
    return this.first<EngineAuthDecision>(this.hooked.onAuth, "onAuth", state, (a, ctx) => a.onAuth!(info, ctx), checkAuth);
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
    return this.first<EngineRequestDecision>(
      this.hooked.onRequest,
      "onRequest",
      state,
      (a, ctx) => a.onRequest!(info, ctx),
      (d) => checkRequest(d, request.command),
    );
  }

  reply(reply: EngineReplyInfo, handle: SessionHandle): MaybePromise<EngineReplyChange> {
    const list = this.hooked.onReply;
    if (list.length === 0) return undefined;
    const state = this.state(reply.id, undefined, handle);
    let current = {
      command: reply.command,
      stage: reply.stage,
      rep: reply.rep,
      bound: reply.bound,
      ...(reply.code === undefined ? {} : { code: reply.code }),
      ...(reply.errno === undefined ? {} : { errno: reply.errno }),
    };
    let changed = false;
    const failed = reply.rep !== 0;
    const check = (answer: unknown) => checkReply(answer, failed, reply.version);
    return this.sequence<ReplyChange, EngineReplyChange>(
      list,
      "onReply",
      state,
      (a, ctx) => a.onReply!(current, ctx),
      check,
      (change) => {
        if (change.rep !== undefined || change.bound !== undefined) {
          current = { ...current, rep: change.rep ?? current.rep, bound: change.bound ?? current.bound };
          changed = true;
        }
        return false;
      },
      () => (changed ? { rep: current.rep, bound: current.bound } : undefined),
    );
  }

  tlsClientHello(hello: TlsHelloInfo, handle: SessionHandle): MaybePromise<TlsHelloDecision> {
    const list = this.hooked.onTlsClientHello;
    if (list.length === 0) return undefined;
    const state = this.state(hello.id, undefined, handle);
    // Copies: an addon that changes what it is given changes nothing of the engine's.
    const info: TlsClientHello = {
      ...(hello.sni === undefined ? {} : { sni: hello.sni }),
      alpn: [...hello.alpn],
      versions: [...hello.versions],
      target: { host: hello.target.host, port: hello.target.port },
    };
    return this.first<TlsHelloDecision>(list, "onTlsClientHello", state, (a, ctx) => a.onTlsClientHello!(info, ctx), checkTlsHello);
  }

  wantsData(): boolean {
    return this.hooked.onData.length > 0;
  }

  data(chunk: EngineChunk, handle: SessionHandle): MaybePromise<EngineDataVerdict> {
    const state = this.state(chunk.id, undefined, handle);
    let data: Uint8Array = chunk.data;
    let changed = false;
    let final: EngineDataVerdict;
    return this.sequence<DataVerdict, EngineDataVerdict>(
      this.hooked.onData,
      "onData",
      state,
      (a, ctx) => a.onData!({ direction: chunk.direction, data, seq: chunk.seq }, ctx),
      checkData,
      (verdict) => {
        if ("replace" in verdict) {
          data = verdict.replace as Uint8Array;
          changed = true;
          return false;
        }
        final = "drop" in verdict ? { drop: true } : "close" in verdict ? { close: true } : { reset: true };
        return true;
      },
      () => final ?? (changed ? { replace: data } : undefined),
    );
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
    const check = (answer: unknown) => checkDatagram(answer, datagram.direction);
    const call = (a: Addon, ctx: HookContext) => a.onDatagram!({ direction: datagram.direction, peer, data, seq: datagram.seq }, ctx);
    return this.sequence<DatagramVerdict, EngineDatagramVerdict>(
      this.hooked.onDatagram,
      "onDatagram",
      state,
      call,
      check,
      (verdict) => {
        if ("drop" in verdict) return (dropped = true);
        if ("replace" in verdict) {
          data = verdict.replace as Uint8Array;
          changed = true;
        } else if (datagram.direction === "up") {
          peer = { host: verdict.redirect.host ?? peer.host, port: verdict.redirect.port ?? peer.port };
          redirected = true;
        }
        return false;
      },
      (): EngineDatagramVerdict => {
        if (dropped) return { drop: true };
        if (redirected) return changed ? { redirect: peer, replace: data } : { redirect: peer };
        return changed ? { replace: data } : undefined;
      },
    );
  }

  // --- observer: onClose ---------------------------------------------------------------------

  /** Tells addons that sessions ended (onClose), and forgets their state. */
  readonly observer: EngineObserver = {
    sessionOpened: () => {},
    authenticated: () => {},
    requested: () => {},
    replied: () => {},
    anomaly: () => {},
    tls: (fact: TlsFact) => this.tlsFact(fact),
    sessionClosed: (fact: SessionClosedFact) => this.closed(fact),
  };

  /** `ctx.session.tls` from the client side's parameters (what the client negotiated with us). */
  private tlsFact(fact: TlsFact): void {
    const state = this.sessions.get(fact.id);
    if (state === undefined) return;
    const side = fact.intercepted ? fact.client : undefined;
    state.info.tls = {
      ...(fact.hello.sni === undefined ? {} : { sni: fact.hello.sni }),
      ...(side?.alpn === undefined ? {} : { alpn: side.alpn }),
      ...(side === undefined ? {} : { version: side.version, cipher: side.cipher }),
      intercepted: fact.intercepted,
    };
  }

  private closed(fact: SessionClosedFact): void {
    const state = this.sessions.get(fact.id);
    this.sessions.delete(fact.id);
    // onClose sees the mark as it stands at the end; then it is released.
    if (state !== undefined) this.markReplay(state);
    this.replays.release(fact.id);
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
      state.hook = "onClose";
      void this.invokeIgnoring(instance, "onClose", state.info.id, () => instance.addon.onClose!(summary, ctx));
    }
  }

  // --- runners -------------------------------------------------------------------------------

  /**
   * First decision wins; stays synchronous while every answer is. An answer `check` refuses is
   * reported and counts as no opinion: the next addon is asked.
   */
  private first<R>(
    list: readonly AddonInstance[],
    hook: HookName,
    state: SessionState,
    call: (addon: Addon, ctx: HookContext) => unknown,
    check: (answer: unknown) => Checked<R>,
  ): MaybePromise<R | undefined> {
    let decision: R | undefined;
    return this.sequence<R, R | undefined>(
      list,
      hook,
      state,
      call,
      check,
      (answer) => {
        decision = answer;
        return true;
      },
      () => decision,
    );
  }

  /**
   * Each addon in turn; `apply` folds a checked answer into the running result and returns true
   * to stop the chain; `result` gives the outcome. Synchronous while every answer is.
   */
  private sequence<D, R>(
    list: readonly AddonInstance[],
    hook: HookName,
    state: SessionState,
    call: (addon: Addon, ctx: HookContext) => unknown,
    check: (answer: unknown) => Checked<unknown>,
    apply: (answer: D) => boolean,
    result: () => R,
  ): MaybePromise<R> {
    const fold = (instance: AddonInstance, answer: unknown): boolean => {
      if (answer === undefined || answer === null) return false;
      const value = this.checked(instance, hook, state, answer, check);
      return value !== undefined && apply(value as D);
    };
    const step = (i: number): MaybePromise<R> => {
      for (; i < list.length; i++) {
        const instance = list[i]!;
        state.hook = hook;
        const answer = this.invoke(instance, hook, state.info.id, () => call(instance.addon, this.context(state, instance)));
        if (answer === PENDING) {
          const next = i + 1;
          return this.pending.then((settled) => (fold(instance, settled.value) ? result() : step(next)));
        }
        if (fold(instance, answer)) break;
      }
      return result();
    };
    return step(0);
  }

  /** The checked answer, or undefined after reporting why it is not one. */
  private checked<T>(instance: AddonInstance, hook: HookName, state: SessionState, answer: unknown, check: (answer: unknown) => Checked<T>): T | undefined {
    const verdict = check(answer);
    if (!isProblem(verdict)) return verdict.value;
    this.report(instance, hook, state.info.id, "invalid", verdict.problem, this.whereIs(instance, hook));
    return undefined;
  }

  /**
   * The isolation wrapper around every addon call. Returns the answer when the hook answered at
   * once, or PENDING when it returned a thenable: then `this.pending` settles (never rejects)
   * with the answer, `undefined` after a rejection or a timeout. Whatever the addon returns,
   * nothing here throws and no promise of ours rejects: a thenable whose `then` throws, or that
   * settles twice, or that resolves to another thenable, is handled (the answer's shape is the
   * runner's check).
   */
  private invoke(instance: AddonInstance, hook: HookName, session: number | undefined, call: () => unknown): unknown {
    let answer: unknown;
    let then: unknown;
    const activity = this.options.activity;
    activity?.enter(this.positions.get(instance) ?? -1, hook, session);
    try {
      answer = call();
    } catch (err) {
      this.fail(instance, hook, session, "threw", err);
      return undefined;
    } finally {
      activity?.leave();
    }
    try {
      then = answer !== null && (typeof answer === "object" || typeof answer === "function") ? (answer as { then?: unknown }).then : undefined;
    } catch (err) {
      this.report(instance, hook, session, "invalid", `answered a value that cannot be read (${thrownMessage(err)})`, this.whereIs(instance, hook));
      return undefined;
    }
    if (typeof then !== "function") return answer;
    this.pending = new Promise<Settled>((resolve) => {
      let settled = false;
      const settle = (value: unknown, failure?: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        failure?.();
        resolve({ value });
      };
      const timer = setTimeout(
        () => settle(undefined, () => this.fail(instance, hook, session, "timed-out", new Error(`no answer within ${this.timeoutMs} ms`))),
        this.timeoutMs,
      );
      try {
        (then as PromiseLike<unknown>["then"]).call(
          answer,
          (value) => settle(value),
          (err: unknown) => settle(undefined, () => this.fail(instance, hook, session, "rejected", err)),
        );
      } catch (err) {
        settle(undefined, () => this.fail(instance, hook, session, "threw", err));
      }
    });
    return PENDING;
  }

  /** What the last PENDING answer of `invoke` settles to. */
  private pending: Promise<Settled> = Promise.resolve({ value: undefined });

  /** `invoke` for hooks whose answer is not used (lifecycle, onClose): resolves once it settled. */
  private async invokeIgnoring(instance: AddonInstance, hook: HookName, session: number | undefined, call: () => unknown): Promise<void> {
    if (this.invoke(instance, hook, session, call) === PENDING) await this.pending;
  }

  private fail(instance: AddonInstance, hook: HookName, session: number | undefined, kind: HookFailure["kind"], err: unknown): void {
    // A timeout has no stack of the addon's; a throw of a non-Error or from a package has none
    // that names the addon's files: then say where the hook itself is.
    const location = (kind === "timed-out" ? undefined : this.options.locate?.(err, instance.file)) ?? this.whereIs(instance, hook);
    this.report(instance, hook, session, kind, thrownMessage(err), location);
  }

  private report(
    instance: AddonInstance,
    hook: HookName,
    session: number | undefined,
    kind: HookFailure["kind"],
    message: string,
    location: string | undefined,
  ): void {
    this.failures++;
    this.options.events.hookFailed({
      addon: instance.name,
      hook,
      kind,
      message,
      ...(session === undefined ? {} : { session }),
      ...(location === undefined ? {} : { location }),
    });
  }

  /** Where `hook` of this addon version is defined, when the loader can tell. */
  private whereIs(instance: AddonInstance, hook: HookName): string | undefined {
    try {
      return (this.options.locateHook ?? defaultLocateHook)(instance, hook);
    } catch {
      return undefined;
    }
  }

  private async lifecycle(instance: AddonInstance, hook: "onLoad" | "onDispose"): Promise<boolean> {
    const fn = instance.addon[hook];
    if (fn === undefined) return true;
    const before = this.failures;
    await this.invokeIgnoring(instance, hook, undefined, () =>
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
    this.positions = new Map(this.addons.map((a, i) => [a, i]));
    this.hooked = perHook((hook) => this.addons.filter((a) => typeof a.addon[hook] === "function"));
  }

  private state(id: number, client: Endpoint | undefined, handle: SessionHandle): SessionState {
    let state = this.sessions.get(id);
    if (state === undefined) {
      state = { info: { id, client: client ?? { host: "?", port: 0 }, tags: {} }, handle, openedAt: Date.now(), contexts: new Map() };
      this.sessions.set(id, state);
    }
    this.markReplay(state);
    return state;
  }

  /** `session.replay` as the proxy's marks say now (read before each hook call of the session). */
  private markReplay(state: SessionState): void {
    const replay = this.replays.replayOf(state.info.id, state.info.client.port);
    if (replay === undefined) delete state.info.replay;
    else state.info.replay = replay;
  }

  /**
   * Runs a `ctx` helper for an addon. Helpers may be called at any time (from a timer after the
   * hook returned, too), so they never throw into the addon: bad arguments (`check` returns a
   * message) or an engine error are reported as a failure of the hook running for this addon
   * ("invalid", with the caller's file:line) and the call does nothing.
   */
  private guarded(instance: AddonInstance, state: SessionState, helper: string, call: () => string | undefined | void): void {
    let problem: string | undefined;
    try {
      problem = call() ?? undefined;
    } catch (err) {
      problem = thrownMessage(err);
    }
    if (problem === undefined) return;
    const where = this.options.locate?.(new Error(), instance.file);
    this.report(instance, state.hook ?? "onOpen", state.info.id, "invalid", `ctx.${helper}: ${problem} (ignored)`, where);
  }

  /** One context per session and addon version, made on first use. */
  private context(state: SessionState, instance: AddonInstance): HookContext {
    let ctx = state.contexts.get(instance);
    if (ctx === undefined) {
      const events = this.options.events;
      let messages: MessageHelper | undefined;
      ctx = {
        session: state.info,
        options: instance.options,
        get replayed() {
          return state.info.replay !== undefined;
        },
        tag: (key, value) =>
          this.guarded(instance, state, "tag", () => {
            const k = text(key);
            const v = text(value);
            state.info.tags[k] = v;
            events.tagged(state.info.id, instance.name, k, v);
          }),
        log: (message) => this.guarded(instance, state, "log", () => events.logged(state.info.id, instance.name, text(message))),
        inject: (direction: Direction, data) =>
          this.guarded(instance, state, "inject", () => {
            if (direction !== "up" && direction !== "down") return `direction must be "up" or "down", got ${describe(direction)}`;
            const bytes = payload(data);
            if (bytes === undefined) return `data must be a Uint8Array (a Buffer) or a string, got ${describe(data)}`;
            state.handle.inject(direction, bytes);
            return undefined;
          }),
        injectDatagram: (peer, data) =>
          this.guarded(instance, state, "injectDatagram", () => {
            const to = checkPeer(peer);
            if (isProblem(to)) return to.problem;
            const bytes = payload(data);
            if (bytes === undefined) return `data must be a Uint8Array (a Buffer) or a string, got ${describe(data)}`;
            state.handle.injectDatagram(to.value, bytes);
            return undefined;
          }),
        messages: (chunk, framing, edit) =>
          (messages ??= messageHelper({
            log: (line) => events.logged(state.info.id, instance.name, line),
            failed: (err) => this.fail(instance, "onData", state.info.id, "threw", err),
          }))(chunk, framing, edit),
      };
      state.contexts.set(instance, ctx);
    }
    return ctx;
  }
}

/** What `ctx.tag` and `ctx.log` store for any value (never throws). */
function text(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return String(value);
  } catch {
    return describe(value);
  }
}

function thrownMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === "string" ? err : describe(err);
}

function defaultLocateHook(instance: AddonInstance, hook: HookName): string | undefined {
  return hookLocation(instance.addon, hook);
}

/** An async answer once settled (boxed: an answer that is itself a thenable is not adopted). */
interface Settled {
  readonly value: unknown;
}

const PENDING = Symbol("pending");
