// The runtimes the daemon knows, by name.

import { FaasnapError } from '../../common/errors.js';
import type { RuntimeName } from '../schemas.js';
import { microRuntime } from './micro.js';
import type { FunctionRuntime } from './runtime.js';
import { unavailableRuntime } from './unavailable.js';

export type Runtimes = Record<RuntimeName, FunctionRuntime>;

export function defaultRuntimes(): Runtimes {
  return {
    micro: microRuntime,
    python: unavailableRuntime('python'),
    node: unavailableRuntime('node'),
  };
}

export function runtimeFor(runtimes: Runtimes, name: string): FunctionRuntime {
  const r = (runtimes as Record<string, FunctionRuntime | undefined>)[name];
  if (!r) throw new FaasnapError('REQUEST_INVALID', `unknown runtime ${name}`);
  return r;
}

/** RUNTIME_UNAVAILABLE (501) for a runtime whose guest is not built yet. */
export function requireAvailable(r: FunctionRuntime): void {
  if (!r.available)
    throw new FaasnapError(
      'RUNTIME_UNAVAILABLE',
      `${r.name} functions need the Linux guest and its agent (docs/api.md#runtimes)`,
      { runtime: r.name },
    );
}
