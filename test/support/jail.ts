// What the jail tier's tests share: the read-only tree a jailed process runs, and the reason the
// tier cannot run on this host (if any).

import { fileURLToPath } from 'node:url';
import { jailMissing } from '../../process/jail.js';

/** The repository (dist/ and node_modules/), read-only: what a VMM process runs. */
export const PROJECT = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');

/** Why the jail tier cannot run here, or undefined (for tierTest). */
export function jailTierMissing(): string | undefined {
  const m = jailMissing();
  return m.length ? `jail tier did not run: missing ${m.join(', ')}` : undefined;
}
