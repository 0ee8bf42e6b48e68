// The VMM process jail (issue #14), after Firecracker's jailer: a VMM process parses
// guest-controlled data (virtqueues, block requests, the agent channel), so it runs with as
// little as possible. Each jailed process gets its own mount, PID, network, IPC and UTS
// namespaces (util-linux `unshare`); a root of its own on a small tmpfs holding only /usr (the
// system's programs and libraries, read-only; no /etc, no /home) and the paths it is given
// (read-only unless said otherwise, at their host paths, so paths in actions need no
// translation), /proc of its PID namespace and /dev/null, zero and urandom; an unprivileged uid
// and gid with no supplementary groups, no capabilities (bounding set cleared) and
// no_new_privs (`setpriv`); no core dumps and a limit on open files. Devices it needs (/dev/kvm)
// are opened by the daemon and inherited as file descriptors, so the jail has no device nodes
// and the uid needs no group. With a cgroup (process/cgroup.ts) the process enters it first, so
// its limits hold from its first instruction. The mounts live in the jail's own namespace: the host never sees
// them, and they go when its last process ends.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaasnapError } from '../common/errors.js';
import type { VmmCgroup } from './cgroup.js';
import { SECCOMP_ENV } from './seccomp.js';

export interface JailSpec {
  /** An existing directory the jail's root is mounted on, inside the jail's namespace only. */
  mountPoint: string;
  /** Unprivileged uid and gid of the jailed process (need not exist in /etc/passwd). */
  uid: number;
  gid: number;
  /** Host paths visible read-only inside, at the same path. */
  readOnly: string[];
  /** Host paths visible read-write inside, at the same path. */
  readWrite: string[];
  /** RLIMIT_NOFILE inside. */
  maxFiles: number;
  /** The process's own cgroup (process/cgroup.ts), entered before anything else runs. */
  cgroup?: VmmCgroup | undefined;
}

/** Programs the jail is built with (util-linux and coreutils, Debian essentials). */
const TOOLS = ['/usr/bin/unshare', '/usr/bin/setpriv', '/usr/sbin/chroot', '/bin/sh'];

/**
 * Runs as root, as PID 1 of the new namespaces: builds the root, then becomes the command
 * (chroot, then setpriv drops the uid, groups and every capability). Paths come as arguments,
 * never inside the script text.
 */
const INIT = `set -eu
root=$1 uid=$2 gid=$3 nofile=$4 cgroup=$5; shift 5
if [ -n "$cgroup" ]; then echo 0 > "$cgroup/cgroup.procs"; fi
mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m faasnap-jail "$root"
mkdir "$root/usr"
mount --rbind /usr "$root/usr"
mount -o remount,bind,ro,nosuid,nodev "$root/usr"
for l in bin lib lib64 sbin; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$root/$l"; fi
done
expose() {
  if [ -d "$2" ]; then mkdir -p "$root$2"; else mkdir -p "$root$(dirname "$2")"; : > "$root$2"; fi
  mount --rbind "$2" "$root$2"
  mount -o "remount,bind,$1,nosuid,nodev" "$root$2"
}
mode=ro
while [ "$1" != -- ]; do
  case "$1" in --ro) mode=ro ;; --rw) mode=rw ;; *) expose "$mode" "$1" ;; esac
  shift
done
shift
mkdir -p "$root/proc" "$root/tmp" "$root/dev"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
for d in null zero urandom; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
chmod 1777 "$root/tmp"
ulimit -n "$nofile"
ulimit -c 0
exec chroot "$root" setpriv --reuid "$uid" --regid "$gid" --clear-groups \\
  --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
`;

/** The command line that runs `command` (absolute program path first) inside a jail. */
export function jailCommand(spec: JailSpec, command: string[]): { file: string; args: string[] } {
  const paths = (list: string[]): string[] =>
    list.map((p) => {
      if (!p.startsWith('/') || p.includes('\0'))
        throw new TypeError(`jail paths must be absolute: ${JSON.stringify(p)}`);
      return p;
    });
  if (spec.uid <= 0 || spec.gid <= 0) throw new TypeError('a jail needs a non-root uid and gid');
  return {
    file: TOOLS[0]!,
    args: [
      ...['--mount', '--pid', '--net', '--ipc', '--uts', '--fork', '--kill-child'],
      '--propagation=private',
      '--',
      '/bin/sh',
      '-c',
      INIT,
      'faasnap-jail',
      spec.mountPoint,
      String(spec.uid),
      String(spec.gid),
      String(spec.maxFiles),
      spec.cgroup?.path ?? '',
      '--ro',
      ...paths(spec.readOnly),
      '--rw',
      ...paths(spec.readWrite),
      '--',
      ...command,
    ],
  };
}

