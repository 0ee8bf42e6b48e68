// Virtio devices described as plain config (persisted in snapshots), and the factory that turns
// a description into a device with its host backend, new or restored from saved state. Both
// open the backend the same way, so a restored VM gets the same devices with the same backends.

import { Type, type Static } from '@sinclair/typebox';
import { validateState } from '../../../common/state.js';
import {
  FileBlockBackend,
  VirtioBlock,
  VirtioBlockStateSchema,
  type VirtioBlockOptions,
} from './block/device.js';
import {
  VirtioConsole,
  VirtioConsoleStateSchema,
  type VirtioConsoleOptions,
} from './console/device.js';
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
  return build(spec, {
    block: (opts) => new VirtioBlock(opts),
    console: (opts) => new VirtioConsole(opts),
  });
}

/**
 * The restore side: the device on a backend opened from `spec` as by createVirtioDevice, with
 * its untrusted saved state. Throws STATE_INVALID, with the backend closed.
 */
export function restoreVirtioDevice(spec: VirtioDeviceSpec, state: unknown): CreatedDevice {
  // Checked before the backend opens (a console backend replaces the socket at its path); the
  // device's restore checks again and compares the state with the backend.
  if (spec.kind === 'virtio-blk') validateState(spec.kind, VirtioBlockStateSchema, state);
  else validateState(spec.kind, VirtioConsoleStateSchema, state);
  return build(spec, {
    block: (opts) => VirtioBlock.restore(opts, state),
    console: (opts) => VirtioConsole.restore(opts, state),
  });
}

/** Makes the device model on its backend: new, or restored. */
interface Make {
  block(opts: VirtioBlockOptions): VirtioDevice;
  console(opts: VirtioConsoleOptions): VirtioDevice;
}

function build(spec: VirtioDeviceSpec, make: Make): CreatedDevice {
  switch (spec.kind) {
    case 'virtio-blk': {
      const backend = new FileBlockBackend(spec.path, { writable: spec.writable });
      return withBackend(backend, () =>
        make.block({ backend, readOnly: !spec.writable, serial: spec.serial }),
      );
    }
    case 'virtio-console': {
      const backend = UnixSocketConsoleBackend.open({ path: spec.socket });
      return withBackend(backend, () => make.console({ backend, portName: spec.portName }));
    }
  }
}

function withBackend(backend: { close(): void }, make: () => VirtioDevice): CreatedDevice {
  try {
    return { device: make(), resources: [backend] };
  } catch (e) {
    backend.close();
    throw e;
  }
}
