import { describe, expect, it } from "vitest";
import { ManualClock } from "./manual-clock.js";

describe("ManualClock", () => {
  it("fires due timers in order of due time, then of arming, with now() at each timer's due time", () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push("late"), 31);
    clock.advance(29);
    expect(fired).toEqual(["a@1010", "b@1020", "c@1020"]);
    expect(clock.now()).toBe(1029);
    clock.advance(1);
    expect(fired).toHaveLength(3);
    clock.advance(1);
    expect(fired).toEqual(["a@1010", "b@1020", "c@1020", "late"]);
  });

  it("fires timers armed by a callback when they fall due within the same advance, and never a cleared one", () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    const rearm = (): void => {
      fired.push(clock.now());
      clock.setTimeout(rearm, 25);
    };
    clock.setTimeout(rearm, 25);
    const cleared = clock.setTimeout(() => fired.push(-1), 50);
    clock.clearTimeout(cleared);
    clock.clearTimeout(undefined);
    clock.advance(100);
    expect(fired).toEqual([25, 50, 75, 100]);
    expect(clock.pendingDelays).toEqual([25]);
  });

  it("armed() resolves once a timer with that delay is pending, and fails when none comes", async () => {
    const clock = new ManualClock();
    const waiting = clock.armed(300);
    clock.setTimeout(() => {}, 100);
    setImmediate(() => clock.setTimeout(() => {}, 300));
    await waiting;
    await clock.armed(100);
    await expect(clock.armed(5, 20)).rejects.toThrow(/no 5 ms timer was armed within 20 ms \(pending: 100, 300\)/);
  });
});
