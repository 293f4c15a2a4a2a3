/**
 * What the list area shows when there is nothing to list, and a box for an error that stops the
 * view (an unreadable capture, a query that failed).
 */
import { Box, Text } from "ink";
import { safe } from "./text.js";

export interface EmptyStateProps {
  /** "no-sessions": the capture is empty; "no-match": the filter matches nothing. */
  readonly kind: "no-sessions" | "no-match";
  /** The proxy's listen addresses, when it runs here (suggests where to point a client). */
  readonly listen?: readonly string[];
}

/** The empty state's lines. */
export function emptyStateLines(props: EmptyStateProps): string[] {
  if (props.kind === "no-match") return ["no sessions match the filter", "/ edits it, esc clears it"];
  const address = props.listen?.[0];
  if (address === undefined) return ["no sessions in this capture yet"];
  const at = safe(address);
  return [`no sessions yet — point a client at ${at}`, `e.g. curl --socks5-hostname ${at} http://example.com/`];
}

export function EmptyState(props: EmptyStateProps) {
  const [title, hint] = emptyStateLines(props);
  return (
    <Box flexDirection="column" paddingX={1} paddingY={1}>
      <Text bold>{title}</Text>
      {hint === undefined ? null : <Text dimColor>{hint}</Text>}
    </Box>
  );
}

export interface ErrorStateProps {
  readonly message: string;
  /** Default "error". */
  readonly title?: string;
}

export function ErrorState(props: ErrorStateProps) {
  return (
    <Box flexDirection="column" borderStyle="round" borderColor="red" paddingX={1} alignSelf="flex-start">
      <Text bold color="red">
        {safe(props.title ?? "error")}
      </Text>
      {props.message.split("\n").map((line, i) => (
        <Text key={i}>{safe(line)}</Text>
      ))}
    </Box>
  );
}
