// The `micro` runtime: a function is a micro-guest (guest/micro) in a real KVM VM. Its base
// snapshot is taken before the guest's first instruction (optionally with `stateMiB` of
// non-zero function state in memory, standing in for a loaded runtime or model); an
// invocation writes its input blob at MICRO_PARAM_GPA, resumes the VM and reads the result
// from the console. The VM runs to completion: one invocation per restored VM, as in the
// paper's measurements, so `warm` mode does not exist for micro functions.

import { FaasnapError, isFaasnapError } from '../../common/errors.js';
import {
  MICRO_DATA_GPA,
  MICRO_PAGE_SIZE,
  MICRO_PARAM_GPA,
  MICRO_PARAM_MAX_BYTES,
  TOUCH_FLAG_WRITE,
  encodeTouchParams,
  parseHelloOutput,
  parseTouchOutput,
} from '../../guest/micro/index.js';
import { dataPages, microBootImage } from '../../guest/micro/launch.js';
import type { FunctionConfigT, InvokeMode } from '../schemas.js';
import type { FunctionRuntime, InvokeOutcome, PreparedInput } from './runtime.js';

export const MICRO_HANDLERS = ['touch', 'hello', 'hang'] as const;
const MAX_PAGES = Math.floor((MICRO_PARAM_MAX_BYTES - 24) / 8);
/** write-memory carries at most 16 MiB per action. */
const CHUNK = 16 << 20;

const bad = (msg: string): never => {
  throw new FaasnapError('INVALID_PARAMS', msg);
};

/** Accepts JSON numbers and numeric strings (the paper's handlers get all params as strings). */
function int(v: unknown, what: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max)
    return bad(`${what} must be an integer in ${min}..${max}`);
  return n;
}

function bool(v: unknown, what: string): boolean {
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  return bad(`${what} must be a boolean`);
}

/** Byte of function-state page p (never zero, so the pages count as non-zero regions). */
export function statePageByte(page: number): number {
  return (page * 7 + 1) & 0xff || 1;
}

function touchPages(fn: FunctionConfigT, p: Record<string, unknown>): number[] {
  const limit = dataPages(fn.memoryMiB);
  if (p.pages !== undefined && p.range !== undefined) bad('give pages or range, not both');
  let pages: number[];
  if (Array.isArray(p.pages)) {
    if (p.pages.length > MAX_PAGES) bad(`pages has more than ${MAX_PAGES} entries`);
    pages = p.pages.map((x, i) => int(x, `pages[${i}]`, 0, limit - 1));
  } else if (p.pages !== undefined) {
    return bad('pages must be an array of page indices');
  } else {
    const r = (p.range ?? {}) as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) bad('range must be an object');
    const count = int(
      r.count ?? Math.min(256, limit),
      'range.count',
      0,
      Math.min(limit, MAX_PAGES),
    );
    const first = int(r.first ?? 0, 'range.first', 0, limit - 1);
    const stride = int(r.stride ?? 1, 'range.stride', 1, limit);
    if (first + count > limit) bad(`range ends past the ${limit} data pages of this function`);
    // A walk over [first, first+count) in stride steps, each page once when gcd(stride, count) = 1.
    pages = Array.from({ length: count }, (_, i) => first + ((i * stride) % Math.max(1, count)));
  }
  return pages;
}

