import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JAIL_ID_BASE, jailCommand, jailIds } from './jail.js';

const spec = {
  mountPoint: '/data/jail-root',
  uid: JAIL_ID_BASE,
  gid: JAIL_ID_BASE,
  readOnly: ['/repo', '/data/kernel dir'],
  readWrite: ['/tmp/sockets'],
  maxFiles: 64,
};

test('the jail command passes paths as arguments, never inside the script', () => {
  const { file, args } = jailCommand(spec, ['/usr/bin/node', '/repo/worker.js']);
  assert.equal(file, '/usr/bin/unshare');
  const script = args[args.indexOf('-c') + 1]!;
  assert.doesNotMatch(script, /kernel dir|\/repo|jail-root/);
  // After the script: $0, then mount point, uid, gid, file limit, cgroup ('' = none), the lists.
  assert.deepEqual(args.slice(args.indexOf('-c') + 2), [
    'faasnap-jail',
    '/data/jail-root',
    String(JAIL_ID_BASE),
    String(JAIL_ID_BASE),
    '64',
    '',
    '--ro',
    '/repo',
    '/data/kernel dir',
    '--rw',
    '/tmp/sockets',
    '--',
    '/usr/bin/node',
    '/repo/worker.js',
  ]);
  for (const ns of ['--mount', '--pid', '--net', '--ipc', '--uts', '--fork'])
    assert.ok(args.includes(ns));
});

test('a jail refuses relative paths and the root user', () => {
  assert.throws(() => jailCommand({ ...spec, readOnly: ['repo'] }, ['/bin/true']), /absolute/);
  assert.throws(() => jailCommand({ ...spec, readWrite: ['/a\0b'] }, ['/bin/true']), /absolute/);
  assert.throws(() => jailCommand({ ...spec, uid: 0 }, ['/bin/true']), /non-root/);
});

test('each jailed process gets its own id', () => {
  const next = jailIds();
  const ids = Array.from({ length: 1000 }, next);
  assert.equal(new Set(ids).size, 1000);
  assert.ok(ids.every((id) => id >= JAIL_ID_BASE));
});
