/**
 * A small playbook for the sans-IO session machine (after mitmproxy's tutils.Playbook): feed
 * one event, assert the exact commands that come back. Plus an auto-driver that answers every
 * question the machine asks, for chunking-equivalence and fuzz tests.
 */
import { expect } from "vitest";
import { SessionMachine, type MachineOptions } from "../../../src/engine/session/machine.js";
import type { ReplyStage, SessionCommand } from "../../../src/engine/session/commands.js";
import type { SessionEvent } from "../../../src/engine/session/events.js";
import type { CloseReason, RequestDecision } from "../../../src/engine/ports.js";
import type { ProtocolErrorCode } from "../../../src/engine/errors.js";
import type { Endpoint, SocksAddress, SocksCommand, SocksVersion } from "../../../src/engine/types.js";
import { fingerprint, hex } from "../codec/fixtures.js";

type Bytes = string | Uint8Array;
const bytesOf = (b: Bytes): Buffer => (typeof b === "string" ? hex(b) : Buffer.from(b));

// ---------------------------------------------------------------------------------------------
// Events (what the driver feeds)
// ---------------------------------------------------------------------------------------------

export const received = (bytes: Bytes): SessionEvent => ({ type: "ClientBytesReceived", bytes: bytesOf(bytes) });
export const authDecided = (accepted: boolean): SessionEvent => ({ type: "AuthDecided", accepted });
export const requestDecided = (decision: RequestDecision): SessionEvent => ({ type: "RequestDecided", decision });
export const upstreamConnected = (host: string, port: number): SessionEvent => ({ type: "UpstreamConnected", bound: { host, port } });
export const upstreamFailed = (code: ProtocolErrorCode, errno?: string): SessionEvent => ({
  type: "UpstreamFailed",
  error: { code, message: `connect failed: ${code}` },
  ...(errno === undefined ? {} : { errno }),
});
export const replyDecided = (rep: number, host = "0.0.0.0", port = 0): SessionEvent => ({ type: "ReplyDecided", rep, bound: { host, port } });
export const bindListening = (host: string, port: number): SessionEvent => ({ type: "BindListening", bound: { host, port } });
export const bindPeerConnected = (host: string, port: number): SessionEvent => ({ type: "BindPeerConnected", peer: { host, port } });
export const bindFailed = (code: ProtocolErrorCode, errno?: string): SessionEvent => ({
  type: "BindFailed",
  error: { code, message: `bind failed: ${code}` },
  ...(errno === undefined ? {} : { errno }),
});
export const udpRelayReady = (host: string, port: number): SessionEvent => ({ type: "UdpRelayReady", bound: { host, port } });
export const udpRelayFailed = (code: ProtocolErrorCode, errno?: string): SessionEvent => ({
  type: "UdpRelayFailed",
  error: { code, message: `udp relay failed: ${code}` },
  ...(errno === undefined ? {} : { errno }),
});

// ---------------------------------------------------------------------------------------------
// Commands (what the machine must answer)
// ---------------------------------------------------------------------------------------------

export const sendToClient = (bytes: Bytes): SessionCommand => ({ type: "SendToClient", bytes: bytesOf(bytes) });

export const askAuthNone = (offered: readonly number[]): SessionCommand => ({
  type: "AskAuth",
  attempt: { method: "none", offered },
  version: 5,
  method: 0x00,
});

export const askAuthUserPass = (offered: readonly number[], user: Bytes, password: Bytes): SessionCommand => ({
  type: "AskAuth",
  attempt: {
    method: "userpass",
    offered,
    user: typeof user === "string" ? Buffer.from(user, "latin1") : Buffer.from(user),
    password: typeof password === "string" ? Buffer.from(password, "latin1") : Buffer.from(password),
  },
  version: 5,
  method: 0x02,
});

/** SOCKS4 has no method: the command carries no `method` key at all. */
export const askAuthSocks4 = (version: 4 | "4a", userid: string): SessionCommand => ({
  type: "AskAuth",
  attempt: { method: "socks4", userid: Buffer.from(userid, "latin1") },
  version,
});

export const askRequest = (version: SocksVersion, command: SocksCommand, destination: SocksAddress): SessionCommand => ({
  type: "AskRequest",
  request: { version, command, destination },
});

export const openUpstream = (host: string, port: number): SessionCommand => ({ type: "OpenUpstream", target: { host, port } });

