// The saved state of a whole VM (persist contract): vCPUs, the in-kernel irqchip and PIT, the
// KVM clock and every device. Plain JSON; KVM structs as base64 blobs of checked size.

import { Type, type Static } from '@sinclair/typebox';
import { VirtioDeviceSpecSchema } from '../devices/virtio/factory.js';

/** The VM configuration a snapshot was taken with (restore re-creates the VM from it). */
export const VmConfigSchema = Type.Object(
  {
    memMiB: Type.Integer({ minimum: 8, maximum: 65536 }),
    vcpus: Type.Integer({ minimum: 1, maximum: 8 }),
    cpuTemplate: Type.Union([Type.Literal('host'), Type.Literal('pvm-safe')]),
    consoleLogBytes: Type.Integer({ minimum: 4096, maximum: 1 << 30 }),
  },
  { additionalProperties: false },
);

const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' });

export const VmSavedStateSchema = Type.Object(
  {
    /** Validated one by one by restoreVcpu. */
    vcpus: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 8 }),
    irqchip: Type.Object(
      { picMaster: Base64, picSlave: Base64, ioapic: Base64 },
      { additionalProperties: false },
    ),
    pit: Base64,
    clock: Base64,
    serial: Type.Unknown(),
    i8042: Type.Unknown(),
    virtio: Type.Array(Type.Object({ spec: VirtioDeviceSpecSchema, transport: Type.Unknown() }), {
      maxItems: 16,
    }),
  },
  { additionalProperties: false },
);
export type VmSavedState = Static<typeof VmSavedStateSchema>;
