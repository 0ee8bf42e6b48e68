// Uncompressed initramfs images (cpio "newc", Documentation/driver-api/early-userspace/
// buffer-format.rst) written in TypeScript: small test and rescue systems need no cpio tool, and
// uncompressed is the only sane format here (decompression runs emulated in the guest). The
// kernel unpacks the archive into its rootfs and runs /init.

import { FaasnapError } from '../../common/errors.js';

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export interface CpioEntry {
  /** Path inside the archive, without a leading slash ("bin/sh"). */
  name: string;
  /** Full st_mode: file type bits | permissions. */
  mode: number;
  /** File contents, or the link target for a symlink. */
  data?: Uint8Array | string;
  /** Device number for character/block devices. */
  rdev?: { major: number; minor: number };
}

const MAGIC = '070701';
const TRAILER = 'TRAILER!!!';

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new FaasnapError('GUEST_IMAGE_INVALID', `cpio field ${n} out of range`);
  }
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function record(ino: number, e: CpioEntry): Buffer[] {
  const name = Buffer.from(`${e.name}\0`, 'utf8');
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  const fields = [
    ino,
    e.mode,
    0, // uid: root
    0, // gid
    (e.mode & 0o170000) === S_IFDIR ? 2 : 1, // nlink
    0, // mtime: reproducible archives
    data.length,
    0,
    0,
    e.rdev?.major ?? 0,
    e.rdev?.minor ?? 0,
    name.length,
    0, // check: unused by newc
  ];
  const header = Buffer.from(MAGIC + fields.map(hex8).join(''), 'ascii');
  return [
    header,
    name,
    Buffer.alloc(pad4(header.length + name.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ];
}

/** A newc archive of `entries` (parents before children) and the trailer. */
export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => {
    if (e.name.startsWith('/') || e.name.length === 0 || e.name.includes('\0')) {
      throw new FaasnapError('GUEST_IMAGE_INVALID', `cpio name ${JSON.stringify(e.name)}`);
    }
    parts.push(...record(i + 1, e));
  });
  parts.push(...record(0, { name: TRAILER, mode: 0 }));
  return Buffer.concat(parts);
}

export interface BusyboxInitramfsOptions {
  /** A statically linked busybox binary (Debian's busybox-static: /bin/busybox). */
  busybox: Uint8Array;
  /** The /init script (run by busybox sh). */
  init: string;
}

/**
 * A minimal system: /init, /bin/busybox with /bin/sh, mount points, and /dev/console (the
 * kernel opens it for init's stdio before any devtmpfs is mounted).
 */
export function busyboxInitramfs(o: BusyboxInitramfsOptions): Buffer {
  const dir = (name: string): CpioEntry => ({ name, mode: S_IFDIR | 0o755 });
  return buildCpio([
    dir('bin'),
    dir('dev'),
    dir('proc'),
    dir('sys'),
    dir('tmp'),
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: { major: 5, minor: 1 } },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: o.busybox },
    { name: 'bin/sh', mode: S_IFLNK | 0o777, data: 'busybox' },
    { name: 'init', mode: S_IFREG | 0o755, data: o.init },
  ]);
}
