// Tier 1, on the host: the paper's benchmark functions (guest/functions/*, SPEC.md §4) run
// outside the VM. Python handlers go through harness.py (the agent's ctx, an in-memory
// object store preloaded from the real inputs in shared/workloads/inputs); JS handlers are
// required directly with a fake ctx. Every result is checked against a computation made here,
// in TypeScript, independent of the handler: C = A·B, AES-CTR with node:crypto, our own
// PageRank, an unzip, JPEG frame sizes and pixels (jpeg-js), ffmpeg frames of the output.
//
// The libraries are Debian packages (python3-pil python3-numpy python3-chameleon python3-six
// python3-pyaes python3-igraph python3-torch python3-torchvision libopenblas0-pthread ffmpeg);
// a test skips, saying which, only when one is missing. Python: FAASNAP_TEST_PYTHON, else
// /usr/bin/python3 (Debian's, which sees those packages), else python3 on PATH. Inputs:
// FAASNAP_WORKLOAD_INPUTS, else ../shared/workloads/inputs beside the repo (or /work/shared).

import { after, before, test, type TestContext } from 'node:test';
import { TIERS_REQUIRED, skipOrFail } from '../support/skip.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');
const FUNCTIONS = path.join(repo, 'guest/functions');
const HARNESS = path.join(repo, 'test/workloads/harness.py');
/** FAASNAP_WORKLOAD_INPUTS, else the shared inputs beside the checkout, else this machine's. */
const INPUTS =
  process.env.FAASNAP_WORKLOAD_INPUTS ??
  [path.resolve(repo, '../shared/workloads/inputs'), '/work/shared/workloads/inputs'].find((p) =>
    fs.existsSync(p),
  ) ??
  path.resolve(repo, '../shared/workloads/inputs');
