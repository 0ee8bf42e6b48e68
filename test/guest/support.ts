// Shared by the Linux tier: where the guest kernel and the test image are, and a booted guest
// with a ready agent in a VMM process (the path the daemon uses). A boot takes about a minute on
// a PVM host, so each test file boots once and reuses the guest for its checks.

import { existsSync } from 'node:fs';
import { AgentClient } from '../../guest/agent/client.js';
import type { ReadyMessage } from '../../guest/agent/protocol.js';
import type { AgentStorage } from '../../guest/agent/storage.js';
import { builtKernelPath } from '../../guest/kernel/index.js';
import { GUEST_INIT_PATH, TEST_ROOTFS_VARIANT, rootfsPath } from '../../guest/rootfs/index.js';
import { VmmProcess } from '../../process/client.js';
import { KVM_PRESENT } from '../kvm/support.js';

export const AGENT_BOOT_TIMEOUT_MS = 5 * 60_000;

export interface GuestFiles {
  kernel: string;
  rootfs: string;
}

/**
 * The kernel and test image, or what is missing (a skip reason). With FAASNAP_REQUIRE_KVM=1
 * (CI, whose set-up builds both) a missing part throws instead.
 */
export function guestFiles(): GuestFiles | string {
  const kernel = process.env.FAASNAP_KERNEL ?? builtKernelPath();
  const rootfs = rootfsPath(TEST_ROOTFS_VARIANT);
  const missing = !KVM_PRESENT
    ? '/dev/kvm is missing'
    : !kernel || !existsSync(kernel)
      ? 'no guest kernel built (guest/kernel/build.sh)'
      : !existsSync(rootfs)
        ? `no ${TEST_ROOTFS_VARIANT} image built (guest/rootfs/build.sh ${TEST_ROOTFS_VARIANT})`
        : undefined;
  if (missing === undefined) return { kernel: kernel!, rootfs };
  if (process.env.FAASNAP_REQUIRE_KVM === '1')
    throw new Error(`the Linux tier must run here (FAASNAP_REQUIRE_KVM=1): ${missing}`);
  return `Linux tier did not run: ${missing}`;
}

export interface BootedGuest {
  vmm: VmmProcess;
  agent: AgentClient;
  ready: ReadyMessage;
  /** Boot request → agent ready, ms. */
  bootMs: number;
  console(): string;
}

/** Boots the test image in a fresh VMM process and connects to its agent. */
export async function bootGuest(
  files: GuestFiles,
  opts: { agentSocket: string; memMiB?: number; vcpus?: number; storage?: AgentStorage },
): Promise<BootedGuest> {
  const t0 = performance.now();
  const vmm = await VmmProcess.spawn();
  let log = '';
  vmm.onConsole = (c) => (log = (log + Buffer.from(c).toString('latin1')).slice(-16384));
  try {
    await vmm.call({
      type: 'boot-linux',
      kernel: files.kernel,
      rootfs: files.rootfs,
      init: GUEST_INIT_PATH,
      memMiB: opts.memMiB ?? 256,
      vcpus: opts.vcpus ?? 2,
      agentSocket: opts.agentSocket,
    });
    const agent = await AgentClient.connect(opts.agentSocket, { storage: opts.storage });
    const ready = await agent.waitReady(AGENT_BOOT_TIMEOUT_MS);
    return { vmm, agent, ready, bootMs: performance.now() - t0, console: () => log };
  } catch (e) {
    await vmm.kill();
    throw new Error(`boot failed: ${(e as Error).message}\n--- console ---\n${log}`);
  }
}
