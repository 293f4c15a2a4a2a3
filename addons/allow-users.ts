/**
 * Lets in only the listed users (RFC 1929 names or SOCKS4 USERIDs) and refuses everyone else.
 * It only narrows who gets in: for a listed user it has no opinion, so with --auth the password
 * is still checked (alice:wrong and users missing from --auth stay out); without --auth any
 * password is taken. A SOCKS5 client that offers no-auth as well as username/password (curl
 * `--socks5 alice:pw@host:port`) is asked for its credentials; one that sends none is refused.
 *
 *   npx socksmith -s addons/allow-users.ts --set allow-users.users=alice,bob [--auth alice:pw]
 */
import type { Addon } from "socksmith/addon";

export default {
  name: "allow-users",
  options: {
    users: { type: "string", default: "", description: "comma-separated user names" },
  },
  onAuth(attempt, ctx) {
    // Refusing no-auth makes the proxy select username/password when the client offered it.
    if (attempt.method === "none") return { reject: true };
    const allowed = new Set(
      String(ctx.options.users)
        .split(",")
        .map((u) => u.trim())
        .filter(Boolean),
    );
    // undefined, not { accept }: the decision stays with --auth (README "Addons", onAuth).
    return allowed.has(attempt.user) ? undefined : { reject: true };
  },
} satisfies Addon<{ users: string }>;