const PYTHON =
  process.env.FAASNAP_TEST_PYTHON ??
  (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const requireCjs = createRequire(import.meta.url);

// ---- environment -----------------------------------------------------------------------------

const moduleCache = new Map<string, boolean>();
function pyHas(module: string): boolean {
  let ok = moduleCache.get(module);
  if (ok === undefined) {
    ok = spawnSync(PYTHON, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
    moduleCache.set(module, ok);
  }
  return ok;
}

function hasCommand(cmd: string): boolean {
  return spawnSync(cmd, ['-version'], { stdio: 'ignore' }).status === 0;
}

/** Skips the test (and returns true) when a Debian package it needs is not installed. */
function missing(t: TestContext, needs: Record<string, string>, inputs = false): boolean {
  for (const [what, pkg] of Object.entries(needs)) {
    const ok = what.startsWith('cmd:') ? hasCommand(what.slice(4)) : pyHas(what);
    if (!ok) {
      t.skip(`${pkg} not installed (${PYTHON})`);
      return true;
    }
  }
  if (inputs && !fs.existsSync(INPUTS)) {
    // CI has the inputs (../shared/workloads): there, their absence is a failure.
    skipOrFail(
      t,
      `workload inputs not found at ${INPUTS} (set FAASNAP_WORKLOAD_INPUTS)`,
      TIERS_REQUIRED || Boolean(process.env.CI),
    );
    return true;
  }
  return false;
}

const input = (kind: string, name: string): string => path.join(INPUTS, kind, name);

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-handlers-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh, empty scratch directory (the handlers' /dev/shm) and an output directory. */
function dirs(name: string): { scratch: string; out: string } {
  const base = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const scratch = path.join(base, 'scratch');
  const out = path.join(base, 'out');
  fs.mkdirSync(scratch);
  fs.mkdirSync(out);
  return { scratch, out };
}

// ---- the Python harness ----------------------------------------------------------------------

interface Timings {
  readMs: number;
  processMs: number;
  writeMs: number;
}
interface HarnessRun {
  results: Record<string, unknown>[];
  timings: Timings[];
  puts: Map<string, Buffer>;
  scratch: string;
}

function runPython(
  t: TestContext,
  fn: string,
  params: Record<string, string>[],
  opts: { storage?: Record<string, string>; env?: Record<string, string> } = {},
): HarnessRun {
  const { scratch, out } = dirs(fn);
  const request = {
    handler: path.join(FUNCTIONS, fn, 'handler.py'),
    storage: opts.storage ?? {},
    invocations: params.map((p) => ({ params: p })),
    out_dir: out,
  };
  const r = spawnSync(PYTHON, [HARNESS], {
    input: JSON.stringify(request),
    env: {
      ...process.env,
      ...opts.env,
      FAASNAP_SCRATCH_DIR: scratch,
      PYTHONDONTWRITEBYTECODE: '1',
    },
    maxBuffer: 256 << 20,
    timeout: 600_000,
  });
  assert.equal(r.status, 0, `harness failed (${r.status} ${r.signal}): ${r.stderr}`);
  const parsed = JSON.parse(r.stdout.toString('utf8')) as {
    invocations: {
      result?: unknown;
      error?: { message: string; traceback: string };
      timings: Timings;
    }[];
    puts: Record<string, { path: string; bytes: number }>;
  };
  const puts = new Map<string, Buffer>();
  for (const [key, v] of Object.entries(parsed.puts)) {
    const data = fs.readFileSync(v.path);
    assert.equal(data.length, v.bytes);
    puts.set(key, data);
  }
  const results: Record<string, unknown>[] = [];
  parsed.invocations.forEach((inv, i) => {
    if (inv.error) assert.fail(`${fn} invocation ${i} raised: ${inv.error.traceback}`);
    results.push(inv.result as Record<string, unknown>);
    const { readMs, processMs, writeMs } = inv.timings;
    for (const v of [readMs, processMs, writeMs]) assert.ok(Number.isFinite(v) && v >= 0);
    t.diagnostic(
      `${fn} ${JSON.stringify(params[i]).slice(0, 120)}: read ${readMs.toFixed(1)} ms, ` +
        `process ${processMs.toFixed(1)} ms, write ${writeMs.toFixed(1)} ms`,
    );
  });
  return { results, timings: parsed.invocations.map((i) => i.timings), puts, scratch };
}

/** Runs one invocation that must fail; returns the Python exception's message. */
function runPythonError(fn: string, params: Record<string, string>): string {
  const { scratch, out } = dirs(fn);
  const request = {
    handler: path.join(FUNCTIONS, fn, 'handler.py'),
    invocations: [{ params }],
    out_dir: out,
  };
  const r = spawnSync(PYTHON, [HARNESS], {
    input: JSON.stringify(request),
    env: { ...process.env, FAASNAP_SCRATCH_DIR: scratch, PYTHONDONTWRITEBYTECODE: '1' },
  });
  assert.equal(r.status, 0, String(r.stderr));
  const parsed = JSON.parse(r.stdout.toString('utf8')) as {
    invocations: { error?: { type: string; message: string } }[];
  };
  const err = parsed.invocations[0]?.error;
  assert.ok(err, 'the invocation should have failed');
  return `${err.type}: ${err.message}`;
}

// ---- JS handlers, with a fake ctx ------------------------------------------------------------

interface JsCtx {
  t1(): void;
  t2(): void;
  storageGet(key: string): Promise<Buffer | undefined>;
  storagePut(key: string, value: Uint8Array): Promise<void>;
  log(msg: string): void;
}
type JsHandler = (params: Record<string, string>, ctx: JsCtx) => Promise<unknown>;

async function runJs(
  t: TestContext,
  fn: string,
  params: Record<string, string>,
  storage: Map<string, Buffer>,
): Promise<Record<string, unknown>> {
  const mod = requireCjs(path.join(FUNCTIONS, fn, 'handler.js')) as { handle: JsHandler };
  const marks: { t1?: bigint; t2?: bigint } = {};
  const ctx: JsCtx = {
    t1: () => void (marks.t1 = process.hrtime.bigint()),
    t2: () => void (marks.t2 = process.hrtime.bigint()),
    storageGet: (key) => Promise.resolve(storage.get(key)),
    storagePut: (key, value) => {
      storage.set(key, Buffer.from(value));
      return Promise.resolve();
    },
    log: () => undefined,
  };
  const start = process.hrtime.bigint();
  const result = (await mod.handle(params, ctx)) as Record<string, unknown>;
  const end = process.hrtime.bigint();
  assert.ok(marks.t1 !== undefined && marks.t2 !== undefined, 'the handler marks t1 and t2');
  assert.ok(start <= marks.t1 && marks.t1 <= marks.t2 && marks.t2 <= end);
  const ms = (a: bigint, b: bigint): string => (Number(b - a) / 1e6).toFixed(1);
  t.diagnostic(
    `${fn} ${JSON.stringify(params)}: read ${ms(start, marks.t1)} ms, ` +
      `process ${ms(marks.t1, marks.t2)} ms, write ${ms(marks.t2, end)} ms`,
  );
  return result;
}

// ---- independent checkers --------------------------------------------------------------------

/** Width and height from a JPEG's start-of-frame segment. */
function jpegSize(buf: Buffer): { width: number; height: number } {
  assert.ok(buf.readUInt16BE(0) === 0xffd8, 'not a JPEG (no SOI)');
  let at = 2;
  while (at + 4 <= buf.length) {
    assert.equal(buf[at], 0xff, `bad JPEG marker at ${at}`);
    const marker = buf[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const len = buf.readUInt16BE(at + 2);
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: buf.readUInt16BE(at + 5), width: buf.readUInt16BE(at + 7) };
    }
    at += 2 + len;
  }
  throw new Error('no SOF marker');
}

interface Decoded {
  width: number;
  height: number;
  data: Uint8Array;
}
const jpegJs = (): { decode(b: Buffer, o: object): Decoded } =>
  requireCjs(path.join(FUNCTIONS, 'image-js/vendor/jpeg-js')) as {
    decode(b: Buffer, o: object): Decoded;
  };

function luma(img: Decoded, x: number, y: number): number {
  const i = (y * img.width + x) * 4;
  return 0.299 * img.data[i]! + 0.587 * img.data[i + 1]! + 0.114 * img.data[i + 2]!;
}

/**
 * Mean luma difference between `out` and `src` rotated counter-clockwise by `deg`, over a grid
 * of samples: output pixel (x, y) comes from source (w-1-y, x) for 90, (w-1-x, h-1-y) for 180,
 * (y, h-1-x) for 270, (x, y) for 0 (w, h: the source's size).
 */
function rotationError(src: Decoded, out: Decoded, deg: number): number {
  const { width: w, height: h } = src;
  let sum = 0;
  let n = 0;
  for (let y = 0; y < out.height; y += 7) {
    for (let x = 0; x < out.width; x += 7) {
      const [sx, sy] =
        deg === 0
          ? [x, y]
          : deg === 90
            ? [w - 1 - y, x]
            : deg === 180
              ? [w - 1 - x, h - 1 - y]
              : [y, h - 1 - x];
      sum += Math.abs(luma(out, x, y) - luma(src, sx, sy));
      n++;
    }
  }
  return sum / n;
}

/** Checks three rotations of `inputFile` (keys by degrees), dimensions and pixels. */
function checkRotations(
  inputFile: string,
  outputs: Map<number, Buffer>,
  result: Record<string, unknown>,
): void {
  const inBuf = fs.readFileSync(inputFile);
  const size = jpegSize(inBuf);
  assert.equal(result.width, size.width);
  assert.equal(result.height, size.height);
  const src = jpegJs().decode(inBuf, { useTArray: true });
  for (const deg of [90, 180, 270]) {
    const buf = outputs.get(deg);
    assert.ok(buf, `rotation ${deg} was stored`);
    const dims = jpegSize(buf);
    const swap = deg !== 180;
    assert.deepEqual(dims, {
      width: swap ? size.height : size.width,
      height: swap ? size.width : size.height,
    });
    const out = jpegJs().decode(buf, { useTArray: true });
    const err = rotationError(src, out, deg);
    assert.ok(err < 6, `rotation ${deg}: mean luma error ${err.toFixed(2)}`);
    // Not the opposite direction (or no rotation): that must be clearly worse.
    const wrong = rotationError(src, out, deg === 180 ? 0 : 360 - deg);
    assert.ok(wrong > 3 * err + 5, `rotation ${deg}: wrong direction fits too (${wrong})`);
  }
}

/** The entries of a ZIP archive: name → uncompressed bytes (stored or deflated, CRC-checked). */
function unzip(buf: Buffer): Map<string, Buffer> {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  assert.ok(eocd >= 0, 'no end-of-central-directory record');
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(at), 0x02014b50, 'central directory entry');
    const method = buf.readUInt16LE(at + 10);
    const crc = buf.readUInt32LE(at + 16);
    const csize = buf.readUInt32LE(at + 20);
    const usize = buf.readUInt32LE(at + 24);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.subarray(at + 46, at + 46 + nameLen).toString('utf8');
    at += 46 + nameLen + extraLen + commentLen;
    assert.equal(buf.readUInt32LE(local), 0x04034b50, 'local file header');
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    assert.ok(method === 0 || method === 8, `compression method ${method}`);
    const data = method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw);
    assert.equal(data.length, usize, `${name}: size`);
    assert.equal(zlib.crc32(data), crc, `${name}: CRC-32`);
    if (!name.endsWith('/')) entries.set(name, data);
  }
  return entries;
}

