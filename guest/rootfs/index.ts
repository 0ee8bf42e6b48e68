// Guest root filesystem images (guest/rootfs/build.sh): which variants exist, the cache key
// and path of each image, the paths inside the image that the VMM and daemon rely on, and a
// way to build a missing image. The key is computed exactly as build.sh computes it (a test
// compares the two), so the daemon can find a cached image without running bash.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaasnapError } from '../../common/errors.js';

/** Variants with a package list in guest/rootfs/packages/. */
export const ROOTFS_VARIANTS = ['small', 'small-node', 'full'] as const;
export type RootfsVariant = (typeof ROOTFS_VARIANTS)[number];

/**
 * The image the tests and `npm run demo` boot: Python and Node.js runtimes with the bundled
 * hello-class functions, at a tenth of the full image's size. setup.sh builds it.
 */
export const TEST_ROOTFS_VARIANT: RootfsVariant = 'small-node';

/** Inside every image. */
export const GUEST_INIT_PATH = '/sbin/faasnap-init';
export const GUEST_AGENT_PATH = '/opt/faasnap/agent/agent.py';
export const GUEST_NODE_RUNTIME_PATH = '/opt/faasnap/agent/node-runtime.mjs';
export const GUEST_FUNCTIONS_DIR = '/opt/faasnap/functions';
/** The agent channel: the virtio-console port named `faasnap.agent` (vmm/boot/linux-vm.ts). */
export const GUEST_AGENT_CHANNEL = 'port:faasnap.agent';

// Must match build.sh's cache_key().
const KEY_HEADER = 'faasnap-rootfs v1';
const KEY_HEX_CHARS = 16;

export function isRootfsVariant(v: string): v is RootfsVariant {
  return (ROOTFS_VARIANTS as readonly string[]).includes(v);
}

function checkVariant(v: string): RootfsVariant {
  if (!isRootfsVariant(v)) {
    throw new FaasnapError(
      'GUEST_IMAGE_INVALID',
      `unknown rootfs variant ${JSON.stringify(v)} (${ROOTFS_VARIANTS.join(', ')})`,
    );
  }
  return v;
}

/** Repository root: this file runs as dist/guest/rootfs/index.js (or from guest/rootfs). */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = here.endsWith(`${sep}dist${sep}guest${sep}rootfs`);
  return resolve(here, compiled ? '../../..' : '../..');
}

function filesUnder(root: string, rel: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(join(root, rel), { withFileTypes: true })) {
    const p = `${rel}/${e.name}`;
    // As `find -type f`: regular files only, symlinks not followed; no bytecode caches.
    if (e.isDirectory()) {
      if (e.name !== '__pycache__') out.push(...filesUnder(root, p));
    } else if (e.isFile() && !e.name.endsWith('.pyc')) {
      out.push(p);
    }
  }
  return out;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Repo-relative paths of every file an image is built from, in bytewise order. */
export function rootfsInputs(variant: string, root = repoRoot()): string[] {
  const v = checkVariant(variant);
  return [
    'guest/rootfs/build.sh',
    'guest/rootfs/init.c',
    `guest/rootfs/packages/${v}.txt`,
    'guest/agent/agent.py',
    'guest/agent/node-runtime.mjs',
    ...filesUnder(root, 'guest/functions'),
  ].sort(byteOrder);
}

/** The image's cache key: 16 hex digits of a sha256 over the variant and its inputs. */
export function rootfsCacheKey(variant: string, root = repoRoot()): string {
  // The same bytes build.sh hashes: a header line, then `sha256sum` output for each input.
  const lines = [`${KEY_HEADER} ${variant}\n`];
  for (const rel of rootfsInputs(variant, root)) {
    const digest = createHash('sha256')
      .update(fs.readFileSync(join(root, rel)))
      .digest('hex');
    lines.push(`${digest}  ${rel}\n`);
  }
  return createHash('sha256').update(lines.join('')).digest('hex').slice(0, KEY_HEX_CHARS);
}

/** ${FAASNAP_CACHE:-$HOME/.cache/faasnap}/rootfs */
export function rootfsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.FAASNAP_CACHE || join(env.HOME || os.homedir(), '.cache', 'faasnap');
  return join(base, 'rootfs');
}

/** Where the variant's image is (or will be) cached; the file may not exist yet. */
export function rootfsPath(
  variant: string,
  opts: { root?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const key = rootfsCacheKey(variant, opts.root);
  return join(rootfsCacheDir(opts.env), `${variant}-${key}.ext4`);
}

/**
 * Returns the cached image of `variant`, building it first when missing (needs root, network
 * access to the Debian mirror, and minutes: see docs/guest-rootfs.md). `log` gets build.sh's
 * progress lines.
 */
export async function ensureRootfs(
  variant: string,
  opts: { force?: boolean; log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const env = opts.env ?? process.env;
  const path = rootfsPath(variant, { env });
  if (!opts.force && fs.existsSync(path)) return path;
  const script = join(repoRoot(), 'guest', 'rootfs', 'build.sh');
  const args = [script, ...(opts.force ? ['--force'] : []), variant];
  const out = await new Promise<string>((resolveRun, reject) => {
    const child = spawn('bash', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) if (line) opts.log?.(line);
    });
    child.on('error', (e) => reject(e));
    child.on('close', (code) => {
      if (code === 0) resolveRun(stdout.trim().split('\n').at(-1) ?? '');
      else {
        reject(
          new FaasnapError('GUEST_IMAGE_INVALID', `build.sh ${variant} exited ${code}: ${tail}`),
        );
      }
    });
  });
  if (out !== path) {
    throw new FaasnapError('GUEST_IMAGE_INVALID', `build.sh wrote ${out}, expected ${path}`);
  }
  return path;
}
