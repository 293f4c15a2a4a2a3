/**
 * The per-connection handshake as a sans-IO state machine (docs/architecture.md, "Conventions"): the driver feeds
 * events, the machine returns commands. It never touches sockets, timers or clocks, so split,
 * byte-at-a-time and fuzzed input are cheap to test. After StartRelay the driver relays on its
 * own; the machine has reached its terminal phase.
 */
import { isIP } from "node:net";
import { REP, socks4Cd, socks5Rep, type ProtocolError, type ProtocolErrorCode } from "../errors.js";
import type { Endpoint, SocksAddress, SocksCommand, SocksVersion } from "../types.js";
import type { RequestDecision } from "../ports.js";
import type { Decoded } from "../codec/result.js";
import { checkDestination } from "../address-rules.js";
import { METHOD, decodeGreeting, decodeRequest, encodeMethodSelection, encodeReply } from "../codec/socks5.js";
import { USERPASS_FAILURE, USERPASS_SUCCESS, decodeUserPass, encodeUserPassStatus } from "../codec/userpass.js";
import { decodeSocks4Request, encodeSocks4Reply } from "../codec/socks4.js";
import type { ReplyStage, SessionCommand } from "./commands.js";
import type { SessionEvent } from "./events.js";
import { assertNever } from "../../lang/assert-never.js";

export interface MachineOptions {
  /**
   * Whether clients must authenticate. SOCKS5 clients then need username/password; SOCKS4
   * clients are refused (they have no password, and an auth hook cannot widen what --auth refuses).
   */
  readonly authRequired: boolean;
}

/** The phases of a handshake. Only the `awaiting-client` ones read client bytes. */
export type Phase =
  | { readonly name: "version" }
  | { readonly name: "greeting" }
  | { readonly name: "auth-decision"; readonly method: number }
  | { readonly name: "userpass" }
  | { readonly name: "request" }
  | { readonly name: "socks4-request" }
  | { readonly name: "request-decision" }
  | { readonly name: "connecting" }
  | { readonly name: "binding" }
  | { readonly name: "bind-waiting" }
  | { readonly name: "udp-opening" }
  /** The association runs; the TCP connection only says it is alive. */
  | { readonly name: "udp-associated" }
  | { readonly name: "reply-decision"; readonly rep: number; readonly stage: ReplyStage; readonly malformed?: string }
  | { readonly name: "relaying" }
  | { readonly name: "closed" };

/** The phases that carry nothing but their name: one shared object each, not one per transition. */
const PHASE = {
  version: { name: "version" },
  greeting: { name: "greeting" },
  userpass: { name: "userpass" },
  request: { name: "request" },
  "socks4-request": { name: "socks4-request" },
  "request-decision": { name: "request-decision" },
  connecting: { name: "connecting" },
  binding: { name: "binding" },
  "bind-waiting": { name: "bind-waiting" },
  "udp-opening": { name: "udp-opening" },
  "udp-associated": { name: "udp-associated" },
  relaying: { name: "relaying" },
  closed: { name: "closed" },
} as const;

const UNSPECIFIED: Endpoint = { host: "0.0.0.0", port: 0 };

/** Client bytes buffered while BIND waits for its peer; more is refused. */
export const BIND_EARLY_DATA_MAX = 64 * 1024;

export class SessionMachine {
  phase: Phase = PHASE.version;
  version: SocksVersion | undefined;
  command: SocksCommand | undefined;
  /** The target the engine dials (after redirects). */
  target: Endpoint | undefined;
  /** A hook chose to serve this CONNECT itself: there is no upstream. */
  served = false;
  private buffer: Buffer = EMPTY;
  private offered: readonly number[] = [];
  private request: { command: SocksCommand; destination: SocksAddress } | undefined;
  private sawUdpControlData = false;

  constructor(private readonly options: MachineOptions) {}

  /** True while the machine is waiting for client bytes; the driver pauses reading otherwise. */
  get wantsClientBytes(): boolean {
    const name = this.phase.name;
    return (
      name === "version" ||
      name === "greeting" ||
      name === "userpass" ||
      name === "request" ||
      name === "socks4-request" ||
      // BIND keeps reading while it waits, to notice a client that gives up; a UDP
      // association reads to notice the end of its control connection.
      name === "bind-waiting" ||
      name === "udp-associated"
    );
  }

