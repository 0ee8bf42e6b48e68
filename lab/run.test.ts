import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { commandScript, qemuArgs, shellQuote } from './run.js';

test('the command script reproduces arguments, folder and environment exactly in sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-lab-script-'));
  try {
    const tricky = `it's "quoted" $HOME \`x\` \\ end`;
    const script = commandScript(
      [
        'sh',
        '-c',
        'printf "%s|%s|%s|%s" "$1" "$TRICKY" "$(pwd)" "${PWD_OF_CALLER-unset}"',
        'sh',
        tricky,
      ],
      dir,
      {
        TRICKY: tricky,
        PATH: process.env.PATH,
        'NOT-A-NAME': 'x',
        PWD: '/elsewhere',
        UNDEF: undefined,
      },
    );
    writeFileSync(join(dir, 'cmd.sh'), script);
    const out = execFileSync('sh', [join(dir, 'cmd.sh')], { encoding: 'utf8', env: {} });
    assert.equal(out, `${tricky}|${tricky}|${dir}|unset`);
    assert.doesNotMatch(script, /NOT-A-NAME|\/elsewhere|UNDEF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder that does not exist in L1 ends the script with 125', () => {
  const status = (() => {
    try {
      execFileSync('sh', ['-c', commandScript(['true'], '/nonexistent/x', {})], {
        stdio: 'ignore',
      });
      return 0;
    } catch (e) {
      return (e as { status: number }).status;
    }
  })();
  assert.equal(status, 125);
});

test('shellQuote survives every byte sh treats specially', () => {
  const s = `a'b"c$d\`e\\f\ng h*`;
  assert.equal(execFileSync('sh', ['-c', `printf %s ${shellQuote(s)}`], { encoding: 'utf8' }), s);
});

test('QEMU runs the SVM CPU model with the shares, the data disk and both serial ports', () => {
  const args = qemuArgs(
    { qemu: '/q', kernel: '/k', initramfs: '/i', kernelPackage: 'p' },
    { vcpus: 2, memoryMiB: 4096 },
    '/run/x',
    { project: '/p', cache: '/c' },
  );
  const joined = args.join(' ');
  assert.match(joined, /-cpu qemu64,\+svm,\+npt/);
  assert.match(joined, /-smp 2 -m 4096/);
  assert.match(joined, /-serial file:\/run\/x\/console.log -serial stdio/);
  for (const tag of ['run', 'hostroot', 'project', 'cache'])
    assert.match(joined, new RegExp(`mount_tag=${tag},`));
  assert.match(joined, /path=\/,mount_tag=hostroot,[^ ]*readonly=on/);
  assert.match(joined, /data\.img,format=raw,if=virtio,cache=none/);
});
