// The persist contract (Firecracker's per-device `Persist`): every stateful part of the VM has
// `save()` that returns its typed state as plain JSON (no fds, no pointers, bigints as decimal
// strings), and a restore path that takes its constructor arguments separately from the state,
// treats the state as untrusted input and validates it against the part's TypeBox schema first
// (`validateState` in common/state.ts), throwing STATE_INVALID. docs/architecture.md, "Persist".
//
// Legacy devices, the virtio-mmio transport and the virtqueues restore through a static
// `restore(args, state)` (Restorer). A virtio device model is rebuilt by the factory from its
// spec (same backend) and receives its own state from its transport's restore, in the order the
// transport validates (PersistInPlace).

export interface Persist<State> {
  save(): State;
}

/** The static side: `Class.restore(args, untrusted)` builds a part from saved state. */
export interface Restorer<Args, T extends Persist<unknown>> {
  restore(args: Args, state: unknown): T;
}

/** A part restored into a freshly constructed instance (virtio device models). */
export interface PersistInPlace<State> extends Persist<State> {
  /** Validates `state` and applies it; throws STATE_INVALID when it does not fit this part. */
  restore(state: unknown): void;
}
