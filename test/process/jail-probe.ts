// Run inside a jail by jail.test.ts: tries what a compromised VMM process might, and reports
// each outcome over the IPC channel the jail must carry through to it.

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';

const [port, readOnlyFile, writableDir] = process.argv.slice(2) as [string, string, string];

const attempt = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
};

const status = readFileSync('/proc/self/status', 'utf8');
const field = (name: string): string => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)![1]!;
const limits = readFileSync('/proc/self/limits', 'utf8');
const limit = (name: string): string => new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(limits)![1]!;

const tcp = await new Promise<string>((resolve) => {
  const s = connect(Number(port), '127.0.0.1');
  s.on('connect', () => {
    s.destroy();
    resolve('connected');
  });
  s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
});

process.send!({
  uid: process.getuid!(),
  gid: process.getgid!(),
  // Supplementary groups as the kernel has them (process.getgroups() adds the gid).
  groups: /^Groups:\t(.*)$/m.exec(status)![1]!.trim(),
  capEff: field('CapEff'),
  capBnd: field('CapBnd'),
  noNewPrivs: field('NoNewPrivs'),
  maxFiles: limit('Max open files'),
  maxCore: limit('Max core file size'),
  pids: readdirSync('/proc').filter((p) => /^\d+$/.test(p)),
  shadow: attempt(() => readFileSync('/etc/shadow')),
  rootEntries: readdirSync('/').sort(),
  writeReadOnly: attempt(() => writeFileSync(readOnlyFile, 'overwritten')),
  writeWritable: attempt(() => writeFileSync(`${writableDir}/out`, 'written')),
  tcp,
});
process.disconnect();
