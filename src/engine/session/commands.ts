/** What the machine asks the I/O driver to do. Named in the imperative. */
import type { ProtocolErrorCode } from "../errors.js";
import type { AuthAttempt, CloseReason, RequestInfo } from "../ports.js";
import type { Endpoint, SocksAddress, SocksVersion } from "../types.js";

export type ReplyStage = "final" | "bind-first" | "bind-second" | "udp";

export type SessionCommand =
  /** Write bytes to the client. */
  | { readonly type: "SendToClient"; readonly bytes: Buffer }
  /** Decide an auth step; answer with AuthDecided. */
  | { readonly type: "AskAuth"; readonly attempt: AuthAttempt; readonly version: SocksVersion; readonly method?: number }
  /** Report a parsed request and decide it; answer with RequestDecided. */
  | { readonly type: "AskRequest"; readonly request: Omit<RequestInfo, "id" | "client"> }
  /** Dial the target; answer with UpstreamConnected or UpstreamFailed. */
  | { readonly type: "OpenUpstream"; readonly target: Endpoint }
  /**
   * BIND: listen on the control connection's local address for one inbound connection; answer
   * with BindListening (then BindPeerConnected or BindFailed) or BindFailed.
   */
  | { readonly type: "OpenBind" }
  /**
   * UDP ASSOCIATE: open a UDP relay for this client; `hint` is the request's DST (the address
   * the client says it will send from, often zeros). Answer with UdpRelayReady or UdpRelayFailed.
   */
  | { readonly type: "OpenUdpRelay"; readonly hint: SocksAddress }
  /** UDP ASSOCIATE succeeded: start relaying datagrams; the association ends with the TCP connection. */
  | { readonly type: "StartUdpRelay" }
  /**
   * Let hooks see the reply about to be sent; answer with ReplyDecided. `code`/`errno` describe
   * a failure; `target` is set when the engine dialled.
   */
  | {
      readonly type: "AskReply";
      /** Which reply: the only one (CONNECT), or BIND's first or second. */
      readonly stage: ReplyStage;
      readonly rep: number;
      readonly bound: Endpoint;
      readonly code?: ProtocolErrorCode;
      readonly errno?: string;
    }
  /** The handshake succeeded: relay, starting with these buffered client bytes. */
  | { readonly type: "StartRelay"; readonly early: Buffer }
  /** Report an auth outcome that needed no decision (no acceptable method). */
  | { readonly type: "ReportAuth"; readonly offered: readonly number[]; readonly method: number; readonly accepted: false }
  /** Record something out of spec. */
  | { readonly type: "ReportAnomaly"; readonly code: string; readonly detail: string }
  /** Close the client connection after everything sent so far has been flushed. */
  | { readonly type: "CloseClient"; readonly reason: CloseReason; readonly detail?: string };
