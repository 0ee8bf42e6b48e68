// Virtio devices described as plain config (persisted in snapshots), and the factory that turns
// a description into a device with its host backend. Restore uses the same factory, so a
// restored VM gets the same devices with the same backends.

import { Type, type Static } from '@sinclair/typebox';
import { FileBlockBackend, VirtioBlock } from './block/device.js';
import { VirtioConsole } from './console/device.js';
import { UnixSocketConsoleBackend } from './console/unix-socket-backend.js';
import type { VirtioDevice } from './device.js';

export const VirtioDeviceSpecSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('virtio-blk'),
      path: Type.String({ minLength: 1 }),
      writable: Type.Boolean(),
      serial: Type.String({ maxLength: 20 }),
    },
    { additionalProperties: false },
  ),
  // The agent channel: the host end is a Unix socket the VMM listens on.
  Type.Object(
    {
      kind: Type.Literal('virtio-console'),
      socket: Type.String({ minLength: 1, maxLength: 107 }),
      /** A named generic port (/dev/vportNp0) instead of the console /dev/hvc0. */
      portName: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    },
    { additionalProperties: false },
  ),
]);
export type VirtioDeviceSpec = Static<typeof VirtioDeviceSpecSchema>;

export interface CreatedDevice {
  device: VirtioDevice;
  /** Host resources to close with the VM. */
  resources: { close(): void }[];
}

export function createVirtioDevice(spec: VirtioDeviceSpec): CreatedDevice {
  switch (spec.kind) {
    case 'virtio-blk': {
      const backend = new FileBlockBackend(spec.path, { writable: spec.writable });
      try {
        const device = new VirtioBlock({ backend, readOnly: !spec.writable, serial: spec.serial });
        return { device, resources: [backend] };
      } catch (e) {
        backend.close();
        throw e;
      }
    }
    case 'virtio-console': {
      const backend = UnixSocketConsoleBackend.open({ path: spec.socket });
      try {
        return {
          device: new VirtioConsole({ backend, portName: spec.portName }),
          resources: [backend],
        };
      } catch (e) {
        backend.close();
        throw e;
      }
    }
  }
}