/** PageRank by power iteration on an undirected multigraph (each edge both ways). */
function pagerank(n: number, edges: [number, number][], d = 0.85): number[] {
  const deg = new Float64Array(n);
  for (const [a, b] of edges) {
    deg[a]!++;
    deg[b]!++;
  }
  let r = new Float64Array(n).fill(1 / n);
  for (let iter = 0; iter < 1000; iter++) {
    let dangling = 0;
    for (let v = 0; v < n; v++) if (deg[v] === 0) dangling += r[v]!;
    const next = new Float64Array(n).fill((1 - d) / n + (d * dangling) / n);
    for (const [a, b] of edges) {
      next[b]! += (d * r[a]!) / deg[a]!;
      next[a]! += (d * r[b]!) / deg[b]!;
    }
    let delta = 0;
    for (let v = 0; v < n; v++) delta += Math.abs(next[v]! - r[v]!);
    r = next;
    if (delta < 1e-14) break;
  }
  return Array.from(r);
}

/** Every frame of a video as ffmpeg decodes it, scaled to 128×72 grey. */
function videoFrames(file: string): Buffer[] {
  const out = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-nostdin',
      '-i',
      file,
      '-fps_mode',
      'passthrough',
      '-vf',
      'scale=128:72,format=gray',
      '-f',
      'rawvideo',
      '-',
    ],
    { maxBuffer: 256 << 20 },
  );
  assert.equal(out.status, 0, String(out.stderr));
  assert.ok(out.stdout.length > 0 && out.stdout.length % FRAME === 0);
  const frames: Buffer[] = [];
  for (let at = 0; at < out.stdout.length; at += FRAME) {
    frames.push(out.stdout.subarray(at, at + FRAME));
  }
  return frames;
}
const FRAME = 128 * 72;