/** AskReply for the only reply of a CONNECT (stage "final"). */
export const askReply = (rep: number, bound: Endpoint, code?: ProtocolErrorCode, errno?: string): SessionCommand =>
  askReplyAt("final", rep, bound, code, errno);

/** AskReply for a given stage: BIND's first or second reply, or UDP ASSOCIATE's. */
export const askReplyAt = (stage: ReplyStage, rep: number, bound: Endpoint, code?: ProtocolErrorCode, errno?: string): SessionCommand => ({
  type: "AskReply",
  stage,
  rep,
  bound,
  ...(code === undefined ? {} : { code }),
  ...(errno === undefined ? {} : { errno }),
});

export const openBind: SessionCommand = { type: "OpenBind" };
export const openUdpRelay = (hint: SocksAddress): SessionCommand => ({ type: "OpenUdpRelay", hint });
export const startUdpRelay: SessionCommand = { type: "StartUdpRelay" };

export const startRelay = (early: Bytes = ""): SessionCommand => ({ type: "StartRelay", early: bytesOf(early) });

export const reportAuthRefused = (offered: readonly number[]): SessionCommand => ({ type: "ReportAuth", offered, method: 0xff, accepted: false });

/** The detail is prose for humans; the code is the contract. */
export const reportAnomaly = (code: string): SessionCommand => ({ type: "ReportAnomaly", code, detail: expect.any(String) as string });

/** Every close carries a human detail except the plain request-failed close after a reply. */
export const closeClient = (reason: CloseReason): SessionCommand =>
  reason === "request-failed" ? { type: "CloseClient", reason } : { type: "CloseClient", reason, detail: expect.any(String) as string };

export const UNSPECIFIED: Endpoint = { host: "0.0.0.0", port: 0 };

