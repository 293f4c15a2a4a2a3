/**
 * One UDP ASSOCIATE association (RFC 1928 §6–7).
 *
 * - The client-facing socket is bound to the IP the client's TCP connection arrived on (same
 *   family), so replies come from the address the client sends to; its port goes in BND.PORT.
 * - Only the TCP client's IP may use it. When the request named the client's own IP (or zeros)
 *   and a port, only that port; otherwise the port locks on the first datagram. A request that
 *   put some other address in DST (the common client mistake of naming the destination) is
 *   accepted from the TCP client's IP and recorded as an anomaly.
 * - One outbound socket per address family, created when first needed, so every destination
 *   sees the same source port (endpoint-independent mapping, what STUN and games expect).
 * - Replies are wrapped with the remote's address. Replies from hosts the client never sent to
 *   are dropped unless `allowUnsolicited` (address-dependent filtering).
 * - Anything that cannot be relayed is dropped and reported with a reason; the association goes on.
 *   A destination the rules refuse (`check`: a name before it is resolved, then the address it
 *   resolved to; an address once) is dropped as "denied", the rule in the detail.
 * - Memory is bounded per association (docs/architecture.md, "Trust rules"): datagrams waiting for an async hook or a
 *   name lookup are at most MAX_WAITING (count) and MAX_WAITING_BYTES; beyond, a datagram is
 *   dropped as "backlog" (UDP cannot be paused). Concurrent lookups of one name share one query.
 * - Through a SOCKS5 upstream (`throughUpstream`, before `open`): every datagram goes to the hop's
 *   relay from one socket, wrapped in the SOCKS5 UDP header addressed to its real destination
 *   (socks5h sends a name as the name, socks5 resolves it here as above); what the hop's relay
 *   sends back is unwrapped and reported as coming from the peer its header names. The rules
 *   check each destination as without an upstream (a name the hop resolves only by its name).
 *   Replies from a peer never sent to are dropped as above, except that after a datagram went
 *   to a name the hop resolved, the hop's own filtering decides (socksmith never learns that
 *   name's address). The hop's control connection lives as long as the association: its end
 *   ends the association (an `upstream-association-ended` anomaly says why).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { isIP, type Socket } from "node:net";
import type { Endpoint, SocksAddress } from "../types.js";
import type { Clock, ClockTimer, DatagramDropReason, DatagramFact, DatagramVerdict, EngineObserver, HookRunner, Lookup, SessionHandle } from "../ports.js";
import { normalizeHost } from "../codec/address.js";
import { MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6, UdpHeaderMemo, decodeUdpDatagram, encodeUdpDatagram, encodeUdpHeader, udpHeaderLength } from "../codec/udp.js";
import { checkDestination } from "../address-rules.js";
import { callHook } from "./call-hook.js";

export interface UdpOptions {
  /** Relay datagrams from remote hosts the client never sent to. */
  readonly allowUnsolicited: boolean;
  /** Distinct remote hosts one association may send to. */
  readonly maxPeers: number;
  /** Close the association after this long without a datagram; 0 = only when TCP ends. */
  readonly idleTimeoutMs: number;
}

/** What the association needs from its session. */
export interface UdpHost {
  readonly id: number;
  readonly observer: EngineObserver;
  readonly hooks: HookRunner;
  readonly handle: SessionHandle;
  now(): number;
  hookFailed(hook: string, err: unknown): void;
  anomaly(code: string, detail: string): void;
  /**
   * The association ended on its own: its idle timeout, or (through an upstream) the hop closed
   * or reset the control connection (a socket error is an anomaly and does not end it).
   */
  udpEnded(reason: "idle-timeout" | "completed" | "target-reset" | "target-error", errno?: string): void;
}

/** The SOCKS5 hop's association that carries this one's datagrams (see the file comment). */
export interface UdpUpstream {
  /** The hop's UDP relay: an IP address (`associateThrough` gives one). */
  readonly relay: Endpoint;
  /** socks5h: destination names are sent as names; socks5: they are resolved here. */
  readonly sendsNames: boolean;
  /** The control connection to the hop (paused, its reader's sink discarding); the association owns it from here. */
  readonly control: Socket;
  /** Names the hop in anomalies (`hop 1 socks5://…`, never its credentials). */
  readonly label: string;
}

