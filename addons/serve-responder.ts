/**
 * Answers CONNECTs to one host itself, with canned bytes and no upstream: a local mock for a
 * service the app talks to. Nothing is dialled, so the host need not exist.
 *
 *   npx socksmith -s addons/serve-responder.ts --set serve-responder.host=api.mock.test \
 *                 --set serve-responder.body='{"ok":true}'
 */
import type { Addon } from "socksmith/addon";

export default {
  name: "serve-responder",
  options: {
    host: { type: "string", default: "mock.test", description: "host to answer for (any port)" },
    body: { type: "string", default: "hello from socksmith\n", description: "HTTP response body" },
  },
  onRequest(request, ctx) {
    if (request.command !== "connect" || request.host.toLowerCase() !== String(ctx.options.host).toLowerCase()) return undefined;
    ctx.tag("served", "yes");
    return { serve: true };
  },
  onData(chunk, ctx) {
    if (chunk.direction !== "up" || ctx.session.tags.served !== "yes") return undefined;
    // Answer the first request once its head has arrived whole (however it was cut into reads),
    // then close like an HTTP/1.0 server.
    let complete = false;
    ctx.messages(chunk, { delimiter: "\r\n\r\n" }, () => void (complete = true));
    if (!complete) return undefined;
    const body = Buffer.from(String(ctx.options.body));
    ctx.inject("down", `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    ctx.inject("down", body);
    return { close: true };
  },
} satisfies Addon<{ host: string; body: string }>;