export const microRuntime: FunctionRuntime = {
  name: 'micro',
  available: true,
  // A micro function's snapshot precedes its first instruction: warm up in another VM.
  warmUpInBoot: false,

  validateConfig(fn) {
    if (!(MICRO_HANDLERS as readonly string[]).includes(fn.handler))
      throw new FaasnapError(
        'REQUEST_INVALID',
        `micro handler must be one of ${MICRO_HANDLERS.join(', ')}`,
      );
    if (fn.code !== undefined)
      throw new FaasnapError(
        'REQUEST_INVALID',
        'micro functions take no code (the handler names the guest)',
      );
    if (fn.memoryMiB < 16)
      throw new FaasnapError('REQUEST_INVALID', 'micro functions need 16 MiB or more');
    if (fn.stateMiB * 1024 * 1024 > fn.memoryMiB * 1024 * 1024 - MICRO_DATA_GPA)
      throw new FaasnapError(
        'REQUEST_INVALID',
        'stateMiB does not fit into the data area of memoryMiB',
      );
  },

  supportsMode(mode: InvokeMode) {
    return mode !== 'warm';
  },

  recordParams(fn) {
    if (fn.recordParams) return fn.recordParams;
    // Default record input: read the first pages of the function state.
    const count = Math.min(dataPages(fn.memoryMiB), Math.max(256, fn.stateMiB * 256));
    return fn.handler === 'touch' ? { range: { first: 0, count } } : {};
  },

  async prepareInput(fn, params, deps): Promise<PreparedInput> {
    if (fn.handler !== 'touch') return { params };
    const known = ['pages', 'range', 'seed', 'write', 'input_object_key'];
    for (const k of Object.keys(params))
      if (!known.includes(k)) bad(`unknown parameter ${k} (touch takes ${known.join(', ')})`);
    if (params.input_object_key !== undefined) {
      // The raw parameter blob comes from the object store (guest/micro/ABI.md layout).
      if (typeof params.input_object_key !== 'string' || params.input_object_key === '')
        bad('input_object_key must be a non-empty string');
      const data = await deps.getObject(params.input_object_key as string);
      if (data.length > MICRO_PARAM_MAX_BYTES) bad('input object is larger than 2 MiB');
      return { params, memory: { gpa: MICRO_PARAM_GPA, data } };
    }
    const pages = touchPages(fn, params);
    const seed =
      params.seed === undefined ? 0 : int(params.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    const write = params.write === undefined ? false : bool(params.write, 'write');
    const data = encodeTouchParams({ flags: write ? TOUCH_FLAG_WRITE : 0, seed, pages });
    return { params, memory: { gpa: MICRO_PARAM_GPA, data } };
  },

  async boot({ vmm }, fn) {
    // The guest gets the blob's length in rcx at boot: announce the whole 2 MiB parameter area
    // (zeros = an empty input) so that any input written before resume fits.
    await vmm.call({
      type: 'boot-micro',
      memMiB: fn.memoryMiB,
      vcpus: fn.vcpus,
      ...microBootImage(fn.handler, fn.memoryMiB, new Uint8Array(MICRO_PARAM_MAX_BYTES)),
    });
    await vmm.call({ type: 'pause' });
    const bytes = fn.stateMiB * 1024 * 1024;
    for (let off = 0; off < bytes; off += CHUNK) {
      const len = Math.min(CHUNK, bytes - off);
      const data = new Uint8Array(len);
      for (let p = 0; p < len / MICRO_PAGE_SIZE; p++) {
        const page = off / MICRO_PAGE_SIZE + p;
        data.fill(statePageByte(page), p * MICRO_PAGE_SIZE, (p + 1) * MICRO_PAGE_SIZE);
      }
      await vmm.call({ type: 'write-memory', gpa: MICRO_DATA_GPA + off, data });
    }
  },

  async record({ vmm }, fn, spec) {
    const m = spec.input.memory;
    await vmm.call({
      type: spec.kind === 'faasnap' ? 'record-faasnap' : 'record-reap',
      snapshotDir: spec.snapshotDir,
      input: m ? { gpa: m.gpa, data: m.data } : undefined,
      timeoutMs: spec.timeoutMs,
      mincoreSize: spec.mincoreSize,
      intervalThreshold: spec.intervalThreshold,
    });
  },

  async run({ vmm }, fn, input, timeoutMs, rec): Promise<InvokeOutcome> {
    if (input.memory) {
      const m = input.memory;
      await rec.phase(
        'input-write',
        () => vmm.call({ type: 'write-memory', gpa: m.gpa, data: m.data }),
        {
          bytes: m.data.length,
        },
      );
    }
    await rec.phase('vcpu-resume', () => vmm.call({ type: 'resume' }));
    try {
      await rec.phase('guest-run', () => vmm.call({ type: 'wait', timeoutMs }));
    } catch (e) {
      if (isFaasnapError(e, 'GUEST_TIMEOUT'))
        return {
          ok: false,
          error: {
            code: 'FUNCTION_TIMEOUT',
            message: `function exceeded its timeout of ${timeoutMs} ms`,
          },
        };
      if (isFaasnapError(e) && e.code.startsWith('GUEST_'))
        return {
          ok: false,
          error: { code: 'FUNCTION_ERROR', message: e.message, details: { cause: e.code } },
        };
      throw e;
    }
    const text = await vmm.call<string>({ type: 'console' });
    const tail = text.slice(-512);
    if (fn.handler === 'hello') {
      const out = parseHelloOutput(text);
      if (out.sum === undefined)
        return {
          ok: false,
          error: {
            code: 'FUNCTION_ERROR',
            message: 'hello printed no result',
            details: { console: tail },
          },
        };
      return {
        ok: true,
        result: { sum: out.sum.toString(16).padStart(16, '0'), vcpus: out.vcpus ?? null },
      };
    }
    const out = parseTouchOutput(text);
    if (out.exception || out.error || out.checksum === undefined)
      return {
        ok: false,
        error: {
          code: 'FUNCTION_ERROR',
          message: out.exception
            ? `guest exception ${out.exception.vector}`
            : 'touch printed no result',
          details: { console: tail },
        },
      };
    return {
      ok: true,
      result: {
        pages: out.pages ?? 0,
        checksum: out.checksum.toString(16).padStart(16, '0'),
        cycles: out.cycles === undefined ? null : Number(out.cycles),
      },
    };
  },
};
