// An uncompressed initramfs in the kernel's "newc" cpio format (Documentation/driver-api/
// early-userspace/buffer-format.rst): per entry a 110-byte ASCII header of hex fields, the
// NUL-terminated name and the data, each padded to 4 bytes, closed by a "TRAILER!!!" entry.
// Written here because the lab's initramfs holds a handful of entries and no tool we install
// writes device nodes without root-owned files on disk.

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function header(ino: number, mode: number, size: number, name: string, rdev = [0, 0]): Buffer {
  const nameBytes = Buffer.byteLength(name) + 1;
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0]!, rdev[1]!, nameBytes, 0];
  const h = Buffer.from('070701' + fields.map(hex8).join(''), 'ascii');
  const out = Buffer.alloc(h.length + nameBytes + pad4(h.length + nameBytes));
  h.copy(out);
  out.write(name, h.length, 'utf8');
  return out;
}

function withPadding(data: Uint8Array): Buffer[] {
  return [Buffer.from(data), Buffer.alloc(pad4(data.length))];
}

/** The archive bytes of `entries`, in order (parents must come before their children). */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (!path) throw new RangeError('cpio entry with an empty path');
    switch (e.kind) {
      case 'dir':
        parts.push(header(ino++, S_IFDIR | (e.mode ?? 0o755), 0, path));
        break;
      case 'file':
        parts.push(header(ino++, S_IFREG | (e.mode ?? 0o644), e.data.length, path));
        parts.push(...withPadding(e.data));
        break;
      case 'symlink': {
        const target = Buffer.from(e.target);
        parts.push(header(ino++, S_IFLNK | 0o777, target.length, path), ...withPadding(target));
        break;
      }
      case 'chardev':
        parts.push(header(ino++, S_IFCHR | (e.mode ?? 0o600), 0, path, [e.major, e.minor]));
        break;
    }
  }
  parts.push(header(0, 0, 0, 'TRAILER!!!'));
  return Buffer.concat(parts);
}
