// Runtimes declared in the API whose guest (Linux kernel, rootfs, guest agent) is not built yet:
// registration works, everything that needs a VM answers RUNTIME_UNAVAILABLE (501).

import { FaasnapError } from '../../common/errors.js';
import type { RuntimeName } from '../schemas.js';
import type { FunctionRuntime } from './runtime.js';

export function unavailableRuntime(name: RuntimeName): FunctionRuntime {
  const fail = (): never => {
    throw new FaasnapError(
      'RUNTIME_UNAVAILABLE',
      `${name} functions need the Linux guest and its agent (docs/api.md#runtimes)`,
      { runtime: name },
    );
  };
  return {
    name,
    available: false,
    validateConfig: () => undefined,
    supportsMode: () => true,
    recordParams: (fn) => fn.recordParams ?? {},
    prepareInput: () => Promise.resolve(fail()),
    boot: () => Promise.resolve(fail()),
    run: () => Promise.resolve(fail()),
  };
}