/**
 * The association only ever sends to IP literals of the socket's family (names are resolved
 * before), so dgram's per-send lookup can answer at once instead of deferring every datagram by
 * a tick, and without parsing the address again.
 */
function literalLookup4(address: string, _options: unknown, callback: (err: null, address: string, family: number) => void): void {
  callback(null, address, 4);
}

function literalLookup6(address: string, _options: unknown, callback: (err: null, address: string, family: number) => void): void {
  callback(null, address, 6);
}

function udpSocket(family: 4 | 6): UdpSocket {
  return family === 6
    ? createSocket({ type: "udp6", ipv6Only: true, lookup: literalLookup6 as never })
    : createSocket({ type: "udp4", lookup: literalLookup4 as never });
}

/** Datagrams (and their bytes) of one association that may wait for a hook or a lookup at once. */
export const MAX_WAITING = 256;
export const MAX_WAITING_BYTES = 1024 * 1024;

/** How long a resolved name is reused, and a failure remembered. */
const DNS_TTL_MS = 60_000;
const DNS_NEGATIVE_TTL_MS = 5_000;

export class UdpAssociation {
  bytesUp = 0;
  bytesDown = 0;
  private readonly client: UdpSocket;
  private outbound4: UdpSocket | undefined;
  private outbound6: UdpSocket | undefined;
  /** The client's source port, fixed by the request or locked by the first datagram. */
  private clientPort: number | undefined;
  /** Set while the port came from the request and no datagram has confirmed it. */
  private announced: SocksAddress | undefined;
  private seq = 0;
  private readonly peers = new Set<string>();
  private readonly names = new Map<string, { address: string | undefined; expires: number }>();
  /** Lookups under way, with the datagrams waiting for each. */
  private readonly resolving = new Map<string, ((ip: string | undefined, errno?: string) => void)[]>();
  /** Datagrams waiting for a hook's verdict or a lookup, and their bytes (see MAX_WAITING). */
  waiting = 0;
  waitingBytes = 0;
  private readonly withHooks: boolean;
  private idleTimer: ClockTimer | undefined;
  /** Datagrams' times are taken only for the idle timeout (a clock read per datagram otherwise wasted). */
  private readonly timed: boolean;
  private lastActivity = 0;
  /** An observer takes datagram facts (else none is built, nor their endpoints). */
  private readonly reporting: boolean;
  private closed = false;
  private readonly maxToClient: number;
  private upstream: UdpUpstream | undefined;
  /** The one socket that talks to the upstream hop's relay. */
  private via: UdpSocket | undefined;
  /** Set once a datagram went to a name the upstream hop resolves (see the file comment). */
  private sentToNames = false;

  // Per-datagram shortcuts: an association usually talks to one peer at a time, so what was
  // worked out for the last client address, destination and remote sender is kept and reused
  // while they repeat (same results as working it out again; docs/architecture.md has no rule
  // they could bypass: the source checks ran when they were set, and the rules are asked again).
  /** The client's endpoint once a datagram passed the source checks, and rinfo.address as it came then. */
  private clientFrom: Endpoint | undefined;
  private clientWire = "";
  private readonly headers = new UdpHeaderMemo();
  /** The last IP destination (an address object of `headers`) and where it goes. */
  private upTarget: SocksAddress | undefined;
  private upTo: Endpoint | undefined;
  /** The last destination host sent to (already in `peers`). */
  private lastPeer = "";
  /** The last remote sender as rinfo gave it, and its endpoint and SOCKS address. */
  private remoteWire = "";
  private remotePort = -1;
  private remoteFrom: Endpoint = { host: "", port: 0 };
  private remotePeer: SocksAddress = { type: "ipv4", host: "", port: 0 };
  /** The header last written toward the client, and the peer it names. */
  private downHeader: Buffer | undefined;
  private downHost = "";
  private downPort = -1;

