/**
 * OpenSSL's certificate verification codes (as Node reports them in `authorizationError`) in
 * words a user understands; an unknown code is shown as it is.
 */
const WORDS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: "the certificate has expired",
  CERT_NOT_YET_VALID: "the certificate is not valid yet",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "the chain ends in a self-signed certificate that is not trusted",
  UNABLE_TO_GET_ISSUER_CERT: "the issuer's certificate is unknown",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "it was issued by an unknown authority",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "it was issued by an unknown authority",
  CERT_REVOKED: "the certificate was revoked",
  CERT_SIGNATURE_FAILURE: "the certificate's signature is invalid",
  CERT_UNTRUSTED: "the certificate is not trusted",
  CERT_REJECTED: "the certificate was rejected",
  INVALID_CA: "an issuer in the chain is not a CA",
  PATH_LENGTH_EXCEEDED: "the chain is longer than its CA allows",
  INVALID_PURPOSE: "the certificate may not be used for a TLS server",
  ERR_TLS_CERT_ALTNAME_INVALID: "it is not valid for this name",
};

export function describeVerifyError(code: string): string {
  const words = WORDS[code];
  return words === undefined ? code : `${words} (${code})`;
}
