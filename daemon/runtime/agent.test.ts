// unlessVmStops: an agent call races the VM's exit event. Pure logic: the VMM is a stand-in
// object with the hook and the console tail the function uses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaasnapError, isFaasnapError } from '../../common/errors.js';
import type { VmmProcess } from '../../process/client.js';
import { EXIT_EVENT_GRACE_MS, unlessVmStops } from './agent.js';

type Hook = Pick<VmmProcess, 'onVmExit' | 'consoleTail'>;
const CONSOLE = 'Kernel panic - not syncing: x\n';
const consoleTail = () => CONSOLE;
const exit = { reason: 'error', error: { code: 'GUEST_EMULATION_FAILURE', message: 'rip=x' } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a VM exit rejects the wait with the guest error and restores the previous hook', async () => {
  const seen: string[] = [];
  const vmm: Hook = { onVmExit: (e) => seen.push(e.reason), consoleTail };
  const previous = vmm.onVmExit;
  const p = unlessVmStops(vmm, new Promise(() => undefined), 'after the restore');
  vmm.onVmExit!(exit);
  await assert.rejects(
    p,
    (e) => isFaasnapError(e, 'GUEST_EMULATION_FAILURE') && e.details.guestConsole === CONSOLE,
  );
  assert.deepEqual(seen, ['error'], 'the previous hook still hears the exit');
  assert.equal(vmm.onVmExit, previous);
});

test('a closed channel waits briefly for the exit event and reports the exit instead', async () => {
  const vmm: Hook = { onVmExit: undefined, consoleTail };
  const p = unlessVmStops(vmm, Promise.reject(new FaasnapError('AGENT_DISCONNECTED')), 'x');
  await sleep(20);
  vmm.onVmExit!(exit);
  await assert.rejects(p, (e) => isFaasnapError(e, 'GUEST_EMULATION_FAILURE'));
});

test('a closed channel without an exit event is reported as such after the grace', async () => {
  const vmm: Hook = { onVmExit: undefined, consoleTail };
  const t0 = performance.now();
  const p = unlessVmStops(vmm, Promise.reject(new FaasnapError('AGENT_DISCONNECTED')), 'x');
  await assert.rejects(
    p,
    (e) => isFaasnapError(e, 'AGENT_DISCONNECTED') && e.details.guestConsole === CONSOLE,
  );
  assert.ok(performance.now() - t0 >= EXIT_EVENT_GRACE_MS - 5);
  assert.equal(vmm.onVmExit, undefined);
});

test('results and other errors pass through at once, without the guest console', async () => {
  const vmm: Hook = { onVmExit: undefined, consoleTail };
  assert.equal(await unlessVmStops(vmm, Promise.resolve(7), 'x'), 7);
  const t0 = performance.now();
  await assert.rejects(
    unlessVmStops(vmm, Promise.reject(new FaasnapError('FUNCTION_ERROR')), 'x'),
    (e) => isFaasnapError(e, 'FUNCTION_ERROR') && e.details.guestConsole === undefined,
  );
  assert.ok(performance.now() - t0 < EXIT_EVENT_GRACE_MS);
});
