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
  GUEST_TIMEOUT: { status: 504, message: 'guest did not finish within its timeout' },
  CONSOLE_WAIT_TIMEOUT: { status: 504, message: 'guest console output did not match in time' },
  // Virtio
  VIRTQUEUE_INVALID: { status: 500, message: 'malformed virtqueue from the guest' },
  DEVICE_IO: { status: 500, message: 'device backend I/O failed' },
  // Persisted state
  STATE_INVALID: { status: 422, message: 'persisted state is invalid' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class FaasnapError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, detail?: string, details: Record<string, unknown> = {}) {
    const entry = ERRORS[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message);
    this.name = 'FaasnapError';
    this.code = code;
    this.status = entry.status;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isFaasnapError(e: unknown, code?: ErrorCode): e is FaasnapError {
  return e instanceof FaasnapError && (code === undefined || e.code === code);
}
