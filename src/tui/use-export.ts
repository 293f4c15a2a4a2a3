/**
 * `e`: a session to `socksmith-ID.json` in `dir`, streamed in pages, asynchronously
 * (export-session.ts), one export at a time; the status bar says when it starts, ends or fails.
 */
import { useRef } from "react";
import { exportSession } from "./export-session.js";
import type { SessionSource } from "./types.js";

export function useExport(source: SessionSource, dir: string, say: (text: string) => void): (id: number) => void {
  // The session being exported.
  const exporting = useRef<number | undefined>(undefined);
  return (id) => {
    if (exporting.current !== undefined) return say(`still exporting session ${exporting.current}`);
    const file = `${dir}/socksmith-${id}.json`;
    exporting.current = id;
    say(`exporting session ${id} to ${file}…`);
    exportSession(source, id, file)
      .then(
        () => say(`exported session ${id} to ${file}`),
        (err: NodeJS.ErrnoException) => say(`export failed: ${err.code ?? err.message}`),
      )
      .finally(() => {
        exporting.current = undefined;
      });
  };
}