function variance(frame: Buffer): number {
  let sum = 0;
  let sq = 0;
  for (const v of frame) {
    sum += v;
    sq += v * v;
  }
  return sq / frame.length - (sum / frame.length) ** 2;
}

function videoSize(file: string): string {
  const r = spawnSync('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'stream=width,height',
    '-of',
    'csv=p=0',
    file,
  ]);
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout.toString().trim();
}

const close = (a: number, b: number, rel = 1e-9): boolean =>
  Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));

// ---- tests -----------------------------------------------------------------------------------

test('mmap touches one byte per 4 KiB page of the mapping (default 512 MiB)', (t) => {
  const { results } = runPython(t, 'mmap', [{ mib: '16' }, {}, { mib: '8', private: '1' }]);
  assert.deepEqual(results, [
    { mib: 16, pages: 4096, shared: true },
    { mib: 512, pages: 131072, shared: true },
    { mib: 8, pages: 2048, shared: false },
  ]);
});

test('read reads every 512th element of the global list built at import', (t) => {
  const len = 1_000_003;
  const { results, timings } = runPython(t, 'read', [{}, {}], {
    env: { FAASNAP_READ_LIST_LEN: String(len) },
  });
  let reads = 0;
  let sum = 0;
  for (let i = 0; i < len; i += 512) {
    reads++;
    sum += i;
  }
  for (const r of results) assert.deepEqual(r, { len, stride: 512, reads, sum });
  // The list is built by the first invocation's import, inside its read phase.
  assert.ok(timings[0]!.readMs > timings[1]!.readMs);
});

test('run runs a shell command; a non-zero exit raises', (t) => {
  const { results } = runPython(t, 'run', [{ args: 'echo "$((6 * 7))"; echo warn >&2' }]);
  assert.deepEqual(results[0], { returncode: 0, stdout: '42\n', stderr: 'warn\n' });
  assert.match(runPythonError('run', { args: 'echo oops >&2; exit 3' }), /status 3: oops/);
});

const JSON_INPUTS = ['IndiaGDP.json', 'linux.json', '200K.json', 'italian.json', 'senators.json'];

