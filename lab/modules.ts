// Which kernel modules the lab's L1 loads, in an order that satisfies their dependencies. Debian's
// kernel package ships no modules.dep (depmod runs at install time), so the dependencies are read
// from each module's own .modinfo strings ("depends=a,b", "softdep=pre: c").

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { FaasnapError } from '../common/errors.js';

/**
 * What L1 needs: KVM on AMD SVM, virtio-pci disks, ext4 (with its crc32c), virtio-9p, and FUSE
 * for the fault-injection tests (test/support/faultfs.ts).
 */
export const LAB_MODULES = [
  'kvm_amd',
  'virtio_pci',
  'virtio_blk',
  'crc32c_generic',
  'ext4',
  '9pnet_virtio',
  '9p',
  'fuse',
] as const;

/** Module names compare with '-' and '_' alike, as modprobe does. */
export function moduleName(fileOrName: string): string {
  return (fileOrName.split('/').at(-1) ?? '').replace(/\.ko$/, '').replaceAll('-', '_');
}

export interface ModuleDependencies {
  /** depends=: must be loaded first. */
  hard: string[];
  /** The pre part of softdep=: loaded first where they exist as files (they may name aliases,
   * e.g. jbd2's crypto-crc32c, which LAB_MODULES then provides by name). */
  soft: string[];
}

/** The dependencies a module's .modinfo section names. */
export function modinfoDependencies(ko: Uint8Array): ModuleDependencies {
  const text = Buffer.from(ko).toString('latin1');
  const hard: string[] = [];
  const soft: string[] = [];
  for (const m of text.matchAll(/\0depends=([^\0]*)\0/g)) {
    hard.push(...m[1]!.split(',').filter(Boolean));
  }
  for (const m of text.matchAll(/\0softdep=([^\0]*)\0/g)) {
    const pre = /pre:\s*([^:]*?)(?:\s+post:|$)/.exec(m[1]!);
    if (pre) soft.push(...pre[1]!.split(/\s+/).filter(Boolean));
  }
  return { hard: [...new Set(hard.map(moduleName))], soft: [...new Set(soft.map(moduleName))] };
}

/**
 * Load order for `wanted` and everything they depend on: each module after its dependencies.
 * `files` maps module names to paths; `deps` gives a module's dependencies; `builtin` names
 * what the kernel has built in (nothing to load).
 */
export function loadOrder(
  wanted: readonly string[],
  files: ReadonlyMap<string, string>,
  deps: (name: string) => ModuleDependencies,
  builtin: ReadonlySet<string> = new Set(),
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    if (builtin.has(name) || state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new FaasnapError(
        'LAB_SETUP_FAILED',
        `module dependency cycle: ${[...chain, name].join(' -> ')}`,
      );
    }
    const file = files.get(name);
    if (!file) {
      throw new FaasnapError(
        'LAB_SETUP_FAILED',
        `kernel module ${name} not found (needed by ${chain.join(' -> ') || 'the lab'})`,
      );
    }
    state.set(name, 'visiting');
    const { hard, soft } = deps(name);
    for (const d of soft) if (files.has(d)) visit(d, [...chain, name]);
    for (const d of hard) visit(d, [...chain, name]);
    state.set(name, 'done');
    order.push(file);
  };
  for (const w of wanted) visit(moduleName(w), []);
  return order;
}

/** Paths (relative to `modulesDir`) of the modules L1 loads, in load order. */
export function labModuleOrder(modulesDir: string): string[] {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) files.set(moduleName(e.name), relative(modulesDir, p));
    }
  };
  walk(modulesDir);
  let builtin = new Set<string>();
  try {
    builtin = new Set(
      readFileSync(join(modulesDir, 'modules.builtin'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(moduleName),
    );
  } catch {
    // An image without modules.builtin: every dependency must then be a file.
  }
  return loadOrder(
    LAB_MODULES,
    files,
    (name) => modinfoDependencies(readFileSync(join(modulesDir, files.get(name)!))),
    builtin,
  );
}
