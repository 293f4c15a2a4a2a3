/**
 * `session.replay` as the dispatcher builds it from the proxy's ReplayMarks, over a real engine:
 * a client replay marked after its session opened, a server mark before onRequest, both seen by
 * the session's next hook call (onClose too), other sessions unmarked, and the mark released.
 */
import { describe, expect, it } from "vitest";
import type { Addon } from "../../src/hooks/api.js";
import { Dispatcher, type AddonInstance } from "../../src/hooks/dispatcher.js";
import { ReplayMarks } from "../../src/hooks/replay-marks.js";
import { openTunnel, startEchoServer, useTestProxies } from "../support/net.js";

const { cleanups, proxy } = useTestProxies();

async function withMarks(addon: Addon): Promise<{ port: number; replays: ReplayMarks; target: number }> {
  const replays = new ReplayMarks();
  const instance: AddonInstance = { name: "watch", file: "/virtual/watch.ts", addon, options: {} };
  const dispatcher = new Dispatcher([instance], { replays, events: { hookFailed: () => {}, tagged: () => {}, logged: () => {} } });
  const p = await proxy({ hooks: dispatcher, observer: dispatcher.observer });
  const target = await startEchoServer();
  cleanups.push(() => target.close());
  return { port: p.port, replays, target: target.port };
}

const shown = (replay: unknown) => JSON.stringify(replay ?? null);

describe("Dispatcher: session.replay from ReplayMarks", () => {
  it("a client replay marked once its session is open is seen from the next hook on, by that session only, onClose too", async () => {
    const seen: string[] = [];
    let replays!: ReplayMarks;
    let ended!: () => void;
    const closed = new Promise<void>((resolve) => (ended = resolve));
    let first = true;
    const setup = await withMarks({
      onOpen: (_c, ctx) => {
        seen.push(`open:${shown(ctx.session.replay)}`);
        // The replayer learns its local port once connected, so the mark can come after the open.
        if (first) replays.clientReplay(ctx.session.client.port, 7);
        first = false;
      },
      onRequest: (_r, ctx) => void seen.push(`request:${shown(ctx.session.replay)}:${ctx.replayed}`),
      onClose: (_s, ctx) => {
        seen.push(`close:${shown(ctx.session.replay)}`);
        ended();
      },
    });
    replays = setup.replays;
    const replay = await openTunnel(setup.port, setup.target);
    replay.socket.end();
    await closed;
    const plain = await openTunnel(setup.port, setup.target);
    plain.socket.end();
    expect(seen.slice(0, 5)).toEqual([
      "open:null",
      'request:{"kind":"client","of":7}:true',
      'close:{"kind":"client","of":7}',
      "open:null",
      "request:null:false",
    ]);
  });

  it("a server mark given before onRequest is seen there and by onClose, and released when the session ends", async () => {
    const seen: string[] = [];
    let replays!: ReplayMarks;
    let id = -1;
    let ended!: () => void;
    const closed = new Promise<void>((resolve) => (ended = resolve));
    const setup = await withMarks({
      onOpen: (_c, ctx) => {
        id = ctx.session.id;
        seen.push(`open:${shown(ctx.session.replay)}`);
        replays.servedFrom(id, 12); // what server replay does before the request reaches the addons
      },
      onRequest: (_r, ctx) => void seen.push(`request:${shown(ctx.session.replay)}:${ctx.replayed}`),
      onClose: (_s, ctx) => {
        seen.push(`close:${shown(ctx.session.replay)}`);
        ended();
      },
    });
    replays = setup.replays;
    const c = await openTunnel(setup.port, setup.target);
    c.socket.end();
    await closed;
    expect(seen).toEqual(["open:null", 'request:{"kind":"server","of":12}:true', 'close:{"kind":"server","of":12}']);
    expect(replays.replayOf(id, 0)).toBeUndefined();
  });
});
