/** What happens to a session, fed to the machine by the I/O driver. Named in the past tense. */
import type { ProtocolError } from "../errors.js";
import type { Endpoint } from "../types.js";
import type { RequestDecision } from "../ports.js";

export type SessionEvent =
  /** Bytes arrived from the client. */
  | { readonly type: "ClientBytesReceived"; readonly bytes: Buffer }
  /** The auth step asked for by AskAuth was decided (hooks, then the credential policy). */
  | { readonly type: "AuthDecided"; readonly accepted: boolean }
  /** The request asked about by AskRequest was decided. */
  | { readonly type: "RequestDecided"; readonly decision: RequestDecision }
  /** The upstream connection is open. */
  | { readonly type: "UpstreamConnected"; readonly bound: Endpoint }
  /** The upstream connection failed. */
  | { readonly type: "UpstreamFailed"; readonly error: ProtocolError; readonly errno?: string }
  /** BIND: the listener asked for by OpenBind is listening here. */
  | { readonly type: "BindListening"; readonly bound: Endpoint }
  /** BIND: a peer connected to the listener (the listener is closed now). */
  | { readonly type: "BindPeerConnected"; readonly peer: Endpoint }
  /** BIND: no listener could be opened, or no peer came before the BIND timeout. */
  | { readonly type: "BindFailed"; readonly error: ProtocolError; readonly errno?: string }
  /** UDP ASSOCIATE: the relay socket asked for by OpenUdpRelay is bound here. */
  | { readonly type: "UdpRelayReady"; readonly bound: Endpoint }
  /** UDP ASSOCIATE: no relay could be opened (limit reached, bind failed). */
  | { readonly type: "UdpRelayFailed"; readonly error: ProtocolError; readonly errno?: string }
  /** The reply asked about by AskReply is final. */
  | { readonly type: "ReplyDecided"; readonly rep: number; readonly bound: Endpoint };
