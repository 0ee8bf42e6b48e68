// The persist contract (Firecracker's `Persist` trait): every stateful part has `save()` that
// returns plain JSON (no fds, no pointers, bigints as decimal strings) and a restore path that
// treats the state as untrusted input and validates it against a TypeBox schema first
// (`validateState` in common/state.ts).

export interface Persist<State> {
  save(): State;
}
