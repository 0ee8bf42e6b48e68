import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isFaasnapError } from '../../../common/errors.js';
import {
  createVirtioDevice,
  restoreVirtioDevice,
  type CreatedDevice,
  type VirtioDeviceSpec,
} from './factory.js';

let dir = '';
let image = '';
let socket = '';

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-factory-test-'));
  image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, Buffer.alloc(8 * 512));
  socket = path.join(dir, 'agent.sock');
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** How many fds this process has open on `file`. */
function fdsOn(file: string): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // the fd readdir itself used, closed by now
    }
  }).length;
}

function close(d: CreatedDevice): void {
  for (const r of d.resources) r.close();
}

const isStateInvalid = (e: unknown): boolean => isFaasnapError(e, 'STATE_INVALID');

test('a restored device matches the one created from the same spec', () => {
  const specs: VirtioDeviceSpec[] = [
    { kind: 'virtio-blk', path: image, writable: false, serial: 'disk0' },
    { kind: 'virtio-console', socket, portName: 'faasnap.agent' },
  ];
  for (const spec of specs) {
    const created = createVirtioDevice(spec);
    const saved: unknown = JSON.parse(JSON.stringify(created.device.save()));
    // One backend at a time: a console backend takes over the socket path.
    close(created);
    const restored = restoreVirtioDevice(spec, saved);
    try {
      assert.deepEqual(restored.device.save(), saved, spec.kind);
      assert.equal(restored.device.deviceType, created.device.deviceType);
      assert.equal(restored.device.availFeatures, created.device.availFeatures);
      assert.deepEqual(restored.device.queueMaxSizes, created.device.queueMaxSizes);
      assert.equal(restored.resources.length, 1);
    } finally {
      close(restored);
    }
  }
  assert.equal(fdsOn(image), 0);
  assert.equal(fs.existsSync(socket), false);
});

test('a malformed device state is STATE_INVALID and releases the backend', () => {
  const blk: VirtioDeviceSpec = { kind: 'virtio-blk', path: image, writable: false, serial: 'd' };
  const disk = { capacitySectors: 8, readOnly: true, serial: 'd' };
  const badDisks: unknown[] = [
    null,
    { ...disk, extra: 1 },
    { ...disk, capacitySectors: 9 }, // refused once the backend is open: another disk
    { ...disk, readOnly: false },
  ];
  for (const bad of badDisks) {
    assert.throws(() => restoreVirtioDevice(blk, bad), isStateInvalid, JSON.stringify(bad));
    assert.equal(fdsOn(image), 0, JSON.stringify(bad));
  }
  const con: VirtioDeviceSpec = { kind: 'virtio-console', socket };
  const port = { multiport: false, pendingControl: [], guestOpen: false };
  const badPorts: unknown[] = [
    undefined,
    { ...port, pendingControl: 'x' },
    { ...port, multiport: true }, // refused once the backend is open: the other shape
  ];
  for (const bad of badPorts) {
    assert.throws(() => restoreVirtioDevice(con, bad), isStateInvalid, JSON.stringify(bad));
    assert.equal(fs.existsSync(socket), false, 'socket closed and removed');
  }
});

test('the device state is checked before the backend opens', () => {
  // Backends that would fail to open: a malformed state is reported instead, and the file at
  // the socket path (which opening would have to replace) is left alone.
  const missing = path.join(dir, 'missing.img');
  assert.throws(
    () =>
      restoreVirtioDevice({ kind: 'virtio-blk', path: missing, writable: true, serial: '' }, {}),
    isStateInvalid,
  );
  const taken = path.join(dir, 'taken');
  fs.writeFileSync(taken, 'not a socket');
  assert.throws(
    () => restoreVirtioDevice({ kind: 'virtio-console', socket: taken }, {}),
    isStateInvalid,
  );
  assert.equal(fs.readFileSync(taken, 'utf8'), 'not a socket');
  // With a valid state the same specs fail on their backends, as creation does.
  for (const spec of [
    { kind: 'virtio-blk', path: missing, writable: true, serial: '' },
    { kind: 'virtio-console', socket: taken },
  ] as const) {
    assert.throws(
      () =>
        restoreVirtioDevice(
          spec,
          spec.kind === 'virtio-blk'
            ? { capacitySectors: 0, readOnly: false, serial: '' }
            : { multiport: false, pendingControl: [], guestOpen: false },
        ),
      (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
    );
  }
});
