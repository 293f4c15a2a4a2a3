/**
 * Interactive intercept's views: the paused item at the top of the detail view (what it is, the
 * keys that act on it, its first bytes), the request form (`e` on a paused request), and the still
 * frame drawn while the editor has the terminal.
 */
import { Box, Text } from "ink";
import { hexDump, looksLikeText, printable } from "../../format/index.js";
import { describePaused, type FormField, type PausedItem, pausedKeys, type RequestForm } from "../intercept.js";
import { safe, truncate } from "./text.js";

export interface PausedBannerProps {
  /** The session's paused items, oldest first; the first is the one the keys act on. */
  readonly items: readonly PausedItem[];
  readonly width: number;
}

/** Lines of the banner: none without items; else what is paused, the keys, and its first two lines of text (or of hex dump). */
export function pausedLines(items: readonly PausedItem[], width: number): string[] {
  const item = items[0];
  if (item === undefined) return [];
  const more = items.length > 1 ? ` (+${items.length - 1} more)` : "";
  const lines = [`PAUSED ${describePaused(item)}${more}`, pausedKeys(item)];
  if (item.kind !== "request" && item.data.length > 0) {
    const head = item.data.subarray(0, 512);
    const preview = looksLikeText(head) ? printable(head, { utf8: true, maxLength: 400 }).split("\n") : hexDump(item.data.subarray(0, 32));
    lines.push(...preview.slice(0, 2).map((l) => `  ${l}`));
  }
  return lines.map((l) => truncate(safe(l), Math.max(1, width)));
}

export function PausedBanner(props: PausedBannerProps) {
  const lines = pausedLines(props.items, props.width);
  if (lines.length === 0) return null;
  return (
    <Box flexDirection="column" width={Math.max(1, props.width)}>
      {lines.map((line, i) => (
        <Text key={i} wrap="truncate-end" color="magenta" bold={i === 0} {...(i === 0 ? { inverse: true } : {})}>
          {line}
        </Text>
      ))}
    </Box>
  );
}

const LABELS: Readonly<Record<FormField, string>> = { host: "host", port: "port", rep: "or deny with REP" };

/** The form's first line as plain text (the field being edited in brackets with a cursor mark). */
export function requestFormLine(form: RequestForm): string {
  const shown = (Object.keys(LABELS) as FormField[]).filter((f) => form.item.kind === "request" || f !== "rep");
  const fields = shown.map((f) => `${LABELS[f]} ${f === form.field ? `[${form.values[f]}_]` : `[${form.values[f]}]`}`);
  if (form.item.kind === "datagram") return `redirect ${describePaused(form.item)} → ${fields.join("  ")}`;
  return `request ${describePaused(form.item).replace(/^request /, "")} → ${fields.join("  ")}`;
}

export function RequestFormBar(props: { readonly form: RequestForm; readonly width: number }) {
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end" color="magenta">
        {safe(requestFormLine(props.form))}
      </Text>
      <Text dimColor wrap="truncate-end">
        {props.form.item.kind === "datagram"
          ? "tab next field enter send it to host:port esc cancel"
          : "tab next field enter send (a REP denies, else resume to host:port) esc cancel"}
      </Text>
      {props.form.error === undefined ? null : (
        <Text color="red" wrap="truncate-end">
          {safe(props.form.error)}
        </Text>
      )}
    </Box>
  );
}

/** Drawn, unchanging, while the editor has the terminal (a frame that changes would be written over the editor). */
export function EditingState(props: { readonly item: PausedItem }) {
  return <Text>{safe(`editing ${describePaused(props.item)} in the editor: socksmith resumes when it exits`)}</Text>;
}
