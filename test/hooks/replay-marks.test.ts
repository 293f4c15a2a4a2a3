/** ReplayMarks on its own: what `session.replay` reads for a session, and when a mark goes away. */
import { describe, expect, it } from "vitest";
import { ReplayMarks, noReplays } from "../../src/hooks/replay-marks.js";

describe("ReplayMarks", () => {
  it("a client mark waits for its port, belongs to the first session that reads it, and is released with it", () => {
    const marks = new ReplayMarks();
    marks.clientReplay(40_000, 7);
    expect(marks.replayOf(1, 40_001)).toBeUndefined();
    expect(marks.replayOf(2, 40_000)).toEqual({ kind: "client", of: 7 });
    expect(marks.replayOf(2, 40_000)).toEqual({ kind: "client", of: 7 });
    // Another session from the same port later (the port reused) is not a replay.
    expect(marks.replayOf(3, 40_000)).toBeUndefined();
    marks.release(2);
    expect(marks.replayOf(2, 40_000)).toBeUndefined();
  });

  it("a server mark replaces the session's mark; servedFrom(id, undefined) removes it", () => {
    const marks = new ReplayMarks();
    marks.clientReplay(40_000, 7);
    expect(marks.replayOf(1, 40_000)).toEqual({ kind: "client", of: 7 });
    marks.servedFrom(1, 12);
    expect(marks.replayOf(1, 40_000)).toEqual({ kind: "server", of: 12 });
    marks.servedFrom(1, undefined);
    expect(marks.replayOf(1, 40_000)).toBeUndefined();
  });

  it("a session that is already a replay does not take a client mark waiting for its port", () => {
    const marks = new ReplayMarks();
    marks.servedFrom(1, 12);
    marks.clientReplay(40_000, 7);
    expect(marks.replayOf(1, 40_000)).toEqual({ kind: "server", of: 12 });
    expect(marks.replayOf(2, 40_000)).toEqual({ kind: "client", of: 7 });
  });

  it("noReplays marks nothing", () => {
    expect(noReplays.replayOf(1, 40_000)).toBeUndefined();
  });
});
