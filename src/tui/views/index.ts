/**
 * The TUI's views: pure functions of their props (docs/architecture.md, "Conventions"). They hold no state but what is
 * purely visual, do no I/O, and draw only terminal-safe text. The plain helpers behind them are
 * exported for the app (paging the detail view) and for tests.
 */
export {
  SessionList,
  sessionColumns,
  sessionListLines,
  isPausedRow,
  layoutColumns,
  type SessionListProps,
  type SessionCells,
  type ColumnKey,
  type ColumnLayout,
} from "./session-list.js";
export { PausedBanner, pausedLines, RequestFormBar, requestFormLine, EditingState, type PausedBannerProps } from "./paused-item.js";
export { FilterBar, caretOffset, filterDisplayText, type FilterBarProps } from "./filter-bar.js";
export { StatusBar, statusLines, type StatusBarProps, type StatusSegment } from "./status-bar.js";
export { SessionDetail, detailPageSize, type SessionDetailProps } from "./session-detail.js";
export {
  detailLines,
  clampScroll,
  conversationTurns,
  hexWidth,
  MAX_BLOCK_BYTES,
  MAX_DETAIL_LINES,
  WINDOW_MARKERS,
  type DetailLine,
  type DetailColour,
  type DetailContent,
  type ReplayComparison,
} from "./detail-lines.js";
export { HelpOverlay, helpLines, type HelpOverlayProps } from "./help-overlay.js";
export { EmptyState, ErrorState, emptyStateLines, type EmptyStateProps, type ErrorStateProps } from "./states.js";
export {
  sessionTone,
  statusText,
  targetText,
  tlsMarker,
  viaMarker,
  durationText,
  protocolText,
  endpointText,
  isRedirected,
  type SessionTone,
} from "./session-text.js";
export { safe, displayWidth, charWidth, truncate, fit, wrap, tagsText, shortLocation } from "./text.js";