function expectedJson(file: string): Record<string, unknown> {
  const raw = fs.readFileSync(file);
  const doc = JSON.parse(raw.toString('utf8')) as unknown;
  const isList = Array.isArray(doc);
  const isDict = !isList && typeof doc === 'object' && doc !== null;
  return {
    input_bytes: raw.length,
    type: isList ? 'list' : isDict ? 'dict' : typeof doc,
    items: isList ? doc.length : isDict ? Object.keys(doc).length : 1,
    // Line counts agree across serializers; characters do not (escapes, number spelling).
    output_lines: JSON.stringify(doc, null, 4).split('\n').length,
  };
}

test('json parses and re-serializes with indent 4 (checked against JSON.parse/stringify)', (t) => {
  if (missing(t, {}, true)) return;
  const storage = Object.fromEntries(JSON_INPUTS.map((f) => [f, input('json', f)]));
  const { results } = runPython(
    t,
    'json',
    JSON_INPUTS.map((f) => ({ input_object_key: f })),
    { storage },
  );
  JSON_INPUTS.forEach((f, i) => {
    const { output_chars, ...rest } = results[i]!;
    assert.deepEqual(rest, expectedJson(input('json', f)), f);
    assert.ok(typeof output_chars === 'number' && output_chars > 0);
  });
  assert.match(runPythonError('json', { input_object_key: 'absent.json' }), /KeyError/);
});

test('json-js parses and re-serializes with indent 4', async (t) => {
  if (missing(t, {}, true)) return;
  const storage = new Map(JSON_INPUTS.map((f) => [f, fs.readFileSync(input('json', f))]));
  for (const f of JSON_INPUTS) {
    const r = await runJs(t, 'json-js', { input_object_key: f }, storage);
    const doc = JSON.parse(storage.get(f)!.toString('utf8')) as unknown;
    assert.deepEqual(r, {
      ...expectedJson(input('json', f)),
      output_chars: JSON.stringify(doc, null, 4).length,
    });
  }
  await assert.rejects(runJs(t, 'json-js', { input_object_key: 'absent' }, storage), /no object/);
});

const IMAGE_INPUTS = ['100K.jpg', 'pexels-photo-2051572.jpeg'];

test('image stores 90/180/270 rotations as JPEG (sizes from SOF, pixels via jpeg-js)', (t) => {
  if (missing(t, { PIL: 'python3-pil' }, true)) return;
  const storage = Object.fromEntries(IMAGE_INPUTS.map((f) => [f, input('image', f)]));
  const params = IMAGE_INPUTS.map((f) => ({
    input_object_key: f,
    output_object_key_prefix: 'outputimg-',
  }));
  const { results, puts, scratch } = runPython(t, 'image', params, { storage });
  IMAGE_INPUTS.forEach((f, i) => {
    const result = results[i]!;
    const byDeg = new Map<number, Buffer>();
    for (const deg of [90, 180, 270]) {
      const key = `outputimg-rotate-${deg}-${f}`;
      byDeg.set(deg, puts.get(key)!);
      const outputs = result.outputs as Record<string, { bytes: number; degrees: number }>;
      assert.deepEqual(outputs[key], { degrees: deg, bytes: puts.get(key)?.length });
      // As in the paper, the temp files stay in the scratch directory.
      assert.ok(fs.existsSync(path.join(scratch, `rotate-${deg}-${f}`)));
    }
    assert.equal(result.input_bytes, fs.statSync(input('image', f)).size);
    checkRotations(input('image', f), byDeg, result);
  });
});

test('image-js stores 90/180/270 rotations as JPEG (same checks as image)', async (t) => {
  if (missing(t, {}, true)) return;
  const { scratch } = dirs('image-js');
  const saved = process.env.FAASNAP_SCRATCH_DIR;
  process.env.FAASNAP_SCRATCH_DIR = scratch;
  try {
    for (const f of IMAGE_INPUTS) {
      const storage = new Map([[f, fs.readFileSync(input('image', f))]]);
      const params = { input_object_key: f, output_object_key_prefix: 'o-' };
      const result = await runJs(t, 'image-js', params, storage);
      const byDeg = new Map<number, Buffer>();
      for (const deg of [90, 180, 270]) {
        const key = `o-rotate-${deg}-${f}`;
        byDeg.set(deg, storage.get(key)!);
        assert.deepEqual(
          storage.get(key),
          fs.readFileSync(path.join(scratch, `rotate-${deg}-${f}`)),
        );
      }
      assert.equal(storage.size, 4);
      checkRotations(input('image', f), byDeg, result);
    }
  } finally {
    if (saved === undefined) delete process.env.FAASNAP_SCRATCH_DIR;
    else process.env.FAASNAP_SCRATCH_DIR = saved;
  }
});

