/** The engine's public surface: all that the layers above it (hooks, store, replay, format, CLI, TUI) import from it. */
export { SocksEngine, ListenError, DEFAULTS, formatEndpoint, type EngineOptions } from "./engine.js";
export { DestinationRules, DestinationRuleError, type RuleAction, type RuleSource } from "./destination-rules.js";
export { Credentials, parseCredential, parseCredentialFile } from "./credentials.js";
export * from "./ports.js";
export * from "./tls-ports.js";
export { receivePrelude } from "./io/raw-stream.js";
export * from "./upstream.js";
export * from "./types.js";
export { REP, REP_NAMES, CD, socks4Cd, type ProtocolErrorCode } from "./errors.js";
// The client's side of the wire formats, for code that speaks SOCKS to a proxy (client replay).
export { encodeGreeting, decodeMethodSelection, encodeRequest, decodeReply, type Greeting, type Socks5Request, type Socks5Reply } from "./codec/socks5.js";
export { encodeUserPass, type UserPassRequest } from "./codec/userpass.js";
export { encodeUdpDatagram, decodeUdpDatagram, type UdpDatagram } from "./codec/udp.js";
export type { Decoded } from "./codec/result.js";
