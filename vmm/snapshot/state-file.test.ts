import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { isFaasnapError, type ErrorCode } from '../../common/errors.js';
import { checkMemoryFile, hashFile, removeStaleTemps } from '../../common/files.js';
import {
  decodeStateFile,
  encodeStateFile,
  readStateFile,
  writeStateFile,
  type StateFileContents,
} from './state-file.js';
import { tempDirs } from '../../test/support/temp-dirs.js';

const scratch = tempDirs('state');
const dir = scratch.root;
const fresh = (name = 'state.bin'): string => join(scratch.fresh(), name);

const MEM_SHA = 'ab'.repeat(32);
const contents: StateFileContents = {
  cpuTemplate: 'pvm-safe',
  config: { memMiB: 128, vcpus: 2 },
  state: { vcpus: [{ rip: '0x1000', tsc: '123456789012345678901' }], pit: 'AAEC', serial: null },
  memory: { size: 128 << 20, sha256: MEM_SHA },
};

const is =
  (code: ErrorCode, re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(isFaasnapError(e, code), `expected ${code}, got ${String(e)}`);
    if (re) assert.match((e as Error).message, re);
    return true;
  };

/** Recomputes the trailing SHA-256 the way the documented layout says (independent of the code). */
function reseal(buf: Buffer): Buffer {
  const end = buf.length - 32;
  createHash('sha256').update(buf.subarray(0, end)).digest().copy(buf, end);
  return buf;
}

test('round trip keeps template, config, state, memory size and hash', async () => {
  const p = fresh();
  const { checksum, bytes } = await writeStateFile(p, contents);
  assert.equal(statSync(p).size, bytes);
  const f = await readStateFile(p, { expectTemplate: 'pvm-safe' });
  assert.equal(f.version, 1);
  assert.equal(f.cpuTemplate, 'pvm-safe');
  assert.deepEqual(f.config, contents.config);
  assert.deepEqual(f.state, contents.state);
  assert.deepEqual(f.memory, { size: 128 << 20, sha256: MEM_SHA });
  assert.equal(f.checksum, checksum);
  // Without a memory hash the field stays absent.
  await writeStateFile(p, { ...contents, memory: { size: 4096 } });
  const g = await readStateFile(p);
  assert.deepEqual(g.memory, { size: 4096 });
  assert.notEqual(g.checksum, checksum);
  assert.deepEqual(readdirSync(join(p, '..')), ['state.bin'], 'no temp files left behind');
});

test('bytes follow the documented layout', () => {
  const b = encodeStateFile(contents);
  const body = Buffer.from(JSON.stringify({ config: contents.config, state: contents.state }));
  assert.equal(b.length, 80 + body.length + 32);
  assert.equal(b.subarray(0, 8).toString('latin1'), 'FSNPSTAT');
  assert.equal(b.readUInt32LE(8), 1);
  assert.equal(b.readUInt32LE(12), 1, 'flag: memory hash present');
  assert.equal(b.readBigUInt64LE(16), 128n << 20n);
  assert.equal(b.subarray(24, 56).toString('hex'), MEM_SHA);
  assert.equal(b.subarray(56, 72).toString('latin1'), 'pvm-safe\0\0\0\0\0\0\0\0');
  assert.equal(b.readUInt32LE(72), body.length);
  assert.equal(b.readUInt32LE(76), 0);
  assert.ok(b.subarray(80, 80 + body.length).equals(body));
  const digest = createHash('sha256')
    .update(b.subarray(0, 80 + body.length))
    .digest();
  assert.ok(b.subarray(80 + body.length).equals(digest));
  // Deterministic: the same contents give the same bytes.
  assert.ok(encodeStateFile(contents).equals(b));
});

test('a file truncated anywhere is SNAPSHOT_TRUNCATED', async () => {
  const full = encodeStateFile(contents);
  const p = fresh();
  for (const n of [0, 3, 8, 12, 40, 79, 80, 81, 100, full.length - 32, full.length - 1]) {
    writeFileSync(p, full.subarray(0, n));
    await assert.rejects(readStateFile(p), is('SNAPSHOT_TRUNCATED'), `cut at ${n}`);
  }
});

test('a flipped byte in header, body or checksum is SNAPSHOT_CORRUPT', async () => {
  const full = encodeStateFile(contents);
  const flips: [string, number][] = [
    ['version', 8],
    ['flags', 12],
    ['memory size', 17],
    ['memory hash', 30],
    ['template', 57],
    ['reserved', 77],
    ['body start', 80],
    ['body middle', 80 + Math.floor((full.length - 112) / 2)],
    ['checksum first', full.length - 32],
    ['checksum last', full.length - 1],
  ];
  for (const [where, off] of flips) {
    const b = Buffer.from(full);
    b[off] = b[off]! ^ 0x04;
    assert.throws(() => decodeStateFile(b), is('SNAPSHOT_CORRUPT'), where);
  }
  // A damaged body length cannot be told from a cut file; either way it is refused.
  const b = Buffer.from(full);
  b[72] = b[72]! ^ 0x01;
  assert.throws(
    () => decodeStateFile(b),
    (e: unknown) =>
      isFaasnapError(e, 'SNAPSHOT_CORRUPT') || isFaasnapError(e, 'SNAPSHOT_TRUNCATED'),
  );
  // Trailing bytes after the checksum.
  assert.throws(
    () => decodeStateFile(Buffer.concat([full, Buffer.from([0])])),
    is('SNAPSHOT_CORRUPT'),
  );
});