/** A full 10-byte SOCKS5 failure reply with 0.0.0.0:0. */
export const socks5Failure = (rep: number): Buffer => Buffer.from([0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
/** An 8-byte SOCKS4 reply with VN 0 and 0.0.0.0:0. */
export const socks4Reply = (cd: number): Buffer => Buffer.from([0x00, cd, 0, 0, 0, 0, 0, 0]);

// ---------------------------------------------------------------------------------------------
// The playbook
// ---------------------------------------------------------------------------------------------

export class Playbook {
  readonly machine: SessionMachine;

  constructor(options: MachineOptions = { authRequired: false }) {
    this.machine = new SessionMachine(options);
  }

  /** Feeds one event and asserts the exact list of commands it produced. */
  on(event: SessionEvent, ...expected: SessionCommand[]): this {
    const actual = this.machine.handle(event);
    expect(actual, `after ${describeEvent(event)} in phase ${this.machine.phase.name}`).toEqual(expected);
    return this;
  }

  /** Feeds bytes one per event: every byte but the last yields nothing, the last yields `expected`. */
  trickle(bytes: Bytes, ...expected: SessionCommand[]): this {
    const all = bytesOf(bytes);
    all.forEach((byte, i) => {
      if (i < all.length - 1) this.on(received(Buffer.of(byte)));
      else this.on(received(Buffer.of(byte)), ...expected);
    });
    return this;
  }

  /** Asserts the machine's phase. */
  phase(name: SessionMachine["phase"]["name"]): this {
    expect(this.machine.phase.name).toBe(name);
    return this;
  }
}

function describeEvent(event: SessionEvent): string {
  return event.type === "ClientBytesReceived" ? `ClientBytesReceived(${event.bytes.toString("hex")})` : event.type;
}

// ---------------------------------------------------------------------------------------------
// The auto-driver
// ---------------------------------------------------------------------------------------------

/** How the auto-driver answers the machine's questions. */
export interface Answers {
  /** AuthDecided.accepted (default true). */
  readonly auth?: boolean;
  /** RequestDecided.decision (default allow). */
  readonly decision?: RequestDecision;
  /** How OpenUpstream ends (default connected, bound BOUND). */
  readonly upstream?: Outcome;
  /** How OpenBind ends (default listening on BIND_BOUND; the peer BIND_PEER connects at once). */
  readonly bind?: Outcome;
  readonly bindPeer?: Endpoint;
  /** How OpenUdpRelay ends (default ready on UDP_BOUND). */
  readonly udp?: Outcome;
}

export type Outcome = { readonly bound: Endpoint } | { readonly error: ProtocolErrorCode; readonly errno?: string };

export interface Transcript {
  /** Every command, in order. */
  readonly commands: SessionCommand[];
  /** StartRelay.early followed by every byte read after the relay started. */
  readonly relayed: Buffer;
  readonly machine: SessionMachine;
}

export const BOUND: Endpoint = { host: "127.0.0.1", port: 54321 };
export const BIND_BOUND: Endpoint = { host: "127.0.0.1", port: 40000 };
export const BIND_PEER: Endpoint = { host: "127.0.0.1", port: 50000 };
export const UDP_BOUND: Endpoint = { host: "127.0.0.1", port: 40002 };

/**
 * Plays an I/O driver: feeds each chunk as a read, answers every question right away (AskReply
 * is confirmed unchanged; a BIND peer connects as soon as the first reply is out), stops
 * feeding the machine once it closed or started a TCP relay (bytes read after StartRelay go to
 * the relay). A UDP association's control connection keeps being read.
 */
export function drive(options: MachineOptions, chunks: readonly Uint8Array[], answers: Answers = {}): Transcript {
  const machine = new SessionMachine(options);
  const commands: SessionCommand[] = [];
  const relayed: Buffer[] = [];
  // An object, so that the closure's updates are not narrowed away.
  const status: { state: "handshake" | "relaying" | "closed" } = { state: "handshake" };
  let peerSent = false;

  const settle = (outcome: Outcome, ok: (e: Endpoint) => SessionEvent, failed: (code: ProtocolErrorCode, errno?: string) => SessionEvent) =>
    "bound" in outcome ? ok(outcome.bound) : failed(outcome.error, outcome.errno);

  const run = (first: SessionEvent) => {
    const queue = [first];
    for (let event = queue.shift(); event !== undefined; event = queue.shift()) {
      for (const c of machine.handle(event)) {
        commands.push(c);
        switch (c.type) {
          case "AskAuth":
            queue.push(authDecided(answers.auth ?? true));
            break;
          case "AskRequest":
            queue.push(requestDecided(answers.decision ?? { allow: true }));
            break;
          case "OpenUpstream":
            queue.push(settle(answers.upstream ?? { bound: BOUND }, (b) => upstreamConnected(b.host, b.port), upstreamFailed));
            break;
          case "OpenBind":
            queue.push(settle(answers.bind ?? { bound: BIND_BOUND }, (b) => bindListening(b.host, b.port), bindFailed));
            break;
          case "OpenUdpRelay":
            queue.push(settle(answers.udp ?? { bound: UDP_BOUND }, (b) => udpRelayReady(b.host, b.port), udpRelayFailed));
            break;
          case "AskReply":
            queue.push(replyDecided(c.rep, c.bound.host, c.bound.port));
            break;
          case "StartRelay":
            status.state = "relaying";
            relayed.push(c.early);
            break;
          case "CloseClient":
            status.state = "closed";
            break;
          case "StartUdpRelay":
          case "SendToClient":
          case "ReportAuth":
          case "ReportAnomaly":
            break;
          default:
            return assertNever(c);
        }
      }
      if (machine.phase.name === "bind-waiting" && !peerSent) {
        peerSent = true;
        const peer = answers.bindPeer ?? BIND_PEER;
        queue.push(bindPeerConnected(peer.host, peer.port));
      }
    }
  };

  for (const chunk of chunks) {
    if (status.state === "closed") break;
    if (status.state === "relaying") relayed.push(Buffer.from(chunk));
    else run(received(chunk));
  }
  return { commands, relayed: Buffer.concat(relayed), machine };
}

/**
 * A transcript as comparable text: the commands and the relayed bytes. StartRelay loses its
 * early bytes (they are in `relayed`), and human-readable details are blanked: codes are the
 * contract, prose may mention how many bytes a read carried.
 */
export function transcriptFingerprint(t: Transcript): string {
  const commands = t.commands.map((c) => {
    if (c.type === "StartRelay") return { type: "StartRelay" };
    if (c.type === "ReportAnomaly" || (c.type === "CloseClient" && c.detail !== undefined)) return { ...c, detail: "…" };
    return c;
  });
  return fingerprint({ commands, relayed: t.relayed });
}

function assertNever(value: never): never {
  throw new Error(`unexpected command ${JSON.stringify(value)}`);
}
