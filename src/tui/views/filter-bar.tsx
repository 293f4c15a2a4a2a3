/**
 * The filter being typed: a `/` prompt, the text with its cursor and, when the filter did not
 * parse, a caret under the offending column and the message (as `formatFilterError` prints them).
 */
import { Box, Text } from "ink";
import { displayWidth, safe } from "./text.js";

export interface FilterBarProps {
  readonly text: string;
  /** Cursor position in `text`, in UTF-16 code units (0 = before the first character). */
  readonly cursor: number;
  /** From a FilterError: `column` is 1-based in UTF-16 code units, `text.length + 1` for "missing at the end". */
  readonly error?: { readonly column: number; readonly message: string };
  /** What the bar is for, drawn before the text (default "/": the list's filter; "intercept " for `i`). */
  readonly prompt?: string;
}

const PROMPT = "/";

/**
 * The filter text as drawn: each control character becomes one space (as in formatFilterError),
 * so every character keeps one place and the caret stays under its column.
 */
export function filterDisplayText(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").replace(/[\p{Cf}\p{Co}\p{Cs}\p{Cn}\p{Zl}\p{Zp}]/gu, (c) => " ".repeat(c.length));
}

/** Spaces before the caret for an error at `column` (1-based), the prompt included. */
export function caretOffset(text: string, column: number, prompt = PROMPT): number {
  const before = filterDisplayText(text).slice(0, Math.max(0, Math.min(text.length, column - 1)));
  const past = Math.max(0, column - 1 - text.length);
  return displayWidth(prompt) + displayWidth(before) + past;
}

export function FilterBar(props: FilterBarProps) {
  const shown = filterDisplayText(props.text);
  const cursor = Math.max(0, Math.min(shown.length, props.cursor));
  const atCursor = shown.slice(cursor, cursor + 1);
  const prompt = props.prompt ?? PROMPT;
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-start">
        <Text bold color="cyan">
          {prompt}
        </Text>
        {shown.slice(0, cursor)}
        <Text inverse>{atCursor === "" ? " " : atCursor}</Text>
        {shown.slice(cursor + 1)}
      </Text>
      {props.error === undefined ? null : (
        <>
          <Text color="red">{" ".repeat(caretOffset(props.text, props.error.column, prompt))}^</Text>
          <Text color="red" wrap="truncate-end">
            {safe(props.error.message)}
          </Text>
        </>
      )}
    </Box>
  );
}
