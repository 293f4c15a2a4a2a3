/**
 * `socksmith ca [--ca-dir DIR] [--pem]`: the socksmith CA that `run --tls` signs leaves with,
 * created when it does not exist yet. Prints where the certificate is, its fingerprint and
 * validity, and how to make each kind of client trust it; `--pem` prints the certificate alone.
 * The key is never printed: only its path.
 */
import { resolve } from "node:path";
import { Command } from "commander";
import { CliError } from "../errors.js";
import type { Terminal } from "../proxy.js";

export function caCommand(terminal: Terminal): Command {
  return new Command("ca")
    .description("show the socksmith CA (created on first use) and how to make clients trust it")
    .option("--ca-dir <dir>", "where the socksmith CA lives (default $XDG_CONFIG_HOME/socksmith or ~/.socksmith)")
    .option("--pem", "print the CA certificate (PEM) and nothing else")
    .action(async (raw: { caDir?: string; pem?: boolean }) => {
      // tls/ loads @peculiar/x509 (about 100 ms): only when this command runs.
      const { CaError, defaultCaDir, loadOrCreateCa } = await import("../../tls/ca.js");
      const dir = resolve(raw.caDir ?? defaultCaDir());
      let ca: Awaited<ReturnType<typeof loadOrCreateCa>>;
      try {
        ca = await loadOrCreateCa(dir);
      } catch (err) {
        if (err instanceof CaError) throw new CliError(err.message, 1);
        throw err;
      }
      for (const warning of ca.warnings) terminal.err(`warning: ${warning}`);
      if (raw.pem === true) {
        terminal.out(ca.certPem.trimEnd());
        return;
      }
      if (ca.created) terminal.err(`created a new socksmith CA in ${dir}`);
      for (const line of describeCa(ca)) terminal.out(line);
    });
}

interface CaSummary {
  readonly certPath: string;
  readonly keyPath: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly certificate: { readonly subject: string };
}

/** What `socksmith ca` prints: the certificate, then one way to trust it per kind of client. */
export function describeCa(ca: CaSummary): string[] {
  const cert = shellQuote(ca.certPath);
  return [
    `certificate  ${ca.certPath}`,
    `subject      ${ca.certificate.subject.replace(/\n/g, ", ")}`,
    `SHA-256      ${ca.fingerprint256}`,
    `valid        ${day(ca.notBefore)} to ${day(ca.notAfter)}`,
    "",
    "Clients must trust this certificate before socksmith run --tls can show them its leaf certificates:",
    `  curl               curl --cacert ${cert} https://example.com/`,
    `  Node.js            NODE_EXTRA_CA_CERTS=${cert} node app.js`,
    `  Python requests    REQUESTS_CA_BUNDLE=${cert} python3 app.py`,
    `  Python ssl/OpenSSL SSL_CERT_FILE=${cert} python3 app.py`,
    "                     (these two replace the default CA bundle: hosts that pass through then fail unless the file also holds",
    "                     the usual CAs, e.g. cat /etc/ssl/certs/ca-certificates.crt and this certificate into one file)",
    `  Chromium (Linux)   certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n socksmith -i ${cert}`,
    `  Firefox            certutil -d sql:PROFILE_DIR -A -t "C,," -n socksmith -i ${cert}`,
    "                     (or Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import)",
    `  Debian/Ubuntu      sudo cp ${cert} /usr/local/share/ca-certificates/socksmith.crt && sudo update-ca-certificates`,
    "",
    `Keep the key ${ca.keyPath} private: whoever has it can impersonate any site to clients that trust this CA.`,
    "socksmith ca --pem prints the certificate alone.",
  ];
}

function day(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A path as one shell word: bare when it is plain, else single-quoted. */
function shellQuote(path: string): string {
  return /^[\w/.,:@%+=-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
