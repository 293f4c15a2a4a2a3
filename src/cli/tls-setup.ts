/**
 * `run --tls`: the options, and the interceptor they build (the CA loaded or created, leaf
 * certificates, host filters, upstream trust, the key log).
 */
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import type { Logger } from "../engine/index.js";
import { usesPayload, type Filter } from "../filter/index.js";
import type { TlsInterception } from "../tls/interceptor.js";
import { filterOption } from "./capture-file.js";
import { CliError, usageError } from "./errors.js";

export interface TlsRunOptions {
  readonly caDir: string;
  readonly hosts: Filter | undefined;
  readonly passthrough: Filter | undefined;
  /** A PEM file of extra CAs for upstream verification. */
  readonly upstreamCa: string | undefined;
  readonly upstreamInsecure: boolean;
  readonly autoPassthrough: boolean;
  /** NSS key log file (`--tls-keylog`, else $SSLKEYLOGFILE). */
  readonly keylog: string | undefined;
}

export interface RawTlsOptions {
  tls?: boolean;
  tlsHosts?: string;
  tlsPassthrough?: string;
  caDir?: string;
  upstreamCa?: string;
  upstreamInsecure?: boolean;
  tlsAutoPassthrough?: boolean;
  tlsKeylog?: string;
}

/** Checks the TLS options (usage errors, exit 2); undefined without `--tls`. */
export function resolveTlsOptions(raw: RawTlsOptions, defaultCaDir: string, env: NodeJS.ProcessEnv): TlsRunOptions | undefined {
  if (raw.tls !== true) {
    const stray = (
      [
        ["--tls-hosts", raw.tlsHosts],
        ["--tls-passthrough", raw.tlsPassthrough],
        ["--upstream-ca", raw.upstreamCa],
        ["--upstream-insecure", raw.upstreamInsecure],
        ["--no-tls-auto-passthrough", raw.tlsAutoPassthrough === false ? true : undefined],
        ["--tls-keylog", raw.tlsKeylog],
      ] as const
    ).find(([, value]) => value !== undefined);
    if (stray !== undefined) throw usageError(`${stray[0]} only applies with --tls`);
    return undefined;
  }
  const hosts = hostFilter(raw.tlsHosts, "--tls-hosts");
  const passthrough = hostFilter(raw.tlsPassthrough, "--tls-passthrough");
  const keylog = raw.tlsKeylog ?? (env.SSLKEYLOGFILE === undefined || env.SSLKEYLOGFILE === "" ? undefined : env.SSLKEYLOGFILE);
  return {
    caDir: raw.caDir ?? defaultCaDir,
    hosts,
    passthrough,
    upstreamCa: raw.upstreamCa,
    upstreamInsecure: raw.upstreamInsecure === true,
    autoPassthrough: raw.tlsAutoPassthrough !== false,
    keylog,
  };
}

function hostFilter(text: string | undefined, option: string): Filter | undefined {
  const filter = filterOption(text, option);
  if (filter !== undefined && usesPayload(filter)) throw usageError(`${option}: a payload term (~) cannot be decided at the ClientHello`);
  return filter;
}

export interface RunningTls {
  readonly interceptor: TlsInterception;
  readonly caPath: string;
  /** Hosts whose clients rejected the socksmith CA this run. */
  distrustedCount(): number;
  close(): Promise<void>;
}

/** Loads (or creates) the CA and builds the interceptor. @throws CliError (exit 1) when the CA or a file cannot be used. */
export async function startTls(options: TlsRunOptions, handshakeTimeoutMs: number, logger: Logger): Promise<RunningTls> {
  // Loaded only with --tls: the X.509 library takes about 100 ms to import.
  const [{ CaError, loadOrCreateCa }, { LeafCertificates }, { hostMatcher }, { TlsInterception }] = await Promise.all([
    import("../tls/ca.js"),
    import("../tls/certificates.js"),
    import("../tls/host-filter.js"),
    import("../tls/interceptor.js"),
  ]);
  let ca: Awaited<ReturnType<typeof loadOrCreateCa>>;
  try {
    ca = await loadOrCreateCa(options.caDir);
  } catch (err) {
    if (err instanceof CaError) throw new CliError(`--tls: ${err.message}`, 1);
    throw err;
  }
  for (const warning of ca.warnings) logger.log("warn", `WARNING: ${warning}`);
  const upstreamCa = options.upstreamCa === undefined ? undefined : readCaFile(options.upstreamCa);
  let keylog: WriteStream | undefined;
  if (options.keylog !== undefined) {
    const file = options.keylog;
    keylog = createWriteStream(file, { flags: "a", mode: 0o600 });
    keylog.on("error", (err) => {
      logger.log("error", `TLS key log ${file}: ${err.message}; no more keys are written`);
      keylog = undefined;
    });
  }
  const interceptor = new TlsInterception({
    certificates: new LeafCertificates(ca),
    ...(upstreamCa === undefined ? {} : { upstreamCa }),
    upstreamInsecure: options.upstreamInsecure,
    ...(options.hosts === undefined ? {} : { hosts: hostMatcher(options.hosts) }),
    ...(options.passthrough === undefined ? {} : { passthrough: hostMatcher(options.passthrough) }),
    autoPassthrough: options.autoPassthrough,
    handshakeTimeoutMs,
    ...(keylog === undefined ? {} : { keylog: (line: Buffer) => keylog?.write(line) }),
    distrusted: (host) =>
      logger.log(
        "warn",
        `TLS: the client does not trust the socksmith CA for ${host}${options.autoPassthrough ? "; its later connections pass through" : ""} (trust ${ca.certPath}: socksmith ca)`,
      ),
  });
  return {
    interceptor,
    caPath: ca.certPath,
    distrustedCount: () => interceptor.distrusted.size,
    close: () =>
      new Promise<void>((resolve) => {
        if (keylog === undefined) return resolve();
        keylog.end(() => resolve());
      }),
  };
}

/** The PEM certificates of an `--upstream-ca` file (`run --tls`, `replay`). @throws CliError (exit 1) when it cannot be read or holds none. */
export function readCaFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(`--upstream-ca: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
  const blocks = pemBlocks(text);
  if (blocks.length === 0) throw new CliError(`--upstream-ca: ${file} holds no PEM certificate`, 1);
  return blocks;
}

/** The PEM certificate blocks of a file. */
function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
