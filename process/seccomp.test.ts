import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { native } from '../native/index.js';
import {
  SeccompReport,
  VMM_SYSCALLS,
  syscallName,
  syscallNumbers,
  syscallsAfterMarker,
} from './seccomp.js';

test('the list names real x86-64 calls, once each, and never socket or process creation', () => {
  assert.equal(syscallNumbers(VMM_SYSCALLS).length, new Set(VMM_SYSCALLS).size);
  // socket(2), clone(2) and clone3(2) are judged by the filter's own rules; the others would
  // let a compromised VMM leave its sandbox.
  const never = ['socket', 'clone', 'clone3', 'execve', 'execveat', 'ptrace', 'mount', 'setns'];
  for (const call of [...never, 'unshare', 'bpf', 'process_vm_writev'])
    assert.ok(!VMM_SYSCALLS.includes(call), call);
  assert.throws(() => syscallNumbers(['no_such_call']), /unknown x86-64 system call: no_such_call/);
  assert.equal(syscallName(0), 'read');
  assert.equal(syscallName(41), 'socket');
  assert.equal(syscallName(100_000), undefined);
});

test('the measurement counts only calls after the marker, and sockets by family', () => {
  const log = [
    '10  execve("/usr/bin/node", ["node"], 0x7ffd /* 20 vars */) = 0',
    '10  openat(AT_FDCWD, "/dev/kvm", O_RDWR) = 3',
    '10  seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, {len=90, filter=0x1}) = 0',
    '11  ioctl(12, KVM_RUN, 0 <unfinished ...>',
    '10  socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 13',
    '10  <... ioctl resumed>) = 0',
    '10  --- SIGCHLD {si_signo=SIGCHLD} ---',
    '10  +++ exited with 0 +++',
    '12  pread64(5, "..."..., 4096, 0) = 4096',
  ].join('\n');
  assert.deepEqual(
    new Map([...syscallsAfterMarker(log)].sort()),
    new Map([
      ['ioctl', 1],
      ['pread64', 1],
      ['socket(AF_UNIX)', 1],
    ]),
  );
  assert.equal(syscallsAfterMarker('10  openat(AT_FDCWD, "x", O_RDONLY) = 3').size, 0);
});

test('a report names the call only for a process its filter ended', async () => {
  const pipe = new PassThrough();
  const report = new SeccompReport(pipe);
  pipe.end('seccomp 41\n');
  pipe.destroy();
  await report.ended;
  assert.equal(report.syscall, 41);
  const err = report.error(7, native.SECCOMP_EXIT_CODE, null);
  assert.equal(err?.code, 'VMM_SECCOMP');
  assert.deepEqual(err?.details, { syscall: 'socket', nr: 41 });
  assert.match(err!.message, /pid 7 .* socket \(41\)/);
  // Another exit status is not the filter's.
  assert.equal(report.error(7, 1, null), undefined);
  const none = new SeccompReport(undefined);
  assert.equal(none.error(7, native.SECCOMP_EXIT_CODE, null), undefined);
  assert.equal(none.error(7, null, 'SIGKILL'), undefined);
  // Killed by the kernel (a thread blocking SIGSYS): typed, without the call's name.
  assert.equal(none.error(7, null, 'SIGSYS')?.code, 'VMM_SECCOMP');
});
