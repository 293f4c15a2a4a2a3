/**
 * Lets in only the listed users (RFC 1929 names or SOCKS4 USERIDs), whatever their password;
 * combine with --auth to also check passwords. Clients that send no user are refused.
 *
 *   npx socksmith -s addons/allow-users.ts --set allow-users.users=alice,bob
 */
import type { Addon } from "socksmith/addon";

export default {
  name: "allow-users",
  options: {
    users: { type: "string", default: "", description: "comma-separated user names" },
  },
  onAuth(attempt, ctx) {
    const allowed = new Set(String(ctx.options.users).split(",").map((u) => u.trim()).filter(Boolean));
    if (attempt.method === "none") return { reject: true };
    return allowed.has(attempt.user) ? { accept: true } : { reject: true };
  },
} satisfies Addon<{ users: string }>;
