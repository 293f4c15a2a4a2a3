/**
 * One session in detail: a tab bar (overview | events | stream) and the active tab's lines from
 * `scroll` on. The lines come from `detailLines`, which the app uses too, to clamp `scroll`.
 */
import { Fragment, useMemo } from "react";
import { Box, Text } from "ink";
import type { DetailTab } from "../types.js";
import { clampScroll, conversationTurns, detailLines, type DetailContent, type DetailLine } from "./detail-lines.js";
import { targetText } from "./session-text.js";
import { displayWidth, truncate } from "./text.js";

export interface SessionDetailProps extends DetailContent {
  /** The first content line shown (0 = top); clamped so the last page stays full. */
  readonly scroll: number;
  /** Lines for the view: one for the tab bar, the rest for content. */
  readonly height: number;
  /** The content's lines when the caller has them already (`detailLines` of these props): not computed again. */
  readonly lines?: readonly DetailLine[];
}

const TABS: readonly DetailTab[] = ["overview", "events", "stream"];

/** Content lines per page for a view of `height` lines (the tab bar takes one). */
export function detailPageSize(height: number): number {
  return Math.max(1, height - 1);
}

function tabLabel(tab: DetailTab, props: SessionDetailProps): string {
  switch (tab) {
    case "overview":
      return "overview";
    case "events":
      return `events ${props.counts?.events ?? props.events.length}`.trimEnd();
    case "stream": {
      const udp = props.session.command === "udp";
      const count = props.counts?.stream ?? (udp ? props.datagrams.length : conversationTurns(props.chunks).length);
      return `${udp ? "datagrams" : "stream"} ${count}`.trimEnd();
    }
    default: {
      const never: never = tab;
      return never;
    }
  }
}

export function SessionDetail(props: SessionDetailProps) {
  const { session, events, chunks, datagrams, tab, mode, width, now, comparison, more, tls } = props;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `now` only matters for an open session's overview; the other props are listed
  const lines = useMemo(
    () =>
      props.lines ??
      detailLines({
        session,
        events,
        chunks,
        datagrams,
        tab,
        mode,
        width,
        ...(now === undefined ? {} : { now }),
        ...(comparison === undefined ? {} : { comparison }),
        ...(tls === undefined ? {} : { tls }),
        ...(more === undefined ? {} : { more }),
      }),
    // `now` only matters for an open session's overview.
    [
      props.lines,
      session,
      events,
      chunks,
      datagrams,
      tab,
      mode,
      width,
      comparison,
      tls,
      more,
      session.status === "open" && tab === "overview" ? now : undefined,
    ],
  );
  const page = detailPageSize(props.height);
  const start = clampScroll(lines.length, props.scroll, page);
  const shown = lines.slice(start, start + page);

  const labels = TABS.map((t) => ({ tab: t, text: t === tab ? `[${tabLabel(t, props)}]` : ` ${tabLabel(t, props)} ` }));
  const tabsWidth = labels.reduce((n, l) => n + displayWidth(l.text) + 1, 0);
  const position = lines.length <= page ? "" : `  ${start + 1}–${start + shown.length}/${lines.length}`;
  const info = truncate(`#${session.id} ${targetText(session)}${tab === "stream" ? `  mode ${mode}` : ""}${position}`, Math.max(0, width - tabsWidth - 1));

  return (
    <Box flexDirection="column" width={Math.max(1, width)} height={Math.max(1, props.height)}>
      <Text wrap="truncate-end">
        {labels.map((l) => (
          <Fragment key={l.tab}>
            <Text inverse={l.tab === tab} bold={l.tab === tab}>
              {l.text}
            </Text>{" "}
          </Fragment>
        ))}
        <Text dimColor> {info}</Text>
      </Text>
      {shown.map((line, i) => (
        <Text key={start + i} wrap="truncate-end" bold={line.bold === true} {...(line.color === undefined ? {} : { color: line.color })}>
          {line.text === "" ? " " : line.text}
        </Text>
      ))}
    </Box>
  );
}
