/** Plain formatting functions for the CLI and the TUI: pure, total, tested on their own. */
export { hexDump, type HexDumpOptions } from "./hex-dump.js";
export { printable, looksLikeText, TEXT_SCAN_LIMIT, type PrintableOptions } from "./printable.js";
export { formatBytes, formatDuration, formatTime, type FormatTimeOptions } from "./quantities.js";
export { formatReply, formatEndpoint } from "./socks.js";
export { formatTarget } from "./session.js";
export { safeText, safeJson } from "./safe-text.js";
export { parseHexDump, formatHexParseError, type HexParseError, type HexParseResult } from "./hex-parse.js";