  constructor(
    private readonly host: UdpHost,
    /** The TCP client's IP: the only source allowed. */
    private readonly clientIp: string,
    /** The IP the TCP connection arrived on: the relay socket binds here. */
    private readonly localIp: string,
    hint: SocksAddress,
    private readonly options: UdpOptions,
    /** Resolves datagram destinations given as names; the first address is used. */
    private readonly lookup: Lookup,
    /** Times the idle timeout and the name cache (the engine's clock). */
    private readonly clock: Clock,
    /** The destination rules (`resolved`: the address a name resolved to): the rule refusing it, or undefined. */
    private readonly check?: (host: string, port: number, resolved?: string) => string | undefined,
  ) {
    const family = isIP(localIp) === 6 ? 6 : 4;
    this.maxToClient = family === 6 ? MAX_UDP_PAYLOAD_V6 : MAX_UDP_PAYLOAD_V4;
    this.client = udpSocket(family);
    this.withHooks = host.hooks.wantsDatagrams();
    this.timed = options.idleTimeoutMs > 0;
    this.reporting = host.observer.datagram !== undefined;
    const zero = hint.host === "0.0.0.0" || hint.host === "::";
    if (hint.type !== "domain" && (zero || normalizeHost(hint.host) === clientIp)) {
      if (hint.port !== 0) {
        this.clientPort = hint.port;
        this.announced = hint;
      }
    } else {
      host.anomaly(
        "udp-dst-misuse",
        `UDP ASSOCIATE named ${hint.host}:${hint.port}, not the client's address ${clientIp}; accepting datagrams from ${clientIp}, port locked on the first one`,
      );
    }
  }

  /**
   * Sends every datagram through the upstream hop's association (call before `open`). From now
   * the control connection is watched: its end ends the association, even before `open` is done.
   */
  throughUpstream(upstream: UdpUpstream): void {
    this.upstream = { ...upstream, relay: { host: normalizeHost(upstream.relay.host), port: upstream.relay.port } };
    const { control, label } = upstream;
    const ended = (reason: "completed" | "target-reset" | "target-error", text: string, errno?: string): void => {
      if (this.closed) return;
      this.host.anomaly("upstream-association-ended", `${label}: ${text}`);
      this.host.udpEnded(reason, errno);
    };
    control.on("end", () => ended("completed", "closed the UDP ASSOCIATE control connection"));
    control.on("error", (err: NodeJS.ErrnoException) =>
      ended(err.code === "ECONNRESET" ? "target-reset" : "target-error", `UDP ASSOCIATE control connection failed: ${err.code ?? err.message}`, err.code),
    );
    control.on("close", () => ended("completed", "closed the UDP ASSOCIATE control connection"));
    // RFC 1928 gives the control connection nothing more to say: whatever comes is discarded.
    control.resume();
  }

  /** Binds the client-facing socket (and, through an upstream, the one toward the hop); calls back with BND.ADDR/BND.PORT or the bind error. */
  open(callback: (err: NodeJS.ErrnoException | undefined, bound?: Endpoint) => void): void {
    const onError = (err: NodeJS.ErrnoException): void => callback(err);
    this.client.once("error", onError);
    this.client.bind({ address: this.localIp, port: 0 }, () => {
      this.client.removeListener("error", onError);
      this.client.on("error", (err) => this.socketError("client", err));
      const ready = (): void => {
        if (this.closed) return;
        this.client.on("message", this.onClientMessage);
        const { address, port } = this.client.address();
        if (this.options.idleTimeoutMs > 0) this.armIdle();
        callback(undefined, { host: normalizeHost(address), port });
      };
      if (this.upstream === undefined) return ready();
      this.openVia(this.upstream, (err) => (err === undefined ? ready() : callback(err)));
    });
  }

