/**
 * The status bar: where the sessions come from (a running proxy's listen addresses, or a file
 * being browsed), FOLLOW, how many items intercept holds paused and its filter, the filter, counts, the hosts whose client distrusts the CA (`run --tls`),
 * throughput, the capture file, addons, and on a second line a transient message, the last addon
 * error, problem, warning and information line (the app leaves out the ones that have expired or
 * that a key press dismissed: ../notes.ts). `? keys` stays at the right whatever the width.
 */
import { Box, Text } from "ink";
import { formatBytes } from "../../format/index.js";
import type { CaptureStats, LiveStatus } from "../types.js";
import { safe, shortLocation } from "./text.js";

export interface StatusBarProps {
  /** The capture file. */
  readonly file: string;
  readonly stats: CaptureStats;
  /** Present when attached to a running proxy; absent when browsing a file. */
  readonly live?: LiveStatus;
  /** The active filter's text. */
  readonly filter?: string;
  /** Sessions matching the filter (all sessions without one). */
  readonly shown: number;
  /** While a payload filter (`~`) is still being evaluated: how many sessions it has searched, of how many. */
  readonly searching?: { readonly searched: number; readonly total: number };
  readonly follow: boolean;
  /** A transient message, e.g. "exported session 3 to ./socksmith-3.json". */
  readonly message?: string;
  /** Interactive intercept, when the proxy has it: the filter ("" for none), the switch, and how many items are paused. */
  readonly intercept?: { readonly filter: string; readonly active: boolean; readonly paused: number };
}

/** A run of status text in one style; `text` is terminal-safe. */
export interface StatusSegment {
  readonly text: string;
  readonly color?: "red" | "yellow" | "green" | "cyan" | "magenta";
  readonly bold?: boolean;
  readonly inverse?: boolean;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The bar's lines (one, or two when there is a message or an error), as styled segments. */
export function statusLines(props: StatusBarProps): StatusSegment[][] {
  const { stats, live } = props;
  const gap: StatusSegment = { text: "  " };
  const first: StatusSegment[] = [];
  const add = (...segments: StatusSegment[]) => {
    if (first.length > 0) first.push(gap);
    first.push(...segments);
  };
  if (live === undefined) {
    add({ text: `browsing ${safe(props.file)} (read-only, ${formatBytes(stats.fileBytes)})`, bold: true });
  } else {
    add({ text: live.listen.length === 0 ? "not listening" : `listening ${live.listen.map(safe).join(", ")}`, bold: true, color: "green" });
    if (live.serverReplay !== undefined) add({ text: `serving from ${safe(live.serverReplay)}`, bold: true, color: "magenta" });
  }
  if (props.follow) add({ text: "FOLLOW", inverse: true, bold: true });
  // Paused items hold sessions until a person acts: first after the source, so it is cut last.
  const intercept = props.intercept;
  if (intercept !== undefined && intercept.paused > 0) add({ text: `${intercept.paused} paused`, inverse: true, bold: true, color: "magenta" });
  if (intercept !== undefined && intercept.filter !== "") {
    add({ text: `intercept ${safe(intercept.filter)}`, color: "magenta" }, ...(intercept.active ? [] : [{ text: " (off)", bold: true }]));
  }
  // The filter changes what the list means: it comes before the counts, which may be cut.
  if (props.filter !== undefined && props.filter !== "") {
    const searching = props.searching === undefined ? "" : `, searching… ${props.searching.searched} of ${plural(props.searching.total, "session")}`;
    add({ text: `filter ${safe(props.filter)}`, color: "cyan" }, { text: ` (${props.shown} shown${searching})` });
  }
  const open = live?.open ?? stats.open;
  add({ text: `${open} open / ${plural(stats.sessions, "session")}` });
  if (stats.failed > 0) add({ text: `${stats.failed} failed`, color: "red" });
  if (stats.denied > 0) add({ text: `${stats.denied} denied`, color: "red" });
  // Before the throughput: a reason to look (trust the CA in that client), so it is cut last.
  const distrusted = live?.tlsDistrusted ?? 0;
  if (distrusted > 0) add({ text: `${plural(distrusted, "host")} ${distrusted === 1 ? "distrusts" : "distrust"} the CA`, color: "yellow" });
  if (live !== undefined) {
    add({ text: `${formatBytes(live.bytesPerSecond)}/s` });
    add({ text: `capture ${safe(props.file)} (${formatBytes(stats.fileBytes)})` });
    if (live.addons.length > 0) add({ text: `addons ${live.addons.map(safe).join(", ")}` });
  }

  const second: StatusSegment[] = [];
  const note = (segment: StatusSegment) => {
    if (second.length > 0) second.push(gap);
    second.push(segment);
  };
  if (props.message !== undefined && props.message !== "") note({ text: safe(props.message), color: "green" });
  if (live?.lastAddonError !== undefined) note({ text: `addon error: ${safe(shortLocation(live.lastAddonError.text))}`, color: "red" });
  if (live?.lastError !== undefined) note({ text: `error: ${safe(live.lastError.text)}`, color: "red" });
  if (live?.lastWarning !== undefined) note({ text: `warning: ${safe(live.lastWarning.text)}`, color: "yellow" });
  // Information (an addon's ctx.log, an addon loaded): no label, not an error.
  if (live?.lastInfo !== undefined) note({ text: safe(live.lastInfo.text), color: "cyan" });
  return second.length === 0 ? [first] : [first, second];
}

const HINT = "? keys";

function Segments({ segments }: { segments: readonly StatusSegment[] }) {
  return (
    <Text wrap="truncate-end">
      {segments.map((s, i) => (
        <Text key={i} {...(s.color === undefined ? {} : { color: s.color })} bold={s.bold === true} inverse={s.inverse === true}>
          {s.text}
        </Text>
      ))}
    </Text>
  );
}

export function StatusBar(props: StatusBarProps) {
  const [first, second] = statusLines(props);
  return (
    <Box flexDirection="column">
      <Box flexDirection="row">
        <Box flexGrow={1} flexShrink={1} overflow="hidden">
          <Segments segments={first!} />
        </Box>
        <Box flexShrink={0} marginLeft={1}>
          <Text dimColor>{HINT}</Text>
        </Box>
      </Box>
      {second === undefined ? null : <Segments segments={second} />}
    </Box>
  );
}
