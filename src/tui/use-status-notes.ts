/**
 * What the status bar says besides the totals: the app's own messages ("exported session 3 …"),
 * cleared after MESSAGE_MS or by the next key, and the running proxy's notes, which a key press
 * also dismisses (which ones, and for how long: notes.ts). Errors about the proxy's state stay.
 */
import { useRef, useState } from "react";
import { MESSAGE_MS, visibleNotes } from "./notes.js";
import type { LiveStatus } from "./types.js";

export interface StatusNotes {
  /** The proxy's status with the notes still to show (undefined when browsing a file). */
  readonly live: LiveStatus | undefined;
  /** The app's message, while it shows. */
  readonly message: string | undefined;
  /** Shows a message (undefined: none). */
  say(text: string | undefined): void;
  /** A key was pressed: the message and the notes on screen go. */
  dismiss(): void;
}

export function useStatusNotes(live: (() => LiveStatus) | undefined): StatusNotes {
  const [message, setMessage] = useState<string | undefined>(undefined);
  // When the message was set, and the last key press (notes older than it are dismissed).
  const messageAt = useRef(0);
  const dismissedAt = useRef(0);
  const reported = live?.();
  return {
    live: reported === undefined ? undefined : visibleNotes(reported, Date.now(), dismissedAt.current),
    message: message !== undefined && Date.now() - messageAt.current < MESSAGE_MS ? message : undefined,
    say: (text) => {
      messageAt.current = Date.now();
      setMessage(text);
    },
    dismiss: () => {
      setMessage(undefined);
      dismissedAt.current = Date.now();
    },
  };
}
