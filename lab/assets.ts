// What the lab boots, prepared once per machine and cached under ${FAASNAP_CACHE}/lab: QEMU
// (Debian's qemu-system-x86), Debian's own amd64 kernel (its .deb fetched with apt-get download
// and unpacked, modules included) and an uncompressed initramfs of busybox, lab/init.sh and the
// modules L1 needs. The initramfs is keyed by the hash of everything that goes into it.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaasnapError } from '../common/errors.js';
import { cacheRoot } from '../guest/kernel/index.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { labModuleOrder } from './modules.js';

export const QEMU = '/usr/bin/qemu-system-x86_64';
const BUSYBOX = '/bin/busybox';
export const MKFS_EXT4 = '/sbin/mkfs.ext4';
/** Debian packages the lab needs on the host, by the file each provides. */
const HOST_PACKAGES: ReadonlyArray<[file: string, pkg: string]> = [
  [QEMU, 'qemu-system-x86'],
  [BUSYBOX, 'busybox-static'],
  [MKFS_EXT4, 'e2fsprogs'],
  ['/usr/bin/setpriv', 'util-linux'],
];
/** Debian's metapackage for the current amd64 kernel of the release. */
const KERNEL_METAPACKAGE = 'linux-image-amd64';

export interface LabAssets {
  qemu: string;
  /** Debian's bzImage. */
  kernel: string;
  kernelPackage: string;
  initramfs: string;
}

export function labCacheDir(): string {
  return join(cacheRoot(), 'lab');
}

function initScriptPath(): string {
  // lab/init.sh is not compiled: from dist/lab/ it is two folders up and over.
  const here = dirname(fileURLToPath(import.meta.url));
  const local = join(here, 'init.sh');
  return existsSync(local) ? local : join(here, '..', '..', 'lab', 'init.sh');
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new FaasnapError(
      'LAB_SETUP_FAILED',
      `${cmd} ${args.join(' ')}: ${(err.stderr || err.message).trim()}`,
    );
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Installs (as root) or names the missing host packages. */
export function ensureHostPackages(install: boolean, exists = existsSync): void {
  const missing = [...new Set(HOST_PACKAGES.filter(([f]) => !exists(f)).map(([, p]) => p))];
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!install || !isRoot()) {
    throw new FaasnapError(
      'LAB_PACKAGE_MISSING',
      `the lab needs ${missing.join(', ')}: run \`${cmd}\` as root`,
      { missing },
    );
  }
  process.stderr.write(`lab: installing ${missing.join(' ')}\n`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing]);
}

/** The versioned kernel package the metapackage points at (apt's local lists, no download). */
function currentKernelPackage(): string {
  const depends = (): string | undefined =>
    /Depends: (linux-image-[\w.+-]+)/.exec(run('apt-cache', ['depends', KERNEL_METAPACKAGE]))?.[1];
  let pkg: string | undefined;
  try {
    pkg = depends();
  } catch {
    pkg = undefined;
  }
  if (!pkg && isRoot()) {
    run('apt-get', ['update', '-qq']);
    pkg = depends();
  }
  if (!pkg)
    throw new FaasnapError(
      'LAB_SETUP_FAILED',
      `apt knows no ${KERNEL_METAPACKAGE}: run \`apt-get update\``,
    );
  return pkg;
}

/** Unpacks the kernel package into the cache once; returns its root folder. */
function ensureKernelPackage(pkg: string): string {
  const root = join(labCacheDir(), 'kernel', pkg);
  if (existsSync(join(root, 'boot'))) return root;
  mkdirSync(dirname(root), { recursive: true });
  const tmp = mkdtempSync(`${root}.tmp-`);
  try {
    process.stderr.write(`lab: fetching ${pkg}\n`);
    run('apt-get', ['download', '-q', pkg], { cwd: tmp });
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new FaasnapError('LAB_SETUP_FAILED', `apt-get download ${pkg} left no .deb`);
    run('dpkg-deb', ['-x', join(tmp, deb), join(tmp, 'root')]);
    renameSync(join(tmp, 'root'), root);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return root;
}

function only<T>(items: T[], what: string): T {
  if (items.length !== 1)
    throw new FaasnapError('LAB_SETUP_FAILED', `expected one ${what}, found ${items.length}`);
  return items[0]!;
}

/** Builds (or finds) the initramfs for the unpacked kernel in `root`. */
function ensureInitramfs(root: string): string {
  const version = only(readdirSync(join(root, 'lib', 'modules')), 'module folder');
  const modulesDir = join(root, 'lib', 'modules', version);
  const order = labModuleOrder(modulesDir);
  const init = readFileSync(initScriptPath());
  const busybox = readFileSync(BUSYBOX);
  const h = createHash('sha256').update('cpio-v1\0').update(init).update(busybox).update(version);
  for (const m of order) h.update(`\0${m}`);
  const path = join(labCacheDir(), `initramfs-${h.digest('hex').slice(0, 16)}.cpio`);
  if (existsSync(path)) return path;

  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'modules', 'lab', 'newroot'].map((d) => ({
      kind: 'dir' as const,
      path: d,
    })),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: init, mode: 0o755 },
    {
      kind: 'file',
      path: 'modules.order',
      data: Buffer.from(order.map((m) => m.replaceAll('/', '_')).join('\n') + '\n'),
    },
    ...order.map((m) => ({
      kind: 'file' as const,
      path: `modules/${m.replaceAll('/', '_')}`,
      data: readFileSync(join(modulesDir, m)),
    })),
  ];
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, writeCpio(entries));
  renameSync(tmp, path);
  return path;
}

/**
 * Everything `faasnap lab run` boots. With `install`, missing Debian packages are installed
 * (root only); without, a missing one is a LAB_PACKAGE_MISSING error naming the install command.
 */
export function ensureLabAssets(opts: { install: boolean }): LabAssets {
  ensureHostPackages(opts.install);
  const kernelPackage = currentKernelPackage();
  const root = ensureKernelPackage(kernelPackage);
  const kernel = only(
    readdirSync(join(root, 'boot')).filter((f) => f.startsWith('vmlinuz-')),
    'vmlinuz in the kernel package',
  );
  return {
    qemu: QEMU,
    kernel: join(root, 'boot', kernel),
    kernelPackage,
    initramfs: ensureInitramfs(root),
  };
}
