// Tier 3: the real Linux guest (guest/kernel/build.sh) boots in our VMM with a tiny busybox
// initramfs on 1 and 2 vCPUs, reaches /init, and powers off cleanly; a kernel panic stops the
// VM with a clear error and releases everything; pages the guest frees are zero in its memory
// (sanitised pages) unless it boots without them. A boot takes ~20-25 s on the PVM host (guest
// kernel code is emulated), so each case boots once, the sanitised-pages case twice (with and
// without them, so that its count can fail).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import { builtKernelPath } from '../../guest/kernel/index.js';
import { busyboxInitramfs } from '../../guest/kernel/initramfs.js';
import { UNSANITISED_PAGES_PARAMS, createLinuxVm } from '../../vmm/boot/linux-vm.js';
import { runLinuxVm } from '../../vmm/boot/linux-run.js';
import { kvmTest, openFds, threads, threadsSettled, vmMappings } from '../kvm/support.js';
import { skipOrFail } from '../support/skip.js';

const BUSYBOX = '/bin/busybox';
const BOOT_TIMEOUT_MS = 6 * 60_000;
const TEST_TIMEOUT_MS = BOOT_TIMEOUT_MS + 60_000;
const MARKER = 'faasnap-init: up';
/** An unusual RAM size, so its mapping can be told apart from Node's own. */
const MEM_PANIC_MIB = 136;

/** Mappings of this process exactly `bytes` long. */
function mappingsOfSize(bytes: number): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) =>
      l
        .split(' ')[0]!
        .split('-')
        .map((h) => parseInt(h, 16)),
    )
    .filter(([a, b]) => b! - a! === bytes).length;
}

/** True for an ELF without PT_INTERP (a dynamically linked busybox cannot run alone). */
function isStatic(file: Buffer): boolean {
  const phoff = Number(file.readBigUInt64LE(32));
  const phnum = file.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    if (file.readUInt32LE(phoff + i * 56) === 3) return false; // PT_INTERP
  }
  return true;
}

/** The kernel and a static busybox, or a skip saying what is missing. */
function prerequisites(t: TestContext): { kernel: string; busybox: Buffer } | undefined {
  const kernel = process.env.FAASNAP_KERNEL ?? builtKernelPath();
  if (!kernel || !existsSync(kernel)) {
    skipOrFail(t, 'Linux tier did not run: no guest kernel built (run guest/kernel/build.sh)');
    return undefined;
  }
  const busybox = existsSync(BUSYBOX) ? readFileSync(BUSYBOX) : undefined;
  if (!busybox || !isStatic(busybox)) {
    skipOrFail(
      t,
      `Linux tier did not run: ${BUSYBOX} is not a static busybox (apt install busybox-static)`,
    );
    return undefined;
  }
  return { kernel, busybox };
}

/** /init: the marker with the online CPU count, then a clean power-off. */
const INIT = `#!/bin/sh
echo "${MARKER}"
/bin/busybox mount -t proc proc /proc
echo "faasnap-init: cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)"
/bin/busybox poweroff -f
`;

