/** The intercept queue's semantics: what pauses, answers that fit, resume all, release, sessions that end. */
import { describe, expect, it } from "vitest";
import type { RequestInfo } from "../../src/engine/index.js";
import { InterceptQueue } from "../../src/intercept/intercept-queue.js";
import type { InterceptEvent, InterceptSubject } from "../../src/intercept/types.js";

function request(id: number, port = 80): RequestInfo {
  return { id, version: 5, command: "connect", destination: { type: "ipv4", host: "127.0.0.1", port }, client: { host: "127.0.0.1", port: 40000 + id } };
}

const chunk = (id: number) => ({ kind: "chunk" as const, session: id, request: request(id), direction: "down" as const, seq: 1, data: Buffer.from("abc") });

describe("InterceptQueue", () => {
  it("pauses only with a filter set and the switch on; a predicate that throws does not match", () => {
    const errors: string[] = [];
    const queue = new InterceptQueue({ onError: (_err, where) => errors.push(where) });
    const subject: InterceptSubject = { stage: "request", request: request(1) };
    expect(queue.configured).toBe(false);
    expect(queue.active).toBe(true);
    expect(queue.matches(subject)).toBe(false);
    queue.setFilter((s) => s.stage === "request");
    expect(queue.configured).toBe(true);
    expect(queue.matches(subject)).toBe(true);
    expect(queue.matches({ stage: "up", request: request(1), direction: "up", seq: 0, data: Buffer.alloc(1) })).toBe(false);
    queue.setActive(false);
    expect(queue.matches(subject)).toBe(false);
    queue.setActive(true);
    queue.setFilter(() => {
      throw new Error("bad predicate");
    });
    expect(queue.matches(subject)).toBe(false);
    expect(errors).toEqual(["predicate"]);
  });

  it("holds items with unique keys until resolved with an action that fits their kind", async () => {
    let now = 1000;
    const queue = new InterceptQueue({ now: () => now });
    const events: InterceptEvent[] = [];
    queue.subscribe((e) => events.push(e));
    const asked = queue.hold({ kind: "request", session: 1, request: request(1) });
    now = 2000;
    const chunked = queue.hold(chunk(2));
    const [req, ch] = queue.items;
    expect(req?.kind).toBe("request");
    expect(req?.since).toBe(1000);
    expect(ch?.since).toBe(2000);
    expect(req?.key).not.toBe(ch?.key);
    expect(events.map((e) => e.type)).toEqual(["paused", "paused"]);

    // Actions of another kind, out-of-range values and unknown keys are refused, and nothing is let go.
    expect(queue.resolve(req!.key, { reset: true })).toBe(false);
    expect(queue.resolve(req!.key, { resume: true, port: 0 })).toBe(false);
    expect(queue.resolve(req!.key, { resume: true, host: "" })).toBe(false);
    expect(queue.resolve(req!.key, { deny: 0 })).toBe(false);
    expect(queue.resolve(ch!.key, { deny: 2 })).toBe(false);
    expect(queue.resolve(ch!.key, { resume: true, redirect: { port: 9 } })).toBe(false);
    expect(queue.resolve("nope", { resume: true })).toBe(false);
    expect(queue.size).toBe(2);

    expect(queue.resolve(req!.key, { resume: true, port: 8080 })).toBe(true);
    expect(await asked).toEqual({ resume: true, port: 8080 });
    expect(queue.resolve(req!.key, { resume: true })).toBe(false);
    expect(queue.resolve(ch!.key, { resume: true, data: Buffer.from("xyz") })).toBe(true);
    expect(await chunked).toEqual({ resume: true, data: Buffer.from("xyz") });
    expect(queue.size).toBe(0);
    expect(events.slice(2).map((e) => (e.type === "resolved" ? e.by : e.type))).toEqual(["person", "person"]);
  });

  it("a datagram takes a redirect only going up", () => {
    const queue = new InterceptQueue();
    const base = { session: 1, request: request(1), seq: 0, peer: { type: "ipv4" as const, host: "127.0.0.1", port: 53 }, data: Buffer.from("q") };
    void queue.hold({ kind: "datagram", ...base, direction: "down" });
    void queue.hold({ kind: "datagram", ...base, direction: "up" });
    const [down, up] = queue.items;
    expect(queue.resolve(down!.key, { resume: true, redirect: { port: 54 } })).toBe(false);
    expect(queue.resolve(down!.key, { close: true })).toBe(false);
    expect(queue.resolve(up!.key, { resume: true, redirect: { port: 54 } })).toBe(true);
    expect(queue.resolve(down!.key, { drop: true })).toBe(true);
  });

  it("resumeAll lets every item go as it was and keeps intercept on; releaseAll also switches it off", async () => {
    const queue = new InterceptQueue();
    queue.setFilter(() => true);
    const first = [queue.hold(chunk(1)), queue.hold({ kind: "request", session: 2, request: request(2) })];
    expect(queue.resumeAll()).toBe(2);
    expect(await Promise.all(first)).toEqual([{ resume: true }, { resume: true }]);
    expect(queue.active).toBe(true);

    const events: InterceptEvent[] = [];
    queue.subscribe((e) => events.push(e));
    const second = [queue.hold(chunk(3)), queue.hold(chunk(4))];
    expect(queue.releaseAll()).toBe(2);
    expect(await Promise.all(second)).toEqual([{ resume: true }, { resume: true }]);
    expect(queue.active).toBe(false);
    expect(queue.matches({ stage: "request", request: request(5) })).toBe(false);
    expect(events.filter((e) => e.type === "resolved").map((e) => e.type === "resolved" && e.by)).toEqual(["release", "release"]);
    expect(events.some((e) => e.type === "settings" && !e.active)).toBe(true);
  });

  it("a session that ends takes its own items out of the queue, no other's, and answers nothing", async () => {
    const queue = new InterceptQueue();
    const events: InterceptEvent[] = [];
    queue.subscribe((e) => events.push(e));
    let answered = false;
    void queue.hold(chunk(1)).then(() => (answered = true));
    void queue.hold(chunk(2));
    queue.ended(1);
    expect(queue.items.map((i) => i.session)).toEqual([2]);
    expect(events.filter((e) => e.type === "resolved").map((e) => e.type === "resolved" && [e.item.session, e.by])).toEqual([[1, "ended"]]);
    // resumeAll reaches only what is still held; the ended session's hold never settles.
    expect(queue.resumeAll()).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(false);
  });

  it("a listener that throws is reported and the others still hear every event", () => {
    const errors: string[] = [];
    const queue = new InterceptQueue({ onError: (_e, where) => errors.push(where) });
    const heard: string[] = [];
    queue.subscribe(() => {
      throw new Error("ui bug");
    });
    const stop = queue.subscribe((e) => heard.push(e.type));
    void queue.hold(chunk(1));
    queue.resumeAll();
    stop();
    void queue.hold(chunk(1));
    expect(heard).toEqual(["paused", "resolved"]);
    expect(errors).toEqual(["listener", "listener", "listener"]);
  });
});
