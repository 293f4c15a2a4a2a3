/**
 * The shared deadlines (deadline-queue.ts) on a manual clock: every callback runs at its own
 * deadline exactly, in order, whatever was cancelled before it; one clock timer at most, left
 * armed by cancelling and not re-armed once nothing is left; callbacks may add and cancel; a
 * timer that fires with the wall clock set back still counts its deadline as reached.
 */
import { describe, expect, it } from "vitest";
import { DeadlineQueue } from "../../../src/engine/io/deadline-queue.js";
import type { Clock, ClockTimer } from "../../../src/engine/ports.js";
import { ManualClock } from "../../support/manual-clock.js";

describe("DeadlineQueue", () => {
  it("runs each callback at its own deadline, in order, with one clock timer for all", () => {
    const clock = new ManualClock();
    const q = new DeadlineQueue(100, clock);
    const start = clock.now();
    const fired: Array<[string, number]> = [];
    q.add(() => fired.push(["a", clock.now() - start]));
    clock.advance(30);
    q.add(() => fired.push(["b", clock.now() - start]));
    clock.advance(30);
    q.add(() => fired.push(["c", clock.now() - start]));
    expect(clock.pendingDelays).toEqual([100]);
    clock.advance(39);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([["a", 100]]);
    clock.advance(1000);
    expect(fired).toEqual([
      ["a", 100],
      ["b", 130],
      ["c", 160],
    ]);
    expect(clock.pending).toBe(0);
  });

  it("keeps later deadlines exact when earlier ones are cancelled, and arms nothing more once empty", () => {
    const clock = new ManualClock();
    const q = new DeadlineQueue(100, clock);
    const start = clock.now();
    const fired: Array<[string, number]> = [];
    const a = q.add(() => fired.push(["a", clock.now() - start]));
    clock.advance(10);
    const b = q.add(() => fired.push(["b", clock.now() - start]));
    clock.advance(10);
    q.add(() => fired.push(["c", clock.now() - start]));
    const d = q.add(() => fired.push(["d", clock.now() - start]));
    // The head and one in the middle go; the timer armed for the head fires early and re-arms.
    a.cancel();
    d.cancel();
    clock.advance(89);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([["b", 110]]);
    b.cancel(); // already fired: nothing happens
    clock.advance(10);
    expect(fired).toEqual([
      ["b", 110],
      ["c", 120],
    ]);
    expect(clock.pending).toBe(0);
    // Cancelling leaves the timer; it fires, finds nothing and is not armed again.
    const e = q.add(() => fired.push(["e", clock.now() - start]));
    expect(clock.pendingDelays).toEqual([100]);
    e.cancel();
    e.cancel();
    expect(clock.pending).toBe(1);
    clock.advance(100);
    expect(clock.pending).toBe(0);
    // A stale timer (its entry cancelled) armed before a new entry fires early and re-arms for it.
    const f = q.add(() => fired.push(["f", clock.now() - start]));
    clock.advance(50);
    f.cancel();
    const g0 = clock.now() - start;
    q.add(() => fired.push(["g", clock.now() - start]));
    expect(clock.pending).toBe(1);
    clock.advance(99);
    expect(fired.map(([name]) => name)).toEqual(["b", "c"]);
    clock.advance(1);
    expect(fired.at(-1)).toEqual(["g", g0 + 100]);
    expect(fired.map(([name]) => name)).toEqual(["b", "c", "g"]);
  });

  it("lets a callback cancel a later entry and add a new one (which gets the full duration)", () => {
    const clock = new ManualClock();
    const q = new DeadlineQueue(50, clock);
    const start = clock.now();
    const fired: Array<[string, number]> = [];
    q.add(() => {
      fired.push(["a", clock.now() - start]);
      later.cancel();
      q.add(() => fired.push(["again", clock.now() - start]));
    });
    const later = q.add(() => fired.push(["later", clock.now() - start]));
    clock.advance(50);
    expect(fired).toEqual([["a", 50]]);
    clock.advance(100);
    expect(fired).toEqual([
      ["a", 50],
      ["again", 100],
    ]);
    expect(clock.pending).toBe(0);
  });

  it("counts the deadline it was armed for as reached when the wall clock was set back meanwhile", () => {
    // A clock whose now() went back an hour while the (monotonic) timer waited.
    let now = 1_000_000;
    const timers: Array<() => void> = [];
    const clock: Clock = {
      now: () => now,
      setTimeout: (callback) => {
        timers.push(callback);
        return { unref() {} } as ClockTimer;
      },
      clearTimeout: () => {},
    };
    const q = new DeadlineQueue(100, clock);
    let fired = 0;
    q.add(() => fired++);
    now -= 3_600_000;
    timers.shift()!();
    expect(fired).toBe(1);
  });
});
