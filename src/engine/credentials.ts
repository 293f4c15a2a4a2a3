/**
 * The username/password table behind `--auth` and `--auth-file`. Names and passwords are
 * compared as bytes (RFC 1929 defines octets).
 *
 * Security: a password check takes the same time whatever the password's length or content and
 * whether the name exists. Both sides are reduced to fixed-size digests (HMAC-SHA256 under a key
 * drawn at random per process, so the digests say nothing outside it) and those are compared with
 * timingSafeEqual; an unknown name is checked against a random stand-in the same way.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export class Credentials {
  /** Name (latin1 text of its bytes) → digest of the password. */
  private readonly users = new Map<string, Buffer>();
  private readonly key = randomBytes(32);
  /** What an unknown name's password is compared against (an unknown name is refused whatever the comparison says). */
  private readonly nobody = this.digest(randomBytes(32));

  /** Adds a user; the name is stored as latin1 text of its bytes, the password as UTF-8 bytes. */
  add(user: string, password: string): void {
    this.users.set(Buffer.from(user, "utf8").toString("latin1"), this.digest(Buffer.from(password, "utf8")));
  }

  get size(): number {
    return this.users.size;
  }

  verify(user: Buffer, password: Buffer): boolean {
    const expected = this.users.get(user.toString("latin1"));
    // Same work for an unknown name, so a timing probe cannot tell names apart either.
    const same = timingSafeEqual(this.digest(password), expected ?? this.nobody);
    return same && expected !== undefined;
  }

  private digest(password: Uint8Array): Buffer {
    return createHmac("sha256", this.key).update(password).digest();
  }
}

/**
 * Parses `USER:PASS` (the first colon splits, so passwords may contain colons).
 * Throws an Error with a message fit for the user on bad input.
 */
export function parseCredential(text: string): { user: string; password: string } {
  const colon = text.indexOf(":");
  if (colon <= 0) throw new Error(`expected USER:PASS, got ${JSON.stringify(text)}`);
  const user = text.slice(0, colon);
  const password = text.slice(colon + 1);
  if (Buffer.byteLength(user) > 255 || Buffer.byteLength(password) > 255) {
    throw new Error(`user and password must each fit in 255 bytes (RFC 1929)`);
  }
  return { user, password };
}

/** Parses an auth file: one `USER:PASS` per line; blank lines and `#` comments are skipped. */
export function parseCredentialFile(text: string, name: string): Array<{ user: string; password: string }> {
  const out: Array<{ user: string; password: string }> = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    try {
      out.push(parseCredential(line));
    } catch (err) {
      throw new Error(`${name}:${index + 1}: ${(err as Error).message}`);
    }
  });
  return out;
}