/**
 * What this host lacks to jail VMM processes (empty when nothing): root (namespaces, mounts and
 * the uid change need it) and the programs the jail is built with.
 */
export function jailMissing(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root privileges (the daemon runs as another user)');
  for (const t of TOOLS) {
    try {
      accessSync(t, constants.X_OK);
    } catch {
      missing.push(`${t} (Debian util-linux / coreutils)`);
    }
  }
  if (!existsSync('/proc/self/ns/pid')) missing.push('PID namespaces (/proc/self/ns/pid)');
  return missing;
}

/** Where a jailed VMM process finds the descriptors the daemon opened for it. */
export const JAIL_FD_ENV = {
  kvm: 'FAASNAP_KVM_FD',
  userfaultfd: 'FAASNAP_USERFAULTFD_FD',
} as const;

/**
 * Starts `command` (a Node program with an IPC channel) in a jail, handing it /dev/kvm and, where
 * the host has it, /dev/userfaultfd (REAP) as inherited descriptors 4 and 5, and the write end
 * of the seccomp report pipe (process/seccomp.ts) as 6: a jailed program installs its filter.
 * The returned process is `unshare`'s; the jailed program is its child (jailedPid).
 */
export function spawnJailed(spec: JailSpec, command: string[]): ChildProcess {
  const open = (path: string): number => {
    try {
      return openSync(path, 'r+');
    } catch (e) {
      throw new FaasnapError('VMM_START_FAILED', `cannot open ${path} for a jailed VMM process`, {
        cause: e,
      });
    }
  };
  const kvm = open('/dev/kvm');
  let uffd: number | undefined;
  try {
    if (existsSync('/dev/userfaultfd')) uffd = open('/dev/userfaultfd');
    const { file, args } = jailCommand(spec, command);
    return spawn(file, args, {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', kvm, uffd ?? 'ignore', 'pipe'],
      env: {
        ...process.env,
        [JAIL_FD_ENV.kvm]: '4',
        [JAIL_FD_ENV.userfaultfd]: uffd === undefined ? '' : '5',
        [SECCOMP_ENV.reportFd]: '6',
      },
    });
  } finally {
    // The child has its copies.
    closeSync(kvm);
    if (uffd !== undefined) closeSync(uffd);
  }
}

/**
 * The host PID of the program `unshare` (pid `unsharePid`) runs in the jail, once it has forked
 * it. Signals go to that PID: dropping the uid clears the parent-death signal `--kill-child`
 * set, so killing `unshare` alone would leave the jailed program running.
 */
export function jailedPid(unsharePid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8');
    const first = Number(children.trim().split(/\s+/)[0]);
    return first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs a jailed program and its `unshare`, whatever stage its start has reached. `unshare`
 * first: told that its child died of SIGKILL it would exit complaining ("sigprocmask unblock
 * failed", util-linux 2.38), on every VM the daemon stops. The program is signalled itself:
 * dropping the uid cleared the parent-death signal `--kill-child` set. A child `unshare` is
 * forking at that moment still has that signal and dies with it.
 */
export function killJailed(unsharePid: number): void {
  const pid = jailedPid(unsharePid);
  for (const p of pid ? [unsharePid, pid] : [unsharePid]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** First uid (and gid) of jailed VMM processes; each process gets its own (jailIds). */
export const JAIL_ID_BASE = 1_100_000_000;
const JAIL_ID_COUNT = 1 << 16;

/**
 * Ids for jailed processes, one per process, so that one VMM process cannot touch another's
 * files (its sockets, a snapshot it is writing). They wrap after 65 536 processes, long after
 * the first holder is gone. None of them needs a passwd entry.
 */
export function jailIds(): () => number {
  let next = 0;
  return () => JAIL_ID_BASE + (next++ % JAIL_ID_COUNT);
}

/**
 * What every VMM process reads: the repository (built code, node_modules, the addon) and the
 * Node runtime running it, where that lies outside the repository.
 */
export function vmmRuntimePaths(): string[] {
  const repo = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  const node = dirname(dirname(process.execPath));
  return node === repo || node.startsWith(`${repo}/`) ? [repo] : [repo, node];
}
