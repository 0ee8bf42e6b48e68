// Capture and restore of one vCPU's architectural state (the persist contract for vCPUs).
// Registers are kept readable (hex strings); KVM's other state structs are opaque blobs, saved
// base64 and checked for their exact size before they go back into KVM.

import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError } from '../../common/errors.js';
import { validateState } from '../../common/state.js';
import {
  REG_NAMES,
  decodeSregs,
  decodeStructBlob,
  encodeSregs,
  type Regs,
} from '../kvm/structs.js';
import type { Vcpu, VcpuBlob } from '../vcpu.js';
import { MSR } from '../cpu/boot-state.js';

const Hex64 = Type.String({ pattern: '^0x[0-9a-f]{1,16}$' });
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' });

export const VcpuStateSchema = Type.Object(
  {
    index: Type.Integer({ minimum: 0, maximum: 254 }),
    regs: Type.Object(
      Object.fromEntries(REG_NAMES.map((n) => [n, Hex64])) as Record<
        (typeof REG_NAMES)[number],
        typeof Hex64
      >,
      { additionalProperties: false },
    ),
    sregs: Base64,
    /** xsave when the host supports it (it carries FPU/SSE state), else the legacy fpu blob. */
    fpu: Type.Object({
      kind: Type.Union([Type.Literal('xsave'), Type.Literal('fpu')]),
      data: Base64,
    }),
    xcrs: Type.Optional(Base64),
    lapic: Base64,
    mpState: Base64,
    events: Base64,
    debugRegs: Base64,
    msrs: Type.Array(
      Type.Object({ index: Type.Integer({ minimum: 0, maximum: 0xffffffff }), data: Hex64 }),
      {
        maxItems: 4096,
      },
    ),
  },
  { additionalProperties: false },
);
export type VcpuState = Static<typeof VcpuStateSchema>;

export interface VcpuCaps {
  xsave: boolean;
  xcrs: boolean;
  /** MSR indices KVM can save/restore (KVM_GET_MSR_INDEX_LIST). */
  msrIndices: readonly number[];
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const b64 = (b: Buffer): string => b.toString('base64');

export function captureVcpu(v: Vcpu, caps: VcpuCaps): VcpuState {
  const regs = v.getRegs();
  const fpuKind: VcpuBlob = caps.xsave ? 'xsave' : 'fpu';
  const sregs = v.getSregs();
  return {
    index: v.index,
    regs: Object.fromEntries(REG_NAMES.map((n) => [n, hex(regs[n])])) as VcpuState['regs'],
    sregs: b64(encodeSregs(sregs)),
    fpu: { kind: fpuKind, data: b64(v.getBlob(fpuKind)) },
    xcrs: caps.xcrs ? b64(v.getBlob('xcrs')) : undefined,
    lapic: b64(v.getBlob('lapic')),
    mpState: b64(v.getBlob('mpState')),
    events: b64(v.getBlob('events')),
    debugRegs: b64(v.getBlob('debugRegs')),
    msrs: v.getMsrs(caps.msrIndices).map((m) => ({ index: m.index, data: hex(m.data) })),
  };
}

/**
 * The saved MSRs as KVM_SET_MSRS must see them on restore:
 *  - without the wall-clock MSRs: they hold no state, a write is a request ("copy the host's wall
 *    clock to this guest address now"), and a restore would make KVM write guest memory at the
 *    saved address (address 0 when the guest never used it). The guest writes them again
 *    whenever it reads the wall clock.
 *  - with the async page fault vector (ASYNC_PF_INT) before ASYNC_PF_EN: enabling interrupt
 *    delivery queues a "wake all" notification for the vector set at that moment.
 * Everything else keeps KVM's own order (KVM_GET_MSR_INDEX_LIST: the architectural MSRs, TSC
 * among them, before the emulated ones such as TSC_DEADLINE).
 */
export function msrRestoreOrder<T extends { index: number }>(msrs: readonly T[]): T[] {
  const out = msrs.filter(
    (m) => m.index !== MSR.KVM_WALL_CLOCK && m.index !== MSR.KVM_WALL_CLOCK_NEW,
  );
  const intAt = out.findIndex((m) => m.index === MSR.KVM_ASYNC_PF_INT);
  const enAt = out.findIndex((m) => m.index === MSR.KVM_ASYNC_PF_EN);
  if (intAt > enAt && enAt >= 0) out.splice(enAt, 0, ...out.splice(intAt, 1));
  return out;
}

/** Validates untrusted state completely, then applies it in KVM's required order. */
export function restoreVcpu(v: Vcpu, untrusted: unknown, caps: VcpuCaps): void {
  const s = validateState(`vCPU ${v.index}`, VcpuStateSchema, untrusted);
  if (s.index !== v.index)
    throw new FaasnapError('STATE_INVALID', `vCPU state ${s.index} applied to vCPU ${v.index}`);
  if (s.fpu.kind === 'xsave' && !caps.xsave) {
    throw new FaasnapError(
      'STATE_INVALID',
      'snapshot has XSAVE state but this host has no KVM_CAP_XSAVE',
    );
  }
  // Decode everything first so a bad field fails before KVM state is touched.
  const regs = Object.fromEntries(REG_NAMES.map((n) => [n, BigInt(s.regs[n])])) as Regs;
  const sregs = decodeSregs(decodeStructBlob(s.sregs, 'kvm_sregs', 'sregs'));
  const fpu = decodeStructBlob(
    s.fpu.data,
    s.fpu.kind === 'xsave' ? 'kvm_xsave' : 'kvm_fpu',
    s.fpu.kind,
  );
  const xcrs =
    s.xcrs !== undefined && caps.xcrs ? decodeStructBlob(s.xcrs, 'kvm_xcrs', 'xcrs') : undefined;
  const lapic = decodeStructBlob(s.lapic, 'kvm_lapic_state', 'lapic');
  const mpState = decodeStructBlob(s.mpState, 'kvm_mp_state', 'mp_state');
  const events = decodeStructBlob(s.events, 'kvm_vcpu_events', 'events');
  const debugRegs = decodeStructBlob(s.debugRegs, 'kvm_debugregs', 'debugregs');
  const msrs = msrRestoreOrder(s.msrs.map((m) => ({ index: m.index, data: BigInt(m.data) })));

  // Order: special registers (APIC base, EFER) before the LAPIC and MSRs that depend on them;
  // events last because they refer to the interrupt state set before.
  v.setSregs(sregs);
  v.setRegs(regs);
  v.setBlob(s.fpu.kind, fpu);
  if (xcrs) v.setBlob('xcrs', xcrs);
  v.setBlob('lapic', lapic);
  v.setMsrs(msrs);
  v.setBlob('mpState', mpState);
  v.setBlob('events', events);
  v.setBlob('debugRegs', debugRegs);
}
