/**
 * Handing the terminal to a child process (the editor, `e`) and taking it back, without blocking
 * the relay's thread.
 *
 * The terminal leaves raw mode for the editor (set on the TTY itself, so Ink's own count of raw
 * mode users is untouched) and comes back to it after. Stopping to listen is not enough: a TTY
 * stream that has started reading keeps reading into its buffer, so the editor would lose
 * keystrokes to this process (and the TUI would read them as commands afterwards).
 * `releaseInput` stops the stream's handle the way net.Socket does when its buffer is full
 * (`_handle.readStop()`, `reading = false`: Node internals, checked before use; without them the
 * editor still runs, competing for keys, and the TUI drops what it reads meanwhile), and its
 * result starts it again the way net.Socket's `_read` does.
 */

/** The bits of a net.Socket's handle used here; absent on streams that are not sockets. */
interface ReadHandle {
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

/**
 * Stops `stdin` reading from the terminal; returns the function that starts it again (call it
 * when the child has exited, before the TUI listens again: the stream's own `_read` would not,
 * as it still counts a read in progress). Both do nothing on a stream that was not reading.
 */
export function releaseInput(stdin: NodeJS.ReadStream | NodeJS.ReadableStream): () => void {
  const handle = (stdin as { _handle?: ReadHandle })._handle;
  if (handle === undefined || typeof handle.readStop !== "function" || typeof handle.readStart !== "function" || handle.reading !== true) return () => {};
  handle.reading = false;
  handle.readStop();
  return () => {
    if (handle.reading === true) return;
    handle.reading = true;
    handle.readStart!();
  };
}

/** Clears the screen and homes the cursor, so Ink's next frame starts on a clean terminal after the editor. */
export const CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H";

/**
 * How long to wait after the TUI's "editing" frame before the editor starts: Ink throttles its
 * writes (30 frames a second by default), and a frame written after the editor took the screen
 * would land on it.
 */
export const FRAME_SETTLE_MS = 80;
