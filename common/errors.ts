// The one error registry of the project (fastify/undici style): every error a user can see has
// a stable code, a message template and the HTTP status the daemon maps it to. Code throws
// `new FaasnapError('CODE', details)` and never invents ad-hoc error strings.

export const ERRORS = {
  // Host / native layer
  NATIVE_SYSCALL: { status: 500, message: 'system call failed' },
  KVM_UNAVAILABLE: { status: 503, message: '/dev/kvm is missing or not accessible' },
  KVM_API_VERSION: { status: 503, message: 'unsupported KVM API version' },
  KVM_CAPABILITY_MISSING: { status: 503, message: 'a required KVM capability is missing' },
  // VM configuration and lifecycle
  INVALID_VM_CONFIG: { status: 400, message: 'invalid VM configuration' },
  INVALID_VM_STATE: { status: 409, message: 'operation not allowed in the current VM state' },
  GUEST_IMAGE_INVALID: { status: 400, message: 'guest image cannot be loaded' },
  GUEST_MEMORY_ACCESS: { status: 500, message: 'guest memory access out of range' },
  BUS_CONFLICT: { status: 500, message: 'device address ranges overlap' },
  // Guest behaviour
  GUEST_TRIPLE_FAULT: { status: 502, message: 'guest triple-faulted (KVM_EXIT_SHUTDOWN)' },
  GUEST_EMULATION_FAILURE: { status: 502, message: 'KVM could not emulate a guest instruction' },
  GUEST_ENTRY_FAILED: { status: 502, message: 'KVM failed to enter the guest' },
  GUEST_UNHANDLED_EXIT: { status: 502, message: 'guest caused an exit the VMM does not handle' },
  GUEST_KERNEL_PANIC: { status: 502, message: 'guest kernel panicked' },
  GUEST_TIMEOUT: { status: 504, message: 'guest did not finish within its timeout' },
  CONSOLE_WAIT_TIMEOUT: { status: 504, message: 'guest console output did not match in time' },
  // VMM processes
  VMM_CRASHED: { status: 502, message: 'the VMM process exited unexpectedly' },
  VMM_MEMORY_LIMIT: {
    status: 502,
    message: 'the VMM process was killed for exceeding its memory limit (cgroup)',
  },
  VMM_SECCOMP: {
    status: 502,
    message: 'the VMM process was stopped by its seccomp filter (a system call it may not make)',
  },
  VMM_START_FAILED: { status: 503, message: 'a VMM process could not be started' },
  VMM_INTERNAL: { status: 500, message: 'internal error in the VMM process (a bug: report it)' },
  // Virtio
  VIRTQUEUE_INVALID: { status: 500, message: 'malformed virtqueue from the guest' },
  DEVICE_IO: { status: 500, message: 'device backend I/O failed' },
  // Persisted state
  STATE_INVALID: { status: 422, message: 'persisted state is invalid' },
  // Guest agent channel (docs/agent-protocol.md)
  AGENT_PROTOCOL: { status: 502, message: 'malformed message on the guest agent channel' },
  AGENT_FRAME_TOO_LARGE: { status: 413, message: 'agent message exceeds the maximum frame size' },
  AGENT_DISCONNECTED: { status: 502, message: 'the guest agent channel closed' },
  AGENT_TIMEOUT: { status: 504, message: 'the guest agent did not answer in time' },
  AGENT_CHANNEL: { status: 500, message: 'the guest agent channel cannot be set up' },
  // Function invocations (errors reported by the guest agent)
  FUNCTION_NOT_FOUND: { status: 404, message: 'function not found in the guest' },
  FUNCTION_ERROR: { status: 500, message: 'function failed' },
  FUNCTION_TIMEOUT: { status: 504, message: 'function exceeded its timeout' },
  // Snapshot files (state file + memory file)
  SNAPSHOT_MISSING: { status: 404, message: 'snapshot file not found' },
  SNAPSHOT_TRUNCATED: { status: 422, message: 'snapshot file is truncated' },
  SNAPSHOT_CORRUPT: { status: 422, message: 'snapshot file is corrupt' },
  SNAPSHOT_VERSION: { status: 422, message: 'unsupported snapshot format version' },
  SNAPSHOT_TEMPLATE_MISMATCH: {
    status: 409,
    message: 'snapshot was taken with a different CPU template',
  },
  SNAPSHOT_MEMORY_MISMATCH: {
    status: 422,
    message: 'memory file does not match the snapshot state file',
  },
  SNAPSHOT_IO: { status: 500, message: 'snapshot file I/O failed' },
  // FaaSnap loader (regions, working-set groups, loading set)
  INVALID_LOADER_OPTIONS: { status: 400, message: 'invalid memory loader options' },
  LOADING_SET_INVALID: { status: 422, message: 'loading-set manifest is invalid' },
  LOADING_SET_STALE: {
    status: 409,
    message: 'loading set does not belong to this snapshot (record it again)',
  },
  WORKING_SET_UNOBSERVABLE: {
    status: 500,
    message:
      "the recorder cannot see the memory file's page cache (Linux answers mincore only to the file's owner or a writer)",
  },
  // Daemon API (docs/api.md): requests, resources, lifecycle, limits
  REQUEST_INVALID: { status: 400, message: 'request does not match the API schema' },
  UNAUTHORIZED: { status: 401, message: 'missing or wrong API token' },
  REQUEST_TOO_LARGE: { status: 413, message: 'request body exceeds the size limit' },
  DAEMON_CONFIG: { status: 400, message: 'invalid daemon configuration' },
  ROUTE_NOT_FOUND: { status: 404, message: 'no such route' },
  INVALID_PARAMS: { status: 400, message: 'invalid function parameters' },
  FUNCTION_UNKNOWN: { status: 404, message: 'no such function' },
  FUNCTION_EXISTS: { status: 409, message: 'a function with this name already exists' },
  FUNCTION_STATE: {
    status: 409,
    message: 'operation not allowed in the function lifecycle state',
  },
  FUNCTION_NOT_READY: { status: 409, message: 'function has no ready snapshot (deploy it first)' },
  SNAPSHOT_UNKNOWN: { status: 404, message: 'no such snapshot' },
  SNAPSHOT_NOT_READY: { status: 409, message: 'snapshot is not complete' },
  SNAPSHOT_NOT_RECORDED: {
    status: 409,
    message: 'snapshot has no recorded working set for this memory mode',
  },
  SNAPSHOT_IN_USE: { status: 409, message: 'snapshot is in use' },
  VM_UNKNOWN: { status: 404, message: 'no such VM' },
  INVOCATION_UNKNOWN: { status: 404, message: 'no such invocation' },
  TRACE_UNKNOWN: { status: 404, message: 'no such trace' },
  OBJECT_UNKNOWN: { status: 404, message: 'no such object in the object store' },
  RUNTIME_UNAVAILABLE: {
    status: 501,
    message: 'this function runtime is not available yet (its guest is not built)',
  },
  MODE_UNSUPPORTED: { status: 422, message: 'memory mode not supported for this function' },
  RESOURCE_LIMIT: { status: 429, message: 'resource limit reached' },
  CLIENT_LIMIT: { status: 429, message: 'this client has its limit of work in flight' },
  OBJECT_STORE_UNAVAILABLE: { status: 503, message: 'the object store (Redis) is not available' },
  DAEMON_RESTARTED: { status: 503, message: 'the daemon restarted while this operation ran' },
  DAEMON_UNREACHABLE: { status: 503, message: 'cannot reach the faasnap daemon' },
  DAEMON_INTERNAL: { status: 500, message: 'internal daemon error' },
  UI_NOT_BUILT: { status: 503, message: 'the web dashboard is not built (npm run build:ui)' },
  // Hardware-KVM lab (faasnap lab, docs/lab.md)
  LAB_PACKAGE_MISSING: { status: 503, message: 'a package the lab needs is not installed' },
  LAB_SETUP_FAILED: { status: 500, message: 'the lab could not be set up' },
  LAB_BOOT_FAILED: { status: 502, message: 'the lab machine did not start the command' },
  LAB_TIMEOUT: { status: 504, message: 'the command in the lab did not finish within its timeout' },
  LAB_INTERRUPTED: { status: 503, message: 'the lab run was interrupted' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class FaasnapError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    detail?: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    const entry = ERRORS[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message, options);
    this.name = 'FaasnapError';
    this.code = code;
    this.status = entry.status;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** An error as it is stored, answered or sent between processes. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * The body of any thrown value: a FaasnapError keeps its code and details (omitted when empty);
 * anything else is a bug, reported as `internal`, with its stack only when `withStack` (never
 * to API clients).
 */
export function errorBody(
  e: unknown,
  internal: ErrorCode,
  opts: { withStack?: boolean } = {},
): ErrorBody {
  if (e instanceof FaasnapError)
    return Object.keys(e.details).length > 0
      ? { code: e.code, message: e.message, details: e.details }
      : { code: e.code, message: e.message };
  const err = e instanceof Error ? e : new Error(String(e));
  return opts.withStack
    ? { code: internal, message: err.message, details: { stack: err.stack } }
    : { code: internal, message: err.message };
}

/**
 * Revives an error body (`{code, message, details}`) that crossed a process or HTTP boundary.
 * A code this registry does not know becomes `fallback`, with the original code in details.
 */
export function errorFromBody(body: unknown, fallback: ErrorCode, text = ''): FaasnapError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as {
    code?: unknown;
    message?: unknown;
    details?: Record<string, unknown>;
  };
  const known = typeof b.code === 'string' && Object.hasOwn(ERRORS, b.code);
  const details = { ...(b.details ?? {}) };
  if (!known && b.code !== undefined) details.originalCode = b.code;
  const e = new FaasnapError(known ? (b.code as ErrorCode) : fallback, undefined, details);
  if (typeof b.message === 'string') e.message = b.message;
  else if (text) e.message = `${e.message}: ${text}`;
  return e;
}

export function isFaasnapError(e: unknown, code?: ErrorCode): e is FaasnapError {
  return e instanceof FaasnapError && (code === undefined || e.code === code);
}