async function withInitramfs<T>(busybox: Buffer, init: string, fn: (p: string) => Promise<T>) {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-initramfs-'));
  try {
    const path = join(dir, 'initramfs.cpio');
    writeFileSync(path, busyboxInitramfs({ busybox, init }));
    return await fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const vcpus of [1, 2]) {
  kvmTest(
    `Linux boots to /init on ${vcpus} vCPU(s) and powers off`,
    async (t) => {
      const pre = prerequisites(t);
      if (!pre) return;
      await withInitramfs(pre.busybox, INIT, async (initrd) => {
        const before = { fds: openFds(), threads: threads() };
        const { vm } = createLinuxVm({ kernel: pre.kernel, initrd, memMiB: 256, vcpus });
        const r = await runLinuxVm(vm, { timeoutMs: BOOT_TIMEOUT_MS, marker: MARKER });
        const console = vm.console.text();
        t.diagnostic(
          `to /init ${(((r.markerMs ?? NaN) - (r.startedMs ?? 0)) / 1000).toFixed(1)} s, ` +
            `power-off ${(((r.powerOffMs ?? NaN) - (r.startedMs ?? 0)) / 1000).toFixed(1)} s`,
        );
        assert.equal(r.exit.reason, 'shutdown', `${r.exit.error?.message ?? ''}\n${console}`);
        assert.ok(r.markerMs !== undefined, 'init ran');
        assert.match(console, new RegExp(`faasnap-init: cpus=${vcpus}\\b`));
        assert.equal(r.panic, undefined);
        assert.equal(vm.state, 'stopped');
        assert.deepEqual({ fds: openFds(), threads: await threadsSettled(before.threads) }, before);
      });
    },
    TEST_TIMEOUT_MS,
  );
}

kvmTest(
  'a kernel panic stops the VM with GUEST_KERNEL_PANIC and releases everything',
  async (t) => {
    const pre = prerequisites(t);
    if (!pre) return;
    // /init exits: the kernel panics with "Attempted to kill init!".
    await withInitramfs(pre.busybox, '#!/bin/sh\nexit 7\n', async (initrd) => {
      // Mappings first: their async read starts libuv's thread pool (Node 24 starts it lazily).
      // Only those a VM makes (KVM's, guest RAM's size): the JS heap's come and go.
      const maps = await vmMappings([MEM_PANIC_MIB]);
      const before = { fds: openFds(), threads: threads(), maps };
      const { vm } = createLinuxVm({
        kernel: pre.kernel,
        initrd,
        memMiB: MEM_PANIC_MIB,
        vcpus: 1,
      });
      assert.equal(mappingsOfSize(MEM_PANIC_MIB << 20), 1, 'guest RAM is one mapping');
      const r = await runLinuxVm(vm, { timeoutMs: BOOT_TIMEOUT_MS });
      assert.equal(r.exit.reason, 'crash', vm.console.text());
      assert.ok(isFaasnapError(r.exit.error, 'GUEST_KERNEL_PANIC'));
      assert.match(r.panic ?? '', /Attempted to kill init! exitcode=0x00000700/);
      assert.match(r.exit.error?.message ?? '', /Attempted to kill init/);
      assert.equal(vm.state, 'stopped');
      assert.deepEqual(
        { fds: openFds(), threads: await threadsSettled(before.threads) },
        { fds: before.fds, threads: before.threads },
      );
      // Node's heap may map or unmap a region meanwhile; the guest RAM mapping must be gone.
      assert.equal(await vmMappings([MEM_PANIC_MIB]), before.maps, 'no mapping left behind');
      assert.equal(mappingsOfSize(MEM_PANIC_MIB << 20), 0, 'guest RAM unmapped');
    });
  },
  TEST_TIMEOUT_MS,
);

/** A line no kernel or program writes: pages holding it three times over come from the test. */
const STALE_LINE = 'faasnap stale page 5a17';
const STALE_MIB = 16;
const FREED = 'faasnap-init: freed';

/** /init: a file of STALE_LINE in the root tmpfs, deleted (its pages freed); then it waits. */
const FREE_INIT = `#!/bin/sh
/bin/busybox yes '${STALE_LINE}' | /bin/busybox head -c ${STALE_MIB << 20} > /stale
/bin/busybox rm /stale
echo "${FREED}"
exec /bin/busybox sleep 3600
`;

/** Pages of guest RAM that hold STALE_LINE three times in a row (never the script's one copy). */
function stalePages(vm: ReturnType<typeof createLinuxVm>['vm']): number {
  const needle = Buffer.from(`${STALE_LINE}\n`.repeat(3));
  let pages = 0;
  for (const r of vm.memory.regions) {
    const bytes = Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.length);
    for (let off = 0; off < bytes.length; off += 4096) {
      if (bytes.subarray(off, off + 4096).includes(needle)) pages++;
    }
  }
  return pages;
}

/** Boots `initrd`, waits for FREED on the console, pauses, counts stale pages and stops. */
async function stalePagesAfter(
  pre: { kernel: string },
  initrd: string,
  cmdline: readonly string[],
): Promise<number> {
  const { vm } = createLinuxVm({ kernel: pre.kernel, initrd, memMiB: 256, vcpus: 1, cmdline });
  const exited = vm.wait();
  try {
    vm.start();
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    while (!vm.console.text().includes(FREED)) {
      assert.equal(vm.state, 'running', `the guest stopped before freeing:\n${vm.console.text()}`);
      assert.ok(Date.now() < deadline, `no "${FREED}" in time:\n${vm.console.text()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await vm.pause();
    return stalePages(vm);
  } finally {
    vm.stop();
    await exited;
  }
}

kvmTest(
  'sanitised pages: what the guest frees is zero in its memory, and stays there without them',
  async (t) => {
    const pre = prerequisites(t);
    if (!pre) return;
    await withInitramfs(pre.busybox, FREE_INIT, async (initrd) => {
      const sanitised = await stalePagesAfter(pre, initrd, []);
      const unsanitised = await stalePagesAfter(pre, initrd, UNSANITISED_PAGES_PARAMS);
      t.diagnostic(
        `pages still holding the freed file: ${sanitised} sanitised, ${unsanitised} not`,
      );
      assert.equal(sanitised, 0, 'every page of the freed file was cleared');
      // Without init_on_free most of the 16 MiB is still there: the count above can fail.
      assert.ok(unsanitised > ((STALE_MIB << 20) / 4096) * 0.5, `${unsanitised} stale pages`);
    });
  },
  2 * TEST_TIMEOUT_MS,
);
