/** Protocol detection from a session's first client bytes. */
export { DETECT_LIMIT, type Detection, type DetectionKind } from "./detection.js";
export { detectProtocol } from "./detect-protocol.js";
export { ProtocolSniffer } from "./protocol-sniffer.js";
export { HTTP_METHODS, HTTP2_PREFACE } from "./http-request.js";
export { SSH_BANNER_MAX } from "./ssh-banner.js";
export { tlsVersionName } from "./tls-client-hello.js";