  /** Client bytes held for a later phase (pipelined messages, early data). */
  get bufferedBytes(): number {
    return this.buffer.length;
  }

  /** True until the request has been read: the handshake timeout applies. */
  get readingHandshake(): boolean {
    return this.request === undefined && this.phase.name !== "closed";
  }

  /** Whether a FIN from the client now ends the session (before the request, or while BIND waits). */
  get endsOnClientFin(): boolean {
    return this.readingHandshake || this.phase.name === "bind-waiting" || this.phase.name === "udp-associated";
  }

  handle(event: SessionEvent): SessionCommand[] {
    const out: SessionCommand[] = [];
    const phase = this.phase;
    switch (event.type) {
      case "ClientBytesReceived":
        this.buffer = this.buffer.length === 0 ? event.bytes : Buffer.concat([this.buffer, event.bytes]);
        if (phase.name === "udp-associated") {
          this.reportUdpControlData(event.bytes.length, out);
          this.buffer = EMPTY;
        } else if (phase.name === "bind-waiting") {
          if (this.buffer.length > BIND_EARLY_DATA_MAX) {
            out.push({ type: "ReportAnomaly", code: "bind-early-data", detail: `more than ${BIND_EARLY_DATA_MAX} bytes sent before the BIND peer connected` });
            this.close("protocol-error", out, "too much data while waiting for the BIND peer");
          }
        } else if (this.wantsClientBytes) {
          this.decode(out);
        }
        break;
      case "AuthDecided":
        this.expect(phase, "auth-decision", event);
        this.onAuthDecided(event.accepted, out);
        break;
      case "RequestDecided":
        this.expect(phase, "request-decision", event);
        this.onRequestDecided(event.decision, out);
        break;
      case "UpstreamConnected":
        this.expect(phase, "connecting", event);
        this.askReply(REP.SUCCEEDED, event.bound, "final", out);
        break;
      case "UpstreamFailed":
        this.expect(phase, "connecting", event);
        this.askFailureReply(event.error.code, "final", out, event.errno);
        break;
      case "BindListening":
        this.expect(phase, "binding", event);
        this.askReply(REP.SUCCEEDED, event.bound, "bind-first", out);
        break;
      case "BindPeerConnected":
        this.expect(phase, "bind-waiting", event);
        this.onBindPeer(event.peer, out);
        break;
      case "UdpRelayReady":
        this.expect(phase, "udp-opening", event);
        this.askReply(REP.SUCCEEDED, event.bound, "udp", out);
        break;
      case "UdpRelayFailed":
        this.expect(phase, "udp-opening", event);
        this.askFailureReply(event.error.code, "udp", out, event.errno);
        break;
      case "BindFailed":
        if (phase.name !== "binding") this.expect(phase, "bind-waiting", event);
        this.askFailureReply(event.error.code, phase.name === "binding" ? "bind-first" : "bind-second", out, event.errno);
        break;
      case "ReplyDecided": {
        this.expect(phase, "reply-decision", event);
        const { stage } = phase as Extract<Phase, { name: "reply-decision" }>;
        this.sendReply(event.rep, event.bound, out);
        if (event.rep !== REP.SUCCEEDED) {
          const malformed = (phase as Extract<Phase, { name: "reply-decision" }>).malformed;
          if (malformed !== undefined) this.close("protocol-error", out, malformed);
          else this.close("request-failed", out);
        } else if (stage === "bind-first") {
          this.phase = PHASE["bind-waiting"];
        } else if (stage === "udp") {
          this.phase = PHASE["udp-associated"];
          out.push({ type: "StartUdpRelay" });
          if (this.buffer.length > 0) this.reportUdpControlData(this.buffer.length, out);
          this.buffer = EMPTY;
        } else {
          this.phase = PHASE.relaying;
          const early = this.buffer;
          this.buffer = EMPTY;
          out.push({ type: "StartRelay", early });
        }
        break;
      }
      default:
        return assertNever(event, "event");
    }
    return out;
  }

