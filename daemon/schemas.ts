// TypeBox schemas of the daemon API: the one source of request validation, response
// serialisation and the OpenAPI document (daemon/openapi.json is generated from them).

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MEMORY_MODES } from '../loader/modes.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const RUNTIMES = ['micro', 'python', 'node'] as const;
export const Runtime = Type.Union(
  RUNTIMES.map((r) => Type.Literal(r)),
  { description: 'micro runs a micro-guest; python/node run in the Linux guest through its agent' },
);
export type RuntimeName = (typeof RUNTIMES)[number];

export const INVOKE_MODES = ['warm', ...MEMORY_MODES] as const;
export const Mode = Type.Union(
  INVOKE_MODES.map((m) => Type.Literal(m)),
  { description: 'how the instance starts: warm VM, or a snapshot memory mode' },
);
export type InvokeMode = (typeof INVOKE_MODES)[number];

export const FUNCTION_STATES = [
  'registered',
  'booting',
  'warm',
  'snapshotted',
  'recorded',
  'ready',
  'failed',
] as const;
export const FunctionState = Type.Union(FUNCTION_STATES.map((s) => Type.Literal(s)));
export type FunctionStateName = (typeof FUNCTION_STATES)[number];

export const ErrorBody = Type.Object(
  {
    code: Type.String({ description: 'registry code (docs/errors.md)' }),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: 'Error', description: 'every 4xx/5xx answer' },
);
export type ErrorBodyT = Static<typeof ErrorBody>;

export const Params = Type.Record(Type.String(), Type.Unknown(), {
  description: 'function parameters (a JSON object)',
});

export const FUNCTION_NAME = '^[a-z0-9][a-z0-9_-]{0,62}$';
export const Name = Type.String({ pattern: FUNCTION_NAME, description: 'function name' });
export const Id = Type.String({ pattern: '^[a-z]+-[0-9a-f]{8,32}$', maxLength: 64 });

const specProps = {
  name: Name,
  runtime: Runtime,
  handler: Type.String({
    minLength: 1,
    maxLength: 128,
    description:
      'micro: the micro-guest (touch, hello, hang); python/node: a function bundled in the guest image (guest/functions/<name>), or the name of the uploaded code',
  }),
  memoryMiB: Type.Integer({ minimum: 8, maximum: 65536, default: 128 }),
  vcpus: Type.Integer({ minimum: 1, maximum: 8, default: 1 }),
  defaultMode: Type.Union(
    INVOKE_MODES.map((m) => Type.Literal(m)),
    { default: 'faasnap' },
  ),
  timeoutMs: Type.Integer({ minimum: 1, maximum: 600_000, default: 30_000 }),
  recordParams: Type.Optional(Params),
  code: Type.Optional(
    Type.String({
      maxLength: 1 << 20,
      description:
        'python/node: the function source (a module defining the handler); deploy writes it into the guest tmpfs, so it is in every snapshot, and `handler` names it. micro functions take no code (400).',
    }),
  ),
  stateMiB: Type.Integer({
    minimum: 0,
    maximum: 65536,
    default: 0,
    description:
      'micro only: MiB of non-zero function state placed in guest memory before the base snapshot',
  }),
};

/** Registration body: fields with a default may be left out. */
export const FunctionSpec = Type.Object(
  {
    ...specProps,
    memoryMiB: Type.Optional(specProps.memoryMiB),
    vcpus: Type.Optional(specProps.vcpus),
    defaultMode: Type.Optional(specProps.defaultMode),
    timeoutMs: Type.Optional(specProps.timeoutMs),
    stateMiB: Type.Optional(specProps.stateMiB),
  },
  { additionalProperties: false },
);
/** A registration with every default filled in. */
export const FunctionConfig = Type.Object(specProps);
export type FunctionConfigT = Static<typeof FunctionConfig>;

