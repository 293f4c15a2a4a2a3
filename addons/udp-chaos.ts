/**
 * Drops or corrupts a share of UDP datagrams, to see how an app copes with a lossy network.
 *
 *   npx socksmith -s addons/udp-chaos.ts --set udp-chaos.drop=0.1 --set udp-chaos.corrupt=0.05
 */
import type { Addon } from "socksmith/addon";

export default {
  name: "udp-chaos",
  options: {
    drop: { type: "number", default: 0.1, description: "share of datagrams dropped (0-1)" },
    corrupt: { type: "number", default: 0, description: "share of datagrams with one byte flipped (0-1)" },
  },
  onDatagram(datagram, ctx) {
    if (Math.random() < Number(ctx.options.drop)) return { drop: true };
    if (datagram.data.length > 0 && Math.random() < Number(ctx.options.corrupt)) {
      const bytes = Buffer.from(datagram.data);
      const at = Math.floor(Math.random() * bytes.length);
      bytes[at] = bytes[at]! ^ 0xff;
      return { replace: bytes };
    }
    return undefined;
  },
} satisfies Addon<{ drop: number; corrupt: number }>;