test('wrong magic is SNAPSHOT_CORRUPT, also for short files', () => {
  const b = encodeStateFile(contents);
  b.write('FSNPMEMX', 0, 'latin1');
  assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_CORRUPT', /bad magic/));
  assert.throws(() => decodeStateFile(Buffer.from('ELF')), is('SNAPSHOT_CORRUPT', /bad magic/));
  assert.throws(() => decodeStateFile(Buffer.from('FSNP')), is('SNAPSHOT_TRUNCATED'));
});

test('another format version with a good checksum is SNAPSHOT_VERSION', () => {
  const b = encodeStateFile(contents);
  b.writeUInt32LE(2, 8);
  assert.throws(
    () => decodeStateFile(reseal(b)),
    is('SNAPSHOT_VERSION', /version 2.*reads version 1/),
  );
  b.writeUInt32LE(0, 8);
  assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_VERSION'));
});

test('a template other than the host one is SNAPSHOT_TEMPLATE_MISMATCH', async () => {
  const p = fresh();
  await writeStateFile(p, contents);
  await assert.rejects(
    readStateFile(p, { expectTemplate: 'host' }),
    is('SNAPSHOT_TEMPLATE_MISMATCH', /'pvm-safe'.*'host'/),
  );
  const b = encodeStateFile(contents);
  b.fill(0, 56, 72).write('arm64', 56, 'latin1');
  assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_TEMPLATE_MISMATCH', /arm64/));
  b.fill(0, 56, 72).write('ho\0st', 56, 'latin1');
  assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_CORRUPT', /NUL-padded/));
});

test('writer-side inconsistencies behind a good checksum are SNAPSHOT_CORRUPT', () => {
  const cases: [string, (b: Buffer) => void][] = [
    ['unknown flag', (b) => b.writeUInt32LE(3, 12)],
    ['reserved set', (b) => b.writeUInt32LE(1, 76)],
    ['memory size 0', (b) => b.writeBigUInt64LE(0n, 16)],
    ['memory size unaligned', (b) => b.writeBigUInt64LE(4097n, 16)],
    ['memory size > 2^53', (b) => b.writeBigUInt64LE(1n << 60n, 16)],
    ['hash without flag', (b) => b.writeUInt32LE(0, 12)],
  ];
  for (const [why, mutate] of cases) {
    const b = encodeStateFile(contents);
    mutate(b);
    assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_CORRUPT'), why);
  }
  // Bodies that are not {config, state}.
  for (const json of ['[1]', '{"config":{}}', '{"config":1,"state":2,"x":3}', 'nul', '\u00ff']) {
    const body = Buffer.from(json, json === '\u00ff' ? 'latin1' : 'utf8');
    const b = Buffer.alloc(80 + body.length + 32);
    encodeStateFile(contents).copy(b, 0, 0, 80);
    b.writeUInt32LE(body.length, 72);
    body.copy(b, 80);
    assert.throws(() => decodeStateFile(reseal(b)), is('SNAPSHOT_CORRUPT', /body/), json);
  }
});

test('schemas validate config and state before they are returned', async () => {
  const p = fresh();
  await writeStateFile(p, contents);
  const configSchema = Type.Object({ memMiB: Type.Integer(), vcpus: Type.Integer() });
  const f = await readStateFile(p, { configSchema });
  assert.equal(f.config.vcpus, 2);
  await assert.rejects(
    readStateFile(p, { stateSchema: Type.Object({ vcpus: Type.Array(Type.String()) }) }),
    is('STATE_INVALID', /snapshot state \/vcpus\/0/),
  );
});

test('missing, directory and oversized state files', async () => {
  await assert.rejects(readStateFile(join(dir, 'nope', 'state.bin')), is('SNAPSHOT_MISSING'));
  const d = fresh('adir');
  mkdirSync(d);
  await assert.rejects(readStateFile(d), is('SNAPSHOT_CORRUPT', /regular file/));
  const big = fresh();
  writeFileSync(big, encodeStateFile(contents));
  truncateSync(big, 80 << 20); // sparse: cheap
  await assert.rejects(readStateFile(big), is('SNAPSHOT_CORRUPT', /larger/));
});

