/** DirectionWait, the one wait state per relay direction: reasons as a set, pause/resume of the source, CAPTURE by the latest promise, paced injectors. */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { DirectionWait, WAIT_CAPTURE, WAIT_DRAIN, WAIT_HOOK } from "../../../src/engine/io/direction-wait.js";

/** A stand-in source that records pause() and resume(). */
function source(): { socket: Socket; calls: string[]; destroy(): void } {
  const calls: string[] = [];
  const fake = { destroyed: false, pause: () => void calls.push("pause"), resume: () => void calls.push("resume") };
  return { socket: fake as unknown as Socket, calls, destroy: () => void (fake.destroyed = true) };
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("DirectionWait", () => {
  it("pauses on the first reason, resumes when the last clears; a reason set twice clears once", () => {
    const { socket, calls } = source();
    const wait = new DirectionWait(socket);
    expect(wait.reading).toBe(true);
    wait.wait(WAIT_DRAIN);
    wait.wait(WAIT_DRAIN);
    wait.wait(WAIT_HOOK);
    expect(calls).toEqual(["pause"]);
    expect(wait.has(WAIT_DRAIN) && wait.has(WAIT_HOOK) && !wait.has(WAIT_CAPTURE)).toBe(true);
    wait.done(WAIT_DRAIN);
    expect(calls).toEqual(["pause"]);
    wait.done(WAIT_CAPTURE); // not set: nothing
    wait.done(WAIT_HOOK);
    expect(calls).toEqual(["pause", "resume"]);
    expect(wait.reading).toBe(true);
  });

  it("does not resume a destroyed source", () => {
    const { socket, calls, destroy } = source();
    const wait = new DirectionWait(socket);
    wait.wait(WAIT_HOOK);
    destroy();
    wait.done(WAIT_HOOK);
    expect(calls).toEqual(["pause"]);
    expect(wait.reading).toBe(true);
  });

  it("CAPTURE clears when the latest promise settles, not an older one", async () => {
    const { socket, calls } = source();
    const wait = new DirectionWait(socket);
    const older = deferred();
    const newer = deferred();
    wait.captured(undefined);
    expect(wait.reading).toBe(true);
    wait.captured(older.promise);
    wait.captured(newer.promise);
    older.resolve();
    await older.promise;
    await Promise.resolve();
    expect(wait.has(WAIT_CAPTURE)).toBe(true);
    newer.resolve();
    await newer.promise;
    await Promise.resolve();
    expect(wait.has(WAIT_CAPTURE)).toBe(false);
    expect(calls).toEqual(["pause", "resume"]);
  });

  it("writable() waits for DRAIN and CAPTURE but not HOOK; wakeWriters() settles it early", async () => {
    const { socket } = source();
    const wait = new DirectionWait(socket);
    wait.wait(WAIT_HOOK);
    expect(wait.writable()).toBeUndefined();
    wait.wait(WAIT_DRAIN);
    const settled: string[] = [];
    void wait.writable()!.then(() => settled.push("drained"));
    wait.done(WAIT_HOOK);
    await Promise.resolve();
    expect(settled).toEqual([]);
    wait.done(WAIT_DRAIN);
    await Promise.resolve();
    expect(settled).toEqual(["drained"]);
    wait.wait(WAIT_DRAIN);
    void wait.writable()!.then(() => settled.push("woken"));
    wait.wakeWriters();
    await Promise.resolve();
    expect(settled).toEqual(["drained", "woken"]);
    expect(wait.has(WAIT_DRAIN)).toBe(true);
  });
});