  /** Decodes as many buffered messages as the current phase allows. */
  private decode(out: SessionCommand[]): void {
    while (this.wantsClientBytes && this.buffer.length > 0) {
      const before = this.phase;
      switch (before.name) {
        case "version":
          this.onFirstByte(this.buffer[0]!, out);
          break;
        case "greeting":
          if (!this.step(decodeGreeting(this.buffer), out, (g) => this.onGreeting(g.methods, out))) return;
          break;
        case "userpass":
          if (
            !this.step(decodeUserPass(this.buffer), out, (c) =>
              this.askAuth({ method: "userpass", offered: this.offered, ...c }, METHOD.USERNAME_PASSWORD, out),
            )
          )
            return;
          break;
        case "request":
          if (
            !this.step(decodeRequest(this.buffer), out, (r) => {
              if (r.rsv !== 0) out.push({ type: "ReportAnomaly", code: "rsv-nonzero", detail: `request RSV = 0x${r.rsv.toString(16).padStart(2, "0")}` });
              this.onRequest(r.command, r.destination, out);
            })
          )
            return;
          break;
        case "socks4-request":
          if (
            !this.step(decodeSocks4Request(this.buffer), out, (r) => {
              this.version = r.version;
              this.request = { command: r.command, destination: r.destination };
              this.askAuth({ method: "socks4", userid: r.userid }, undefined, out);
            })
          )
            return;
          break;
        default:
          return;
      }
    }
  }

  /** Applies one decode result: consumes bytes and runs `then`, or fails. False = stop decoding. */
  private step<T>(result: Decoded<T>, out: SessionCommand[], then: (value: T) => void): boolean {
    switch (result.kind) {
      case "need-more":
        return false;
      case "error":
        this.failProtocol(result.error, out);
        return false;
      case "ok":
        this.buffer = this.buffer.length === result.used ? EMPTY : this.buffer.subarray(result.used);
        then(result.value);
        return true;
    }
  }

  private onFirstByte(byte: number, out: SessionCommand[]): void {
    if (byte === 0x05) {
      this.version = 5;
      this.phase = PHASE.greeting;
    } else if (byte === 0x04) {
      this.version = 4;
      this.phase = PHASE["socks4-request"];
    } else {
      const first = this.buffer.subarray(0, 16).toString("hex");
      out.push({ type: "ReportAnomaly", code: "not-socks", detail: `first bytes ${first}` });
      this.close("protocol-error", out, `not a SOCKS client (first byte 0x${byte.toString(16).padStart(2, "0")})`);
    }
  }

  private onGreeting(methods: readonly number[], out: SessionCommand[]): void {
    this.offered = methods;
    const method = this.chooseMethod(methods);
    if (method === METHOD.NO_ACCEPTABLE_METHODS) {
      out.push({ type: "ReportAuth", offered: methods, method, accepted: false });
      out.push({ type: "SendToClient", bytes: encodeMethodSelection(METHOD.NO_ACCEPTABLE_METHODS) });
      this.close("auth-failed", out, `no acceptable method among [${methods.join(", ")}]`);
    } else if (method === METHOD.USERNAME_PASSWORD) {
      out.push({ type: "SendToClient", bytes: encodeMethodSelection(method) });
      this.phase = PHASE.userpass;
    } else {
      this.askAuth({ method: "none", offered: methods }, method, out);
    }
  }

  /** Never a method the client did not offer (RFC 1928 §3). */
  private chooseMethod(offered: readonly number[]): number {
    const hasNone = offered.includes(METHOD.NO_AUTHENTICATION_REQUIRED);
    const hasUserPass = offered.includes(METHOD.USERNAME_PASSWORD);
    if (this.options.authRequired) return hasUserPass ? METHOD.USERNAME_PASSWORD : METHOD.NO_ACCEPTABLE_METHODS;
    if (hasNone) return METHOD.NO_AUTHENTICATION_REQUIRED;
    // A client that only offers username/password gets it; the credentials are recorded.
    if (hasUserPass) return METHOD.USERNAME_PASSWORD;
    return METHOD.NO_ACCEPTABLE_METHODS;
  }

  private askAuth(attempt: Extract<SessionCommand, { type: "AskAuth" }>["attempt"], method: number | undefined, out: SessionCommand[]): void {
    this.phase = { name: "auth-decision", method: method ?? -1 };
    out.push({ type: "AskAuth", attempt, version: this.version!, ...(method === undefined ? {} : { method }) });
  }

