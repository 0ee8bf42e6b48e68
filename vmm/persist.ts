// The persist contract (Firecracker's per-device `Persist`): every stateful part of the VM has
// `save()` that returns its typed state as plain JSON (no fds, no pointers, bigints as decimal
// strings), and a static `restore(args, state)` (Restorer) that takes its constructor arguments
// separately from the state, treats the state as untrusted input and validates it against the
// part's TypeBox schema first (`validateState` in common/state.ts), throwing STATE_INVALID.
// docs/architecture.md, "Persist".
//
// One contract for every part, virtio device models included: a device's args hold its host
// backend, opened from its spec by the device factory exactly as on creation, so a restored VM
// gets the same backends. The transport validates its own state, then restores its device from
// its part of it and is built around that device (Firecracker's order).

export interface Persist<State> {
  save(): State;
}

/** The static side: `Class.restore(args, untrusted)` builds a part from saved state. */
export interface Restorer<Args, T extends Persist<unknown>> {
  restore(args: Args, state: unknown): T;
}
