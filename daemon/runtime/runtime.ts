// What the daemon needs from a function runtime: how to boot a fresh VM for a function, how to
// turn invocation params into the VM's input, how to run one invocation in a (restored or
// booted) paused VM, and what the record input is. The daemon's deploy chain, invocations,
// traces and metrics are written against this interface only.

import type { VmmProcess } from '../../vmm/process/client.js';
import type { ErrorBodyT, FunctionConfigT, InvokeMode, RuntimeName } from '../schemas.js';

export type InvokeOutcome = { ok: true; result: unknown } | { ok: false; error: ErrorBodyT };

/** Records one named phase of an invocation as a trace span and a phase timing. */
export interface PhaseRecorder {
  phase<T>(name: string, fn: () => Promise<T>, attributes?: Record<string, unknown>): Promise<T>;
}

/** An invocation's input, checked and encoded before any VM is taken. */
export interface PreparedInput {
  /** Bytes placed into guest RAM before the VM resumes. */
  memory?: { gpa: number; data: Uint8Array };
  /** The params as the function sees them (after defaults). */
  params: Record<string, unknown>;
}

export interface RuntimeDeps {
  /** Reads an object from the object store (Redis). */
  getObject(key: string): Promise<Buffer>;
}

export interface FunctionRuntime {
  readonly name: RuntimeName;
  /** False until the runtime's guest exists: every deploy/boot/invoke answers RUNTIME_UNAVAILABLE. */
  readonly available: boolean;
  /** Throws REQUEST_INVALID when a registration does not fit this runtime. */
  validateConfig(fn: FunctionConfigT): void;
  supportsMode(mode: InvokeMode): boolean;
  /** The record input: used for the warm-up invocation and the working-set recordings. */
  recordParams(fn: FunctionConfigT): Record<string, unknown>;
  /** Checks and encodes params (INVALID_PARAMS); may read the object store. */
  prepareInput(
    fn: FunctionConfigT,
    params: Record<string, unknown>,
    deps: RuntimeDeps,
  ): Promise<PreparedInput>;
  /** Boots a fresh VM for `fn` in `vmm` and leaves it paused where the base snapshot is taken. */
  boot(vmm: VmmProcess, fn: FunctionConfigT): Promise<void>;
  /** Runs one invocation in the paused VM of `vmm`; function failures are outcomes, not throws. */
  run(
    vmm: VmmProcess,
    fn: FunctionConfigT,
    input: PreparedInput,
    timeoutMs: number,
    rec: PhaseRecorder,
  ): Promise<InvokeOutcome>;
}