test('ffmpeg flips the video horizontally and cleans up its temp files', (t) => {
  if (missing(t, { 'cmd:ffmpeg': 'ffmpeg', 'cmd:ffprobe': 'ffmpeg' }, true)) return;
  const file = input('ffmpeg', '200K.mp4');
  const { results, puts, scratch } = runPython(
    t,
    'ffmpeg',
    [{ input_object_key: '200K.mp4', output_object_key: 'output-ffmpeg.mp4' }],
    { storage: { '200K.mp4': file } },
  );
  const out = puts.get('output-ffmpeg.mp4');
  assert.ok(out);
  assert.deepEqual(results[0], {
    input_bytes: fs.statSync(file).size,
    output_key: 'output-ffmpeg.mp4',
    output_bytes: out.length,
  });
  assert.deepEqual(fs.readdirSync(scratch), []);
  const outFile = path.join(tmp, 'ffmpeg-output.mp4');
  fs.writeFileSync(outFile, out);
  assert.equal(videoSize(outFile), videoSize(file));
  const inFrames = videoFrames(file);
  const outFrames = videoFrames(outFile);
  assert.equal(outFrames.length, inFrames.length);
  // Most frames of these clips are near-black: compare the most detailed one.
  const variances = inFrames.map(variance);
  const pick = variances.indexOf(Math.max(...variances));
  const a = inFrames[pick]!;
  const b = outFrames[pick]!;
  let flipped = 0;
  let same = 0;
  for (let y = 0; y < 72; y++) {
    for (let x = 0; x < 128; x++) {
      flipped += Math.abs(b[y * 128 + x]! - a[y * 128 + (127 - x)]!);
      same += Math.abs(b[y * 128 + x]! - a[y * 128 + x]!);
    }
  }
  flipped /= 128 * 72;
  same /= 128 * 72;
  assert.ok(flipped < 8 && same > 2 * flipped, `mirror error ${flipped}, unflipped ${same}`);
});

test('matmul: C = A·B (recomputed for n = 8; sum(C) = Σ colsum(A)·rowsum(B) for n = 300)', (t) => {
  if (missing(t, { numpy: 'python3-numpy' })) return;
  const { results } = runPython(t, 'matmul', [
    { n: '8', verify: '1' },
    { n: '300', verify: '1' },
    { n: '1100' },
  ]);
  const small = results[0] as { a: number[][]; b: number[][]; c: number[][]; sum: number };
  assert.deepEqual((small as unknown as { shape: number[] }).shape, [8, 8]);
  let sum = 0;
  let trace = 0;
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 8; j++) {
      let v = 0;
      for (let k = 0; k < 8; k++) v += small.a[i]![k]! * small.b[k]![j]!;
      assert.ok(close(small.c[i]![j]!, v), `c[${i}][${j}]`);
      assert.ok(small.a[i]![j]! >= 0 && small.a[i]![j]! < 1);
      sum += v;
      if (i === j) trace += v;
    }
  }
  assert.ok(close(small.sum, sum));
  assert.ok(close(results[0]!.trace as number, trace));
  const mid = results[1] as { a_col_sums: number[]; b_row_sums: number[]; sum: number };
  assert.equal(mid.a_col_sums.length, 300);
  const expected = mid.a_col_sums.reduce((s, v, k) => s + v * mid.b_row_sums[k]!, 0);
  assert.ok(close(mid.sum, expected), `${mid.sum} vs ${expected}`);
  assert.equal(results[2]!.n, 1100);
  assert.deepEqual(results[2]!.shape, [1100, 1100]);
  // Entries of C are sums of 1100 products of U(0,1) values: mean 275 each.
  const mean = (results[2]!.sum as number) / 1100 ** 2;
  assert.ok(mean > 270 && mean < 280, `mean entry ${mean}`);
});

