/**
 * The key bindings in a box. The app passes the bindings table (keys.ts), so what the help says is
 * what the keys do.
 */
import { Box, Text } from "ink";
import { displayWidth, fit, safe } from "./text.js";

export interface HelpOverlayProps {
  readonly bindings: readonly { readonly keys: string; readonly description: string }[];
}

/** One line per binding: the keys in a column as wide as the widest, then the description. */
export function helpLines(bindings: HelpOverlayProps["bindings"]): string[] {
  const keysWidth = Math.max(4, ...bindings.map((b) => displayWidth(safe(b.keys))));
  return bindings.map((b) => `${fit(safe(b.keys), keysWidth)}  ${safe(b.description)}`);
}

export function HelpOverlay(props: HelpOverlayProps) {
  return (
    <Box flexDirection="column" borderStyle="round" borderColor="cyan" paddingX={1} alignSelf="flex-start">
      <Text bold>keys</Text>
      {helpLines(props.bindings).map((line, i) => (
        <Text key={i} wrap="truncate-end">
          {line}
        </Text>
      ))}
      <Text dimColor>? or esc closes this help</Text>
    </Box>
  );
}