export const Function = Type.Object(
  {
    ...specProps,
    state: FunctionState,
    error: Nullable(ErrorBody),
    readySnapshot: Nullable(Type.String()),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { $id: 'Function' },
);
export type FunctionT = Static<typeof Function>;

export const SnapshotStatus = Type.Union([
  Type.Literal('creating'),
  Type.Literal('complete'),
  Type.Literal('failed'),
]);
export const Snapshot = Type.Object(
  {
    id: Type.String(),
    function: Type.String(),
    status: SnapshotStatus,
    kind: Type.Union([Type.Literal('base'), Type.Literal('copy')]),
    source: Nullable(Type.String()),
    dir: Type.String(),
    memoryBytes: Type.Integer(),
    recorded: Type.Object({ faasnap: Type.Boolean(), reap: Type.Boolean() }),
    cacheState: Type.Union([
      Type.Literal('unknown'),
      Type.Literal('dropped'),
      Type.Literal('loaded'),
    ]),
    error: Nullable(ErrorBody),
    createdAt: Type.String(),
  },
  { $id: 'Snapshot' },
);
export type SnapshotT = Static<typeof Snapshot>;

export const SnapshotInspect = Type.Object(
  {
    id: Type.String(),
    cpuTemplate: Type.String(),
    config: Type.Record(Type.String(), Type.Unknown()),
    checksum: Type.String(),
    memoryBytes: Type.Integer(),
    nonZero: Type.Object({ bytes: Type.Integer(), regions: Type.Integer() }),
    residentFraction: Type.Number(),
    loadingSet: Nullable(
      Type.Object({
        bytes: Type.Integer(),
        regions: Type.Integer(),
        scans: Type.Integer(),
        groups: Type.Array(Type.Object({ group: Type.Integer(), bytes: Type.Integer() })),
      }),
    ),
    reap: Nullable(Type.Object({ pages: Type.Integer(), bytes: Type.Integer() })),
  },
  { $id: 'SnapshotInspect' },
);
export type SnapshotInspectT = Static<typeof SnapshotInspect>;

export const VM_PURPOSES = ['boot', 'warmup', 'record', 'invocation', 'warm'] as const;
export const Vm = Type.Object(
  {
    id: Type.String(),
    function: Type.String(),
    purpose: Type.Union(VM_PURPOSES.map((p) => Type.Literal(p))),
    state: Type.Union([
      Type.Literal('starting'),
      Type.Literal('paused'),
      Type.Literal('running'),
      Type.Literal('idle', { description: 'a warm VM waiting for its next invocation' }),
      Type.Literal('stopping'),
    ]),
    pid: Nullable(Type.Integer()),
    memoryMiB: Type.Integer(),
    vcpus: Type.Integer(),
    invocation: Nullable(Type.String()),
    startedAt: Type.String(),
  },
  { $id: 'Vm' },
);
export type VmT = Static<typeof Vm>;

export const Phase = Type.Object({
  name: Type.String(),
  startMs: Type.Number(),
  durationMs: Type.Number(),
});

export const InvokeRequest = Type.Object(
  {
    params: Type.Optional(Params),
    mode: Type.Optional(Mode),
    snapshot: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
  },
  { additionalProperties: false },
);
export type InvokeRequestT = Static<typeof InvokeRequest>;

export const Invocation = Type.Object(
  {
    id: Type.String(),
    function: Type.String(),
    snapshot: Nullable(Type.String()),
    mode: Type.String(),
    status: Type.Union([
      Type.Literal('running'),
      Type.Literal('succeeded'),
      Type.Literal('failed'),
    ]),
    result: Type.Unknown({ description: 'the function result (null while running or failed)' }),
    error: Nullable(ErrorBody),
    traceId: Type.String(),
    vm: Nullable(Type.String()),
    phases: Type.Array(Phase),
    durationMs: Nullable(Type.Number()),
    startedAt: Type.String(),
    finishedAt: Nullable(Type.String()),
  },
  { $id: 'Invocation' },
);
export type InvocationT = Static<typeof Invocation>;

export const Span = Type.Object({
  spanId: Type.String(),
  parentSpanId: Nullable(Type.String()),
  name: Type.String(),
  startMs: Type.Number({ description: 'from the start of the trace' }),
  durationMs: Type.Number(),
  attributes: Type.Record(Type.String(), Type.Unknown()),
  error: Nullable(Type.String()),
});
export const Trace = Type.Object(
  { traceId: Type.String(), startedAt: Type.String(), spans: Type.Array(Span) },
  { $id: 'Trace' },
);
export type TraceT = Static<typeof Trace>;

export const Health = Type.Object({
  status: Type.Literal('ok'),
  version: Type.String(),
  uptimeS: Type.Number(),
  pool: Type.Object({ size: Type.Integer(), idle: Type.Integer() }),
  vms: Type.Integer(),
  redis: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  runtimes: Type.Record(Type.String(), Type.Boolean()),
  guest: Type.Object(
    {
      kernel: Nullable(Type.String()),
      rootfs: Nullable(Type.String()),
      sanitisedPages: Type.Boolean({
        description: 'guests boot with init_on_free: free pages are zero in snapshots',
      }),
    },
    { description: 'the guest kernel and root image Linux functions boot (null: none built)' },
  ),
  jail: Type.Object(
    {
      enabled: Type.Boolean(),
      missing: Type.Array(Type.String(), {
        description: 'what this host lacks to jail VMM processes (empty: nothing)',
      }),
    },
    { description: 'whether VMM processes run jailed (docs/security.md)' },
  ),
});
