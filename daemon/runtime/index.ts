// The runtimes the daemon knows, by name.

import { FaasnapError, isFaasnapError } from '../../common/errors.js';
import type { AgentStorage } from '../../guest/agent/storage.js';
import type { ObjectStore } from '../redis.js';
import type { RuntimeName } from '../schemas.js';
import { microRuntime } from './micro.js';
import type { FunctionRuntime } from './runtime.js';
import { agentRuntime, type GuestImage } from './agent.js';

export type Runtimes = Record<RuntimeName, FunctionRuntime>;

/** The runtimes of a daemon whose agent-runtime VMs boot `image`. */
export function defaultRuntimes(image: GuestImage): Runtimes {
  return {
    micro: microRuntime,
    python: agentRuntime('python', image),
    node: agentRuntime('node', image),
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
      `${r.name} functions need the Linux guest and its agent: ${r.unavailableReason ?? 'not available'} (docs/api.md#runtimes)`,
      { runtime: r.name },
    );
}

/** undefined for a missing key, as the agent's storage.get answers it. */
function orMissing<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => {
    if (isFaasnapError(e, 'OBJECT_UNKNOWN')) return undefined;
    throw e;
  });
}

/** The object store as the guest agent's storage.get/put see it. */
export function agentStorage(objects: ObjectStore): AgentStorage {
  return {
    get: (key) => orMissing(objects.get(key)),
    put: (key, value) => objects.put(key, value),
    getRange: (key, offset, length) => orMissing(objects.getRange(key, offset, length)),
    putRange: (key, offset, data) => objects.putRange(key, offset, data),
  };
}
