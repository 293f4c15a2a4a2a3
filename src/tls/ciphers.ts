/**
 * The cipher order socksmith uses on both legs of an intercepted tunnel: Node's defaults with
 * TLS_AES_128_GCM_SHA256 first (what browsers prefer too). The proxy decrypts and re-encrypts
 * every byte, as much crypto as client and server together; AES-128-GCM does that in about three
 * quarters of AES-256-GCM's time. Every suite Node offers by default stays on offer.
 */
import { DEFAULT_CIPHERS } from "node:tls";

const FIRST = "TLS_AES_128_GCM_SHA256";

export const PROXY_CIPHERS = [FIRST, ...DEFAULT_CIPHERS.split(":").filter((suite) => suite !== FIRST)].join(":");