  /**
   * Binds the socket toward the hop's relay, on the address our control connection comes from
   * (the hop accepts datagrams only from its TCP client's address, RFC 1928 §7).
   */
  private openVia(upstream: UdpUpstream, callback: (err: NodeJS.ErrnoException | undefined) => void): void {
    const family = isIP(upstream.relay.host);
    if (family === 0) {
      return callback(Object.assign(new Error(`the upstream's relay ${upstream.relay.host} is not an IP address`), { code: "EINVAL" }));
    }
    const socket = udpSocket(family === 6 ? 6 : 4);
    this.via = socket;
    const local = normalizeHost(upstream.control.localAddress ?? "");
    const onError = (err: NodeJS.ErrnoException): void => callback(err);
    socket.once("error", onError);
    socket.bind({ port: 0, ...(isIP(local) === family ? { address: local } : {}) }, () => {
      socket.removeListener("error", onError);
      socket.on("error", (err) => this.socketError("target", err));
      socket.on("message", this.onUpstreamMessage);
      callback(undefined);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimeout(this.idleTimer);
    this.upstream?.control.destroy();
    for (const socket of [this.client, this.outbound4, this.outbound6, this.via]) {
      if (socket === undefined) continue;
      try {
        socket.close();
      } catch {
        // Not bound yet or already closed: nothing to release.
      }
    }
  }

  // --- client → remote -------------------------------------------------------------------------

  private readonly onClientMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const seq = this.seq++;
    if (this.timed) this.lastActivity = this.clock.now();
    const decoded = this.headers.decode(msg);
    let from = this.clientFrom;
    if (from === undefined || rinfo.port !== from.port || rinfo.address !== this.clientWire) {
      from = this.admit(msg, rinfo, seq, decoded);
      if (from === undefined) return;
    }
    if (decoded.kind !== "ok") {
      const error = decoded.kind === "error" ? decoded.error : { code: "UDP_TRUNCATED", message: "truncated" };
      return this.drop("up", seq, from, msg, error.code === "UNKNOWN_ADDRESS_TYPE" ? "bad-address-type" : "bad-header", error.message);
    }
    const { frag, address, data } = decoded.value;
    if (frag !== 0) return this.drop("up", seq, from, data, "fragmented", `FRAG = ${frag}`, address);
    if (!this.withHooks) return this.sendUp(seq, from, address, data, undefined, address);
    if (this.backlogged(data.length)) return this.drop("up", seq, from, data, "backlog", this.backlogDetail(), address);
    this.askHook({ id: this.host.id, direction: "up", seq, peer: address, data }, (verdict) => {
      if (verdict === undefined) return this.sendUp(seq, from, address, data, undefined, address);
      if ("drop" in verdict) return this.drop("up", seq, from, data, "hook", "dropped by a hook", address);
      if (!("redirect" in verdict)) return this.sendUp(seq, from, address, data, verdict.replace, address);
      const target: SocksAddress = {
        ...address,
        host: verdict.redirect.host ?? address.host,
        port: verdict.redirect.port ?? address.port,
        ...(verdict.redirect.host === undefined
          ? {}
          : { type: isIP(verdict.redirect.host) === 6 ? "ipv6" : isIP(verdict.redirect.host) === 4 ? "ipv4" : "domain" }),
      };
      this.sendUp(seq, from, address, data, verdict.replace, target);
    });
  };

  /**
   * The source checks (the client's IP, then its port, locked or announced): the datagram's
   * `from`, or undefined once it was dropped. A datagram that passes sets `clientFrom`, after
   * which the same source skips them.
   */
  private admit(msg: Buffer, rinfo: RemoteInfo, seq: number, decoded: ReturnType<typeof decodeUdpDatagram>): Endpoint | undefined {
    const from = { host: normalizeHost(rinfo.address), port: rinfo.port };
    if (from.host !== this.clientIp) {
      this.drop("up", seq, from, msg, "foreign-source-ip", `from ${from.host}, client is ${this.clientIp}`);
      return undefined;
    }
    if (this.clientPort === undefined) {
      this.clientPort = from.port;
    } else if (from.port !== this.clientPort) {
      if (!this.isMisusedAnnouncement(decoded)) {
        this.drop("up", seq, from, msg, "foreign-source-port", `from port ${from.port}, client uses ${this.clientPort}`);
        return undefined;
      }
      // The request named this datagram's destination, not the client's own port: the
      // common client mistake (gost#96, redsocks#210). Serve the real source port.
      this.host.anomaly(
        "udp-dst-misuse",
        `UDP ASSOCIATE named ${this.announced!.host}:${this.announced!.port}, which is the destination; the client sends from port ${from.port}`,
      );
      this.clientPort = from.port;
    }
    this.announced = undefined;
    this.clientFrom = from;
    this.clientWire = rinfo.address;
    return from;
  }

  /** Whether a datagram from an unannounced port is addressed to the announced "source". */
  private isMisusedAnnouncement(decoded: ReturnType<typeof decodeUdpDatagram>): boolean {
    const announced = this.announced;
    if (announced === undefined || decoded.kind !== "ok") return false;
    const { address } = decoded.value;
    return address.port === announced.port && normalizeHost(address.host) === normalizeHost(announced.host);
  }

  /** Resolves (if needed) and sends one payload to its destination. */
  private sendUp(seq: number, from: Endpoint, peer: SocksAddress, received: Buffer, replaced: Uint8Array | undefined, target: SocksAddress): void {
    if (target === this.upTarget) return this.sendToIp(seq, from, peer, received, replaced, this.upTo!, undefined);
    const invalid = checkDestination(target.host, target.port);
    if (invalid !== undefined) return this.drop("up", seq, from, received, "bad-destination", invalid.message, peer);
    if (target.type !== "domain" || isIP(target.host) !== 0) {
      const to = { host: normalizeHost(target.host), port: target.port };
      this.upTarget = target;
      this.upTo = to;
      return this.sendToIp(seq, from, peer, received, replaced, to, undefined);
    }
    const payload = replaced ?? received;
    // A denied name is not even resolved.
    const denied = this.check?.(target.host, target.port);
    if (denied !== undefined) return this.drop("up", seq, from, received, "denied", `${target.host}: ${denied}`, peer);
    // socks5h: the hop resolves the name.
    if (this.upstream?.sendsNames === true) return this.forward(seq, from, peer, received, replaced, { host: target.host, port: target.port });
    const cached = this.names.get(target.host);
    if ((cached === undefined || cached.expires <= this.clock.now()) && this.backlogged(payload.length)) {
      return this.drop("up", seq, from, received, "backlog", this.backlogDetail(), peer);
    }
    this.resolve(target.host, payload.length, (ip, errno) => {
      if (ip === undefined) return this.drop("up", seq, from, received, "dns-failed", `lookup ${target.host}: ${errno}`, peer);
      this.sendToIp(seq, from, peer, received, replaced, { host: ip, port: target.port }, target.host);
    });
  }

  /** Sends to `to`, an IP address (`name` resolved to it), unless the rules refuse it. */
  private sendToIp(
    seq: number,
    from: Endpoint,
    peer: SocksAddress,
    received: Buffer,
    replaced: Uint8Array | undefined,
    to: Endpoint,
    name: string | undefined,
  ): void {
    if (this.closed) return;
    const rule = this.check?.(name ?? to.host, to.port, to.host);
    if (rule !== undefined)
      return this.drop("up", seq, from, received, "denied", `${name === undefined ? "" : `${name} resolved to `}${to.host}: ${rule}`, peer);
    this.forward(seq, from, peer, received, replaced, to);
  }

  /**
   * Sends one checked payload to `to` (an IP address; through a socks5h upstream also a name)
   * directly, or wrapped to the upstream hop's relay, and reports it.
   */
  private forward(seq: number, from: Endpoint, peer: SocksAddress, received: Buffer, replaced: Uint8Array | undefined, to: Endpoint): void {
    const payload = replaced ?? received;
    if (to.host !== this.lastPeer) {
      if (!this.peers.has(to.host)) {
        if (this.peers.size >= this.options.maxPeers)
          return this.drop("up", seq, from, received, "peer-limit", `more than ${this.options.maxPeers} destinations`, peer);
        this.peers.add(to.host);
      }
      this.lastPeer = to.host;
    }
    const upstream = this.upstream;
    if (upstream === undefined) {
      // `to.host` is IP text here (names were resolved): only IPv6 has a colon.
      const family = to.host.includes(":") ? 6 : 4;
      const max = family === 6 ? MAX_UDP_PAYLOAD_V6 : MAX_UDP_PAYLOAD_V4;
      if (payload.length > max) return this.drop("up", seq, from, received, "too-large", `${payload.length} bytes exceed ${max} (EMSGSIZE)`, peer);
      this.outbound(family).send(payload, to.port, to.host);
    } else {
      const size = udpHeaderLength(to.host) + payload.length;
      const max = isIP(upstream.relay.host) === 6 ? MAX_UDP_PAYLOAD_V6 : MAX_UDP_PAYLOAD_V4;
      if (size > max) return this.drop("up", seq, from, received, "too-large", `${size} bytes with the SOCKS header exceed ${max} (EMSGSIZE)`, peer);
      this.via!.send(encodeUdpDatagram(to.host, to.port, payload), upstream.relay.port, upstream.relay.host);
      if (isIP(to.host) === 0) this.sentToNames = true;
    }
    this.bytesUp += payload.length;
    if (this.reporting) this.report("up", seq, from, peer, received, replaced, to, "relayed", undefined, undefined);
  }

  /** Calls back with the name's address (cached, or after one lookup shared by every datagram waiting for it). */
  private resolve(name: string, bytes: number, callback: (ip: string | undefined, errno?: string) => void): void {
    const now = this.clock.now();
    const cached = this.names.get(name);
    if (cached !== undefined && cached.expires > now) return callback(cached.address, "ENOTFOUND (cached)");
    this.waiting++;
    this.waitingBytes += bytes;
    const waiter = (ip: string | undefined, errno?: string): void => {
      this.waiting--;
      this.waitingBytes -= bytes;
      callback(ip, errno);
    };
    const queued = this.resolving.get(name);
    if (queued !== undefined) return void queued.push(waiter);
    this.resolving.set(name, [waiter]);
    this.lookup(name, (err, addresses) => {
      const address = err ? undefined : addresses[0]?.address;
      const usable = address === undefined || address === "0.0.0.0" || address === "::" ? undefined : normalizeHost(address);
      this.names.set(name, { address: usable, expires: this.clock.now() + (usable === undefined ? DNS_NEGATIVE_TTL_MS : DNS_TTL_MS) });
      if (this.names.size > 1024) this.names.delete(this.names.keys().next().value!);
      const waiters = this.resolving.get(name) ?? [];
      this.resolving.delete(name);
      for (const w of waiters) w(usable, err?.code ?? (usable === undefined ? "ENOTFOUND" : undefined));
    });
  }

  /** Whether one more datagram of `bytes` would be more than may wait at once. */
  private backlogged(bytes: number): boolean {
    return this.waiting >= MAX_WAITING || this.waitingBytes + bytes > MAX_WAITING_BYTES;
  }

  private backlogDetail(): string {
    return `${this.waiting} datagrams (${this.waitingBytes} bytes) already wait for a hook or a lookup`;
  }

  private outbound(family: 4 | 6): UdpSocket {
    const existing = family === 4 ? this.outbound4 : this.outbound6;
    if (existing !== undefined) return existing;
    const socket = udpSocket(family);
    socket.bind(0);
    socket.on("message", this.onRemoteMessage);
    socket.on("error", (err) => this.socketError("target", err));
    if (family === 4) this.outbound4 = socket;
    else this.outbound6 = socket;
    return socket;
  }

  // --- remote → client -------------------------------------------------------------------------

  private readonly onRemoteMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (rinfo.port !== this.remotePort || rinfo.address !== this.remoteWire) {
      const host = normalizeHost(rinfo.address);
      this.remoteWire = rinfo.address;
      this.remotePort = rinfo.port;
      this.remoteFrom = { host, port: rinfo.port };
      this.remotePeer = { type: isIP(host) === 6 ? "ipv6" : "ipv4", host, port: rinfo.port };
    }
    const seq = this.seq++;
    if (this.timed) this.lastActivity = this.clock.now();
    this.fromRemote(seq, this.remoteFrom, this.remotePeer, msg);
  };