test('pyaes encrypts with AES-128-CTR (checked with node:crypto) and decrypts back', (t) => {
  if (missing(t, { pyaes: 'python3-pyaes' })) return;
  const { results } = runPython(t, 'pyaes', [
    { length_of_message: '1000', num_of_iterations: '2', verify: '1' },
    { length_of_message: '20000', num_of_iterations: '1' },
  ]);
  const r = results[0] as { message: string; ciphertext: string; [k: string]: unknown };
  assert.match(r.message, /^[a-z0-9]{1000}$/);
  const key = Buffer.from('a1f6258c877d5fcd8964484538bfc92c', 'hex');
  const iv = Buffer.alloc(16);
  iv[15] = 1; // pyaes's default Counter: 128-bit big-endian, starting at 1
  const cipher = crypto.createCipheriv('aes-128-ctr', key, iv);
  const expected = Buffer.concat([cipher.update(r.message, 'ascii'), cipher.final()]);
  assert.equal(r.ciphertext, expected.toString('hex'));
  assert.equal(r.ciphertext_sha256, crypto.createHash('sha256').update(expected).digest('hex'));
  assert.equal(r.roundtrip_ok, true);
  assert.equal(r.iterations, 2);
  assert.equal(results[1]!.length, 20000);
  assert.equal(results[1]!.roundtrip_ok, true);
});

test('chameleon renders rows × cols cells of <span class="column-N">N</span>', (t) => {
  if (missing(t, { chameleon: 'python3-chameleon', six: 'python3-six' })) return;
  const { results } = runPython(t, 'chameleon', [
    { num_of_rows: '3', num_of_cols: '5', verify: '1' },
    { num_of_rows: '100', num_of_cols: '300' },
  ]);
  const r = results[0] as { html: string; html_bytes: number; html_sha256: string };
  const html = Buffer.from(r.html, 'utf8');
  assert.equal(r.html_bytes, html.length);
  assert.equal(r.html_sha256, crypto.createHash('sha256').update(html).digest('hex'));
  const rows = [...r.html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1]!);
  assert.equal(rows.length, 3);
  for (const row of rows) {
    const cells = [...row.matchAll(/<td>\s*<span class="column-(\d+)">(\d+)<\/span>\s*<\/td>/g)];
    assert.deepEqual(
      cells.map((m) => [m[1], m[2]]),
      [1, 2, 3, 4, 5].map((v) => [String(v), String(v)]),
    );
  }
  const big = results[1]!;
  assert.equal(big.rows, 100);
  // At least the spans' text: 100 rows × 300 cells, each at least `<span class="column-N">N`.
  assert.ok((big.html_bytes as number) > 100 * 300 * 25);
});

test('compression zips the input (unzipped and compared here) and removes its files', (t) => {
  if (missing(t, {}, true)) return;
  const files = ['IndiaGDP.json', 'linux.json'];
  const { results, puts, scratch } = runPython(
    t,
    'compression',
    files.map((f) => ({ input_object_key: f, output_object_key: `${f}.zip` })),
    { storage: Object.fromEntries(files.map((f) => [f, input('json', f)])) },
  );
  files.forEach((f, i) => {
    const zip = puts.get(`${f}.zip`);
    assert.ok(zip);
    const original = fs.readFileSync(input('json', f));
    assert.deepEqual(results[i], {
      input_bytes: original.length,
      output_key: `${f}.zip`,
      output_bytes: zip.length,
    });
    // Only this invocation's input: the previous one's directory was removed.
    const entries = unzip(zip);
    assert.deepEqual([...entries.keys()], [f]);
    assert.deepEqual(entries.get(f), original);
    assert.ok(zip.length < original.length, 'deflated');
  });
  assert.deepEqual(fs.readdirSync(scratch), []);
});

test('pagerank: igraph ranks equal our power iteration; ranks sum to 1', (t) => {
  if (missing(t, { igraph: 'python3-igraph' })) return;
  const { results } = runPython(t, 'pagerank', [{ size: '300', verify: '1' }, { size: '90000' }]);
  const r = results[0] as { edge_list: [number, number][]; ranks: number[]; [k: string]: unknown };
  assert.equal(r.vertices, 300);
  assert.equal(r.edges, r.edge_list.length);
  // Each vertex after the first attaches up to 10 edges to earlier ones.
  assert.ok(r.edge_list.length > 250 * 10 && r.edge_list.length <= 299 * 10);
  for (const [a, b] of r.edge_list) assert.ok(a !== b && a >= 0 && b >= 0 && a < 300 && b < 300);
  const ours = pagerank(300, r.edge_list);
  r.ranks.forEach((v, i) =>
    assert.ok(Math.abs(v - ours[i]!) < 1e-7, `rank ${i}: ${v} vs ${ours[i]}`),
  );
  assert.ok(Math.abs((r.rank_sum as number) - 1) < 1e-9);
  const top = ours.indexOf(Math.max(...ours));
  assert.equal(r.top_vertex, top);
  const big = results[1]!;
  assert.equal(big.vertices, 90000);
  assert.ok(Math.abs((big.rank_sum as number) - 1) < 1e-6);
});