test('the writer refuses input it cannot store faithfully', () => {
  const bad: [string, StateFileContents, ErrorCode][] = [
    ['bigint', { ...contents, state: { tsc: 1n } }, 'STATE_INVALID'],
    ['template', { ...contents, cpuTemplate: 'x' as 'host' }, 'INVALID_VM_CONFIG'],
    ['size', { ...contents, memory: { size: 1000 } }, 'INVALID_VM_CONFIG'],
    ['sha', { ...contents, memory: { size: 4096, sha256: 'AB' } }, 'INVALID_VM_CONFIG'],
  ];
  for (const [why, c, code] of bad) assert.throws(() => encodeStateFile(c), is(code), why);
});

test('checkMemoryFile: right size passes; wrong size, hash, type and absence fail', async () => {
  const p = fresh('memory.bin');
  const mem = Buffer.alloc(3 * 4096, 7);
  writeFileSync(p, mem);
  await checkMemoryFile(p, 3 * 4096);
  const sha = createHash('sha256').update(mem).digest('hex');
  assert.equal(await hashFile(p), sha);
  await checkMemoryFile(p, 3 * 4096, { sha256: sha });
  await assert.rejects(
    checkMemoryFile(p, 4 * 4096),
    is('SNAPSHOT_MEMORY_MISMATCH', /12288.*16384/),
  );
  await assert.rejects(checkMemoryFile(p, 2 * 4096), is('SNAPSHOT_MEMORY_MISMATCH'));
  await assert.rejects(
    checkMemoryFile(p, 3 * 4096, { sha256: MEM_SHA }),
    is('SNAPSHOT_MEMORY_MISMATCH', /SHA-256/),
  );
  await assert.rejects(
    checkMemoryFile(join(p, '..'), 4096),
    is('SNAPSHOT_MEMORY_MISMATCH', /regular/),
  );
  await assert.rejects(checkMemoryFile(p + '.gone', 4096), is('SNAPSHOT_MISSING'));
});

test('a failed write leaves the old file intact and no temp file', async () => {
  const p = fresh();
  await writeStateFile(p, contents);
  const before = readFileSync(p);
  // Fails before any I/O.
  await assert.rejects(writeStateFile(p, { ...contents, state: { x: 1n } }), is('STATE_INVALID'));
  // Fails after the temp file is complete, before it replaces the old one (disk error, kill).
  await assert.rejects(
    writeStateFile(
      p,
      { ...contents, state: { other: true } },
      {
        beforeRename: () => {
          throw Object.assign(new Error('injected'), { code: 'EIO' });
        },
      },
    ),
    is('SNAPSHOT_IO', /EIO/),
  );
  assert.ok(readFileSync(p).equals(before));
  assert.deepEqual(readdirSync(join(p, '..')), ['state.bin']);
  assert.deepEqual((await readStateFile(p)).state, contents.state);
  // No previous file: a failed first write leaves nothing readable.
  const q = fresh();
  await assert.rejects(
    writeStateFile(q, contents, { beforeRename: () => Promise.reject(new Error('boom')) }),
    is('SNAPSHOT_IO'),
  );
  await assert.rejects(readStateFile(q), is('SNAPSHOT_MISSING'));
});

test('a crash mid-write (a half temp file left behind) never yields a readable half state', async () => {
  const p = fresh();
  await writeStateFile(p, contents);
  const before = readFileSync(p);
  const half = encodeStateFile({ ...contents, state: { newer: 'x'.repeat(1000) } });
  const tmp = join(p, '..', '.state.bin.tmp-99999-deadbeef0000');
  writeFileSync(tmp, half.subarray(0, half.length >> 1));
  // The target is still the old, complete file; the leftover itself is refused.
  assert.deepEqual((await readStateFile(p)).state, contents.state);
  await assert.rejects(readStateFile(tmp), is('SNAPSHOT_TRUNCATED'));
  // A later write is unaffected, and the leftover can be cleaned up.
  await writeStateFile(p, { ...contents, state: { third: 3 } });
  assert.deepEqual((await readStateFile(p)).state, { third: 3 });
  assert.notDeepEqual(readFileSync(p), before);
  assert.deepEqual(await removeStaleTemps(join(p, '..'), 0), ['.state.bin.tmp-99999-deadbeef0000']);
  assert.deepEqual(readdirSync(join(p, '..')), ['state.bin']);
});

test('reading never modifies the file, also when validation fails', async () => {
  const p = fresh();
  await writeStateFile(p, contents);
  const b = readFileSync(p);
  b[100] = b[100]! ^ 1;
  writeFileSync(p, b);
  const st = statSync(p);
  await assert.rejects(readStateFile(p), is('SNAPSHOT_CORRUPT'));
  await assert.rejects(readStateFile(p, { expectTemplate: 'host' }), is('SNAPSHOT_CORRUPT'));
  const st2 = statSync(p);
  assert.equal(st2.mtimeMs, st.mtimeMs);
  assert.equal(st2.size, st.size);
  assert.ok(readFileSync(p).equals(b));
});
