// Optional HTTPS for the API (--tls-cert/--tls-key). Beyond loopback the bearer token crosses
// the network, so there TLS keeps it from anyone on the path; on loopback it is rarely needed.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { FaasnapError } from '../common/errors.js';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key to serve, checked to be a usable pair; undefined without TLS. */
export function tlsFiles(cfg: {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}): TlsFiles | undefined {
  if (!cfg.tlsCert || !cfg.tlsKey) return undefined;
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new FaasnapError('DAEMON_CONFIG', `cannot read the TLS ${what} ${path}`, { cause: e });
    }
  };
  const files = { cert: read(cfg.tlsCert, 'certificate'), key: read(cfg.tlsKey, 'key') };
  try {
    // Fails here, at start, on a malformed PEM or a key that does not match the certificate,
    // rather than on the first client's handshake.
    createSecureContext(files);
  } catch (e) {
    throw new FaasnapError(
      'DAEMON_CONFIG',
      `the TLS certificate ${cfg.tlsCert} and key ${cfg.tlsKey} are not a usable pair: ${(e as Error).message}`,
    );
  }
  return files;
}