test('recognition classifies with a cached ResNet-50 (1000 classes, our labels)', (t) => {
  if (
    missing(
      t,
      { torch: 'python3-torch', torchvision: 'python3-torchvision', PIL: 'python3-pil' },
      true,
    )
  ) {
    return;
  }
  // The paper's weights were never published: a seeded random-init state dict stands in.
  const model = path.join(tmp, 'resnet50-19c8e357.pth');
  const made = spawnSync(PYTHON, [
    '-c',
    'import sys, torch, torchvision\n' +
      'torch.manual_seed(0)\n' +
      'torch.save(torchvision.models.resnet50(weights=None).state_dict(), sys.argv[1])\n',
    model,
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  const images = ['100kb.jpg', 'pexels-photo-2051572.jpeg'];
  const storage: Record<string, string> = { 'resnet50-19c8e357.pth': model };
  for (const f of images) storage[f] = input('image', f);
  const params = [...images, images[0]!].map((f) => ({
    model_object_key: 'resnet50-19c8e357.pth',
    input_object_key: f,
    output_object_key_prefix: 'outputimg-',
  }));
  const { results, puts, scratch } = runPython(t, 'recognition', params, { storage });
  assert.deepEqual(
    results.map((r) => r.model_loaded),
    [true, false, false],
    'the model is loaded once and cached',
  );
  for (const r of results) {
    assert.deepEqual(r.output_shape, [1, 1000]);
    const top = r.top_index as number;
    assert.ok(Number.isInteger(top) && top >= 0 && top < 1000);
    assert.equal(r.label, `class-${top}`);
    assert.ok(Math.abs((r.prob_sum as number) - 1) < 1e-4);
    const p = r.probability as number;
    assert.ok(p > 0 && p <= 1 && p >= 1 / 1000, `top probability ${p}`);
  }
  // Same image, same model: the same answer (eval mode, no dropout or batch statistics).
  assert.equal(results[2]!.top_index, results[0]!.top_index);
  assert.ok(close(results[2]!.probability as number, results[0]!.probability as number, 1e-5));
  assert.equal(puts.size, 0, 'recognition writes nothing');
  assert.ok(fs.existsSync(path.join(scratch, 'resnet50-19c8e357.pth')));
});

test("the agent's ctx helpers: a missing object is a KeyError, a key that names no file is refused", () => {
  // Through the agent's own Context (harness.py loads guest/agent/agent.py).
  assert.match(
    runPythonError('image', { input_object_key: 'absent.jpg' }),
    /KeyError: "no object 'absent.jpg'"/,
  );
  assert.match(
    runPythonError('ffmpeg', { input_object_key: 'in.mp4', output_object_key: 'a/..' }),
    /ValueError: 'a\/\.\.' does not name a file/,
  );
  assert.match(
    runPythonError('ffmpeg', { input_object_key: 'x/v.mp4', output_object_key: 'v.mp4' }),
    /same file/,
  );
});

test('every function directory has a handler and the labels file has 1000 entries', () => {
  for (const fn of [
    'mmap',
    'read',
    'run',
    'ffmpeg',
    'json',
    'image',
    'matmul',
    'pyaes',
    'chameleon',
    'compression',
    'recognition',
    'pagerank',
  ]) {
    assert.ok(fs.existsSync(path.join(FUNCTIONS, fn, 'handler.py')), fn);
  }
  for (const fn of ['json-js', 'image-js']) {
    assert.ok(fs.existsSync(path.join(FUNCTIONS, fn, 'handler.js')), fn);
  }
  const labels = JSON.parse(
    fs.readFileSync(path.join(FUNCTIONS, 'recognition/labels.json'), 'utf8'),
  ) as string[];
  assert.deepEqual(
    labels,
    Array.from({ length: 1000 }, (_, i) => `class-${i}`),
  );
});
