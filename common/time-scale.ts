// How much slower than a normal host this machine runs the VMM and its guests. Fixed waits that
// exist only because a machine is slow (a VMM process's start-up, a guest's boot, the agent's
// first answer after a restore, test time limits) are multiplied by it; user-given limits such as
// a function's timeout are not. The hardware-KVM lab sets FAASNAP_TIME_SCALE (everything there
// runs under QEMU's emulation, ~10x slower; docs/lab.md); elsewhere it is 1.

import { FaasnapError } from './errors.js';

export function parseTimeScale(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1 || n > 1000) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `FAASNAP_TIME_SCALE must be a number in 1..1000, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}

export const TIME_SCALE = parseTimeScale(process.env.FAASNAP_TIME_SCALE);

/** `ms` stretched by this machine's time scale. */
export function scaledMs(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}