  private onAuthDecided(accepted: boolean, out: SessionCommand[]): void {
    const phase = this.phase as Extract<Phase, { name: "auth-decision" }>;
    if (this.version !== 5) {
      // SOCKS4: the request was already read together with the USERID.
      if (!accepted) {
        this.sendReply(REP.NOT_ALLOWED, UNSPECIFIED, out);
        this.close("auth-failed", out, "SOCKS4 client refused (authentication required)");
        return;
      }
      this.onRequest(this.request!.command, this.request!.destination, out);
      return;
    }
    if (phase.method === METHOD.USERNAME_PASSWORD) {
      out.push({ type: "SendToClient", bytes: encodeUserPassStatus(accepted ? USERPASS_SUCCESS : USERPASS_FAILURE) });
      if (!accepted) return this.close("auth-failed", out, "credentials rejected");
    } else {
      if (!accepted && this.offered.includes(METHOD.USERNAME_PASSWORD)) {
        // No-auth was refused (an onAuth addon wants to know who the client is): as with `--auth`,
        // select username/password when the client offered it, and decide again on the credentials.
        out.push({ type: "SendToClient", bytes: encodeMethodSelection(METHOD.USERNAME_PASSWORD) });
        this.phase = PHASE.userpass;
        this.decode(out);
        return;
      }
      if (!accepted) {
        out.push({ type: "SendToClient", bytes: encodeMethodSelection(METHOD.NO_ACCEPTABLE_METHODS) });
        return this.close("auth-failed", out, "client rejected before method selection");
      }
      out.push({ type: "SendToClient", bytes: encodeMethodSelection(phase.method) });
    }
    this.phase = PHASE.request;
    this.decode(out);
  }

  private onRequest(command: SocksCommand, destination: SocksAddress, out: SessionCommand[]): void {
    this.command = command;
    this.request = { command, destination };
    this.phase = PHASE["request-decision"];
    out.push({ type: "AskRequest", request: { version: this.version!, command, destination } });
  }

  private onRequestDecided(decision: RequestDecision, out: SessionCommand[]): void {
    const { command, destination } = this.request!;
    const stage: ReplyStage = command === "bind" ? "bind-first" : command === "udp" ? "udp" : "final";
    if (decision !== undefined && "deny" in decision) {
      const deny = decision.deny;
      if (typeof deny === "number") return this.askReply(deny, UNSPECIFIED, stage, out);
      return this.askFailureReply(deny, stage, out);
    }
    if (decision !== undefined && "serve" in decision) {
      if (command !== "connect") return this.askFailureReply("UNKNOWN_COMMAND", stage, out);
      this.served = true;
      return this.askReply(REP.SUCCEEDED, UNSPECIFIED, "final", out);
    }
    if (command === "bind") {
      // DST.ADDR/DST.PORT of a BIND name the expected peer, not something to dial.
      this.phase = PHASE.binding;
      out.push({ type: "OpenBind" });
      return;
    }
    let host = destination.host;
    let port = destination.port;
    if (decision !== undefined && "redirect" in decision) {
      host = decision.redirect.host ?? host;
      port = decision.redirect.port ?? port;
    }
    if (command === "udp") {
      if (this.version !== 5) return this.askFailureReply("UNKNOWN_COMMAND", stage, out);
      this.phase = PHASE["udp-opening"];
      out.push({ type: "OpenUdpRelay", hint: destination });
      return;
    }
    const invalid = checkDestination(host, port);
    if (invalid !== undefined) {
      out.push({ type: "ReportAnomaly", code: invalid.code === "BAD_PORT" ? "port-zero" : "bad-destination", detail: invalid.message });
      return this.askFailureReply(invalid.code, stage, out);
    }
    this.target = { host, port };
    this.phase = PHASE.connecting;
    out.push({ type: "OpenUpstream", target: this.target });
  }

  /** RFC 1928 gives a UDP ASSOCIATE control connection no further messages: bytes are ignored, once reported. */
  private reportUdpControlData(length: number, out: SessionCommand[]): void {
    if (this.sawUdpControlData) return;
    this.sawUdpControlData = true;
    out.push({ type: "ReportAnomaly", code: "udp-control-data", detail: `${length} bytes on a UDP ASSOCIATE control connection (ignored)` });
  }

