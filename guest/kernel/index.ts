// Where the guest kernel built by guest/kernel/build.sh lives. The cache key is the same hash the
// script computes (the test runs both): the first 16 hex digits of the SHA-256 of a manifest
//   "linux-source-6.1 <package version>\n" + one `sha256sum` line per input file
// for config.fragment, build.sh and patches/*.patch (in byte order), paths relative to
// guest/kernel/. Any change to an input gives a new key, so a stale kernel is never used.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaasnapError } from '../../common/errors.js';

export const LINUX_SOURCE_PACKAGE = 'linux-source-6.1';
const PATCH_NAME = /^[A-Za-z0-9._+-]+\.patch$/;

/** guest/kernel in the source tree (also when running from dist/). */
export function kernelSourceDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = here.endsWith(`${sep}dist${sep}guest${sep}kernel`);
  return compiled ? resolve(here, '../../../guest/kernel') : here;
}

/** The installed linux-source package's version (FAASNAP_LINUX_SOURCE_VERSION overrides). */
export function linuxSourceVersion(): string {
  const override = process.env.FAASNAP_LINUX_SOURCE_VERSION;
  if (override) return override;
  try {
    const v = execFileSync('dpkg-query', ['-W', '-f=${Version}', LINUX_SOURCE_PACKAGE], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (v) return v;
  } catch {
    // fall through to the error below
  }
  throw new FaasnapError(
    'GUEST_IMAGE_INVALID',
    `Debian package ${LINUX_SOURCE_PACKAGE} is not installed (needed to name the kernel build)`,
  );
}

export interface KernelKeyOptions {
  /** Directory with config.fragment, build.sh and patches/ (default: kernelSourceDir()). */
  dir?: string;
  /** Source package version (default: linuxSourceVersion()). */
  sourceVersion?: string;
}

/** The input files of a build, relative to the kernel directory, in manifest order. */
export function kernelInputs(dir = kernelSourceDir()): string[] {
  const patchesDir = join(dir, 'patches');
  const patches = existsSync(patchesDir)
    ? readdirSync(patchesDir)
        .filter((n) => n.endsWith('.patch'))
        .sort()
    : [];
  for (const p of patches) {
    // sha256sum escapes unusual names; keep names where its output is plain.
    if (!PATCH_NAME.test(p)) {
      throw new FaasnapError('GUEST_IMAGE_INVALID', `kernel patch name ${JSON.stringify(p)}`);
    }
  }
  return ['config.fragment', 'build.sh', ...patches.map((p) => `patches/${p}`)];
}

export function kernelCacheKey(opts: KernelKeyOptions = {}): string {
  const dir = opts.dir ?? kernelSourceDir();
  const version = opts.sourceVersion ?? linuxSourceVersion();
  let manifest = `${LINUX_SOURCE_PACKAGE} ${version}\n`;
  for (const rel of kernelInputs(dir)) {
    const digest = createHash('sha256')
      .update(readFileSync(join(dir, rel)))
      .digest('hex');
    manifest += `${digest}  ${rel}\n`;
  }
  return createHash('sha256').update(manifest).digest('hex').slice(0, 16);
}

/** ${FAASNAP_CACHE:-~/.cache/faasnap}, as build.sh uses it. */
export function cacheRoot(): string {
  return process.env.FAASNAP_CACHE || join(homedir(), '.cache', 'faasnap');
}

/** Where build.sh puts (or has put) the vmlinux for the current inputs. */
export function kernelPath(opts: KernelKeyOptions = {}): string {
  return join(cacheRoot(), 'kernel', kernelCacheKey(opts), 'vmlinux');
}

/** The built kernel's path, or undefined when build.sh has not run for the current inputs. */
export function builtKernelPath(opts: KernelKeyOptions = {}): string | undefined {
  try {
    const p = kernelPath(opts);
    return existsSync(p) ? p : undefined;
  } catch {
    return undefined; // no source package: nothing can have been built for it
  }
}
