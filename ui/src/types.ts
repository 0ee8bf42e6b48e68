// The API's shapes, taken from the daemon's TypeBox schemas as types only (nothing of the
// daemon is bundled), so a change of the API shows up as a type error in the dashboard.

import type { Static } from '@sinclair/typebox';
import type { Health } from '../../daemon/schemas.js';

export type {
  ErrorBodyT,
  FunctionT,
  InvocationT,
  SnapshotInspectT,
  SnapshotT,
  TraceT,
  VmT,
} from '../../daemon/schemas.js';

export type HealthT = Static<typeof Health>;
