/** The engine's public surface: what hooks, store, CLI and tests may import. */
export { SocksEngine, ListenError, DEFAULTS, formatEndpoint, type EngineOptions } from "./engine.js";
export { Credentials, parseCredential, parseCredentialFile } from "./credentials.js";
export * from "./ports.js";
export * from "./types.js";
export { REP, REP_NAMES, CD, type ProtocolErrorCode } from "./errors.js";