  /**
   * BIND's peer check (SOCKS4.protocol, RFC 1928 §6): a non-zero DST.ADDR names the only IP
   * allowed to connect; the port is not checked. A domain cannot be checked without a lookup,
   * so it is recorded and any peer is accepted.
   */
  private onBindPeer(peer: Endpoint, out: SessionCommand[]): void {
    const expected = this.request!.destination;
    const any = expected.type === "domain" || expected.host === "0.0.0.0" || expected.host === "::";
    if (expected.type === "domain")
      out.push({ type: "ReportAnomaly", code: "bind-domain-unchecked", detail: `BIND expected peer ${expected.host} is a name; any peer accepted` });
    if (!any && expected.host !== peer.host) {
      out.push({ type: "ReportAnomaly", code: "bind-peer-mismatch", detail: `BIND peer ${peer.host} is not the expected ${expected.host}` });
      return this.askFailureReply("DENIED", "bind-second", out);
    }
    this.askReply(REP.SUCCEEDED, peer, "bind-second", out);
  }

  private askFailureReply(code: ProtocolErrorCode, stage: ReplyStage, out: SessionCommand[], errno?: string): void {
    const rep = socks5Rep(code);
    this.phase = { name: "reply-decision", rep, stage };
    out.push({ type: "AskReply", stage, rep, bound: UNSPECIFIED, code, ...(errno === undefined ? {} : { errno }) });
  }

  private askReply(rep: number, bound: Endpoint, stage: ReplyStage, out: SessionCommand[]): void {
    this.phase = { name: "reply-decision", rep, stage };
    out.push({ type: "AskReply", stage, rep, bound });
  }

  /** The full reply for the client's version (RFC 1928 §6 form, or the 8-byte SOCKS4 reply). */
  private sendReply(rep: number, bound: Endpoint, out: SessionCommand[]): void {
    if (this.version === 5) {
      out.push({ type: "SendToClient", bytes: encodeReply(rep, bound.host, bound.port) });
    } else {
      // SOCKS4 replies only carry IPv4; an IPv6 bound address is sent as zeros.
      const ip = isIP(bound.host) === 4 ? bound.host : "0.0.0.0";
      out.push({ type: "SendToClient", bytes: encodeSocks4Reply(socks4Cd(rep), bound.port, ip) });
    }
  }

  /**
   * A malformed message. A bad request still gets a full failure reply (through AskReply, so
   * hooks and observers see it like any other reply); a bad greeting or credentials get the
   * refusal of their step; then the connection closes.
   */
  private failProtocol(error: ProtocolError, out: SessionCommand[]): void {
    const phase = this.phase.name;
    const anomaly = { type: "ReportAnomaly", code: error.code.toLowerCase().replaceAll("_", "-"), detail: error.message } as const;
    if (phase === "request" || phase === "socks4-request") {
      out.push(anomaly);
      this.buffer = EMPTY;
      const rep = socks5Rep(error.code);
      this.phase = { name: "reply-decision", rep, stage: "final", malformed: error.message };
      out.push({ type: "AskReply", stage: "final", rep, bound: UNSPECIFIED, code: error.code });
      return;
    }
    if (phase === "greeting") out.push({ type: "SendToClient", bytes: encodeMethodSelection(METHOD.NO_ACCEPTABLE_METHODS) });
    else if (phase === "userpass") out.push({ type: "SendToClient", bytes: encodeUserPassStatus(USERPASS_FAILURE) });
    out.push(anomaly);
    this.close(phase === "userpass" ? "auth-failed" : "protocol-error", out, error.message);
  }

  private close(reason: Extract<SessionCommand, { type: "CloseClient" }>["reason"], out: SessionCommand[], detail?: string): void {
    this.phase = PHASE.closed;
    this.buffer = EMPTY;
    out.push(detail === undefined ? { type: "CloseClient", reason } : { type: "CloseClient", reason, detail });
  }

  /** An event the current phase cannot receive is a driver bug: fail loudly with both names. */
  private expect(phase: Phase, name: Phase["name"], event: SessionEvent): void {
    if (phase.name !== name) throw new Error(`session machine: ${event.type} in phase ${phase.name}`);
  }
}

const EMPTY = Buffer.alloc(0);