  /** A datagram from the upstream hop's relay: unwrapped, then as if `from` the peer its header names. */
  private readonly onUpstreamMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const relay = this.upstream!.relay;
    const wire = { host: normalizeHost(rinfo.address), port: rinfo.port };
    const seq = this.seq++;
    if (this.timed) this.lastActivity = this.clock.now();
    if (wire.host !== relay.host || wire.port !== relay.port) {
      return this.drop("down", seq, wire, msg, "unsolicited", `${wire.host}:${wire.port} is not the upstream's relay ${relay.host}:${relay.port}`);
    }
    const decoded = decodeUdpDatagram(msg);
    if (decoded.kind !== "ok") {
      const error = decoded.kind === "error" ? decoded.error : { code: "UDP_TRUNCATED", message: "truncated" };
      const reason = error.code === "UNKNOWN_ADDRESS_TYPE" ? "bad-address-type" : "bad-header";
      return this.drop("down", seq, wire, msg, reason, `from the upstream's relay: ${error.message}`);
    }
    const { frag, address, data } = decoded.value;
    if (frag !== 0) return this.drop("down", seq, wire, data, "fragmented", `from the upstream's relay: FRAG = ${frag}`, address);
    const host = normalizeHost(address.host);
    this.fromRemote(seq, { host, port: address.port }, { ...address, host }, data);
  };

  /** A datagram from `from` (the remote peer) for the client: the unsolicited check, the hook, then the client. */
  private fromRemote(seq: number, from: Endpoint, peer: SocksAddress, msg: Buffer): void {
    const hopFilters = this.upstream !== undefined && this.sentToNames;
    if (!this.options.allowUnsolicited && !this.peers.has(from.host) && !hopFilters) {
      return this.drop("down", seq, from, msg, "unsolicited", `${from.host} was never sent to`, peer);
    }
    if (!this.withHooks) return this.sendDown(seq, from, peer, msg, undefined);
    if (this.backlogged(msg.length)) return this.drop("down", seq, from, msg, "backlog", this.backlogDetail(), peer);
    this.askHook({ id: this.host.id, direction: "down", seq, peer, data: msg }, (verdict) => {
      if (verdict === undefined || "redirect" in verdict) return this.sendDown(seq, from, peer, msg, undefined);
      if ("drop" in verdict) return this.drop("down", seq, from, msg, "hook", "dropped by a hook", peer);
      this.sendDown(seq, from, peer, msg, verdict.replace);
    });
  }

  private sendDown(seq: number, from: Endpoint, peer: SocksAddress, received: Buffer, replaced: Uint8Array | undefined): void {
    if (this.closed || this.clientPort === undefined) return;
    const payload = replaced ?? received;
    if (from.host !== this.downHost || from.port !== this.downPort) {
      // A new header only for a new peer: the one sent before may still be queued in the socket.
      this.downHeader = encodeUdpHeader(from.host, from.port);
      this.downHost = from.host;
      this.downPort = from.port;
    }
    const header = this.downHeader!;
    const size = header.length + payload.length;
    if (size > this.maxToClient) {
      return this.drop("down", seq, from, received, "too-large", `${size} bytes with the SOCKS header exceed ${this.maxToClient} (EMSGSIZE)`, peer);
    }
    // Header and payload as two pieces of one datagram (sendmsg with two iovecs): no copy.
    this.client.send([header, payload], this.clientPort, this.clientIp);
    this.bytesDown += payload.length;
    if (this.reporting) this.report("down", seq, from, peer, received, replaced, this.clientEndpoint(), "relayed", undefined, undefined);
  }

  /** Where datagrams for the client go: its endpoint (call once its port is known). */
  private clientEndpoint(): Endpoint {
    const from = this.clientFrom;
    return from !== undefined && from.port === this.clientPort ? from : { host: this.clientIp, port: this.clientPort! };
  }

  /** A hook's datagram for the client, as if from `peer` (ignored before the client's first datagram). */
  inject(peer: Endpoint, data: Uint8Array): void {
    if (this.closed || this.clientPort === undefined) return;
    const host = normalizeHost(peer.host);
    const from = { host, port: peer.port };
    const seq = this.seq++;
    const received = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const type = isIP(host) === 6 ? "ipv6" : isIP(host) === 4 ? "ipv4" : "domain";
    const size = udpHeaderLength(host) + data.length;
    if (size > this.maxToClient)
      return this.drop("down", seq, from, received, "too-large", `${size} bytes with the SOCKS header exceed ${this.maxToClient} (EMSGSIZE)`, {
        type,
        ...from,
      });
    this.client.send(encodeUdpDatagram(host, peer.port, data), this.clientPort, this.clientIp);
    this.bytesDown += data.length;
    this.report("down", seq, from, { type, ...from }, received, undefined, this.clientEndpoint(), "injected", undefined, undefined);
  }

  // --- shared ----------------------------------------------------------------------------------

  private askHook(info: Parameters<HookRunner["datagram"]>[0], then: (verdict: DatagramVerdict) => void): void {
    const bytes = info.data.length;
    let pending = false;
    pending = callHook<DatagramVerdict>(
      () => this.host.hooks.datagram(info, this.host.handle),
      (err) => this.host.hookFailed("datagram", err),
      (verdict) => {
        // Only an async verdict was counted as waiting (a sync one runs before `pending` is set).
        if (pending) {
          this.waiting--;
          this.waitingBytes -= bytes;
        }
        if (!this.closed) then(verdict);
      },
    );
    // An async verdict: the datagram waits (counted against MAX_WAITING) until it comes.
    if (pending) {
      this.waiting++;
      this.waitingBytes += bytes;
    }
  }

  private drop(direction: "up" | "down", seq: number, from: Endpoint, received: Buffer, reason: DatagramDropReason, detail: string, peer?: SocksAddress): void {
    this.report(direction, seq, from, peer, received, undefined, undefined, "dropped", reason, detail);
  }

  /** One fact, always of the same shape (absent fields are undefined) so observers' reads stay monomorphic. */
  private report(
    direction: "up" | "down",
    seq: number,
    from: Endpoint,
    peer: SocksAddress | undefined,
    received: Buffer,
    sent: Uint8Array | undefined,
    to: Endpoint | undefined,
    verdict: DatagramFact["verdict"],
    reason: DatagramDropReason | undefined,
    detail: string | undefined,
  ): void {
    const observer = this.host.observer;
    if (observer.datagram === undefined) return;
    observer.datagram({ id: this.host.id, direction, seq, at: this.host.now(), peer, from, received, sent, to, verdict, reason, detail });
  }

  private socketError(side: "client" | "target", err: NodeJS.ErrnoException): void {
    // A send can fail (EMSGSIZE, ENETUNREACH…); the association itself goes on.
    this.host.anomaly("udp-socket-error", `${side} side: ${err.code ?? err.message}`);
  }

  private armIdle(): void {
    this.lastActivity = this.clock.now();
    const check = (): void => {
      // Datagrams waiting for a hook (a person may hold them: interactive intercept) count as activity.
      if (this.waiting > 0) this.lastActivity = this.clock.now();
      const idle = this.clock.now() - this.lastActivity;
      if (idle >= this.options.idleTimeoutMs) return this.host.udpEnded("idle-timeout");
      this.idleTimer = this.clock.setTimeout(check, this.options.idleTimeoutMs - idle);
    };
    this.idleTimer = this.clock.setTimeout(check, this.options.idleTimeoutMs);
  }
}
