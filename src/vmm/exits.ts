/**
 * What a vCPU does with each KVM exit. Kept free of ioctls so every exit
 * reason can be unit-tested against a hand-made kvm_run page.
 */
import type { Bus } from './bus.js';
import * as abi from './kvm-abi.js';
import {
  EXIT_GUEST_CRASH,
  EXIT_GUEST_PANIC,
  EXIT_GUEST_RESET,
  EXIT_POWER_OFF,
  type VmExit,
} from '../base/exit-status.js';

export type ExitAction = { readonly kind: 'continue' } | ({ readonly kind: 'stop' } & VmExit);

const CONTINUE: ExitAction = { kind: 'continue' };

export interface ExitContext {
  readonly pio: Bus;
  readonly mmio: Bus;
  /** The guest's instruction bytes at RIP, best effort, for crash reports. */
  instructionBytes(): Uint8Array | undefined;
  /**
   * A chance to recover from an internal error (host quirks); returns true when handled.
   * `seenByKvm`: the instruction bytes the emulator failed on, when KVM reports them.
   */
  recoverInternalError?(suberror: number, seenByKvm: Uint8Array | undefined): boolean;
}

/**
 * The instruction bytes of an emulation failure (struct kvm_run.emulation_failure: flags, then
 * insn_size and up to 15 bytes), when KVM says it included them.
 */
export function emulationFailureBytes(run: Uint8Array, view: DataView): Uint8Array | undefined {
  if (view.getUint32(abi.RUN.internal_suberror, true) !== abi.KVM_INTERNAL_ERROR_EMULATION) return undefined;
  if (view.getUint32(abi.RUN.internal_ndata, true) < EMULATION_FAILURE_NDATA_WITH_BYTES) return undefined;
  const flags = view.getBigUint64(abi.RUN.internal_data, true);
  if ((flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) === 0n) return undefined;
  const size = Math.min(MAX_INSTRUCTION_BYTES, view.getUint8(abi.RUN.internal_data + 8));
  const start = run.byteOffset + abi.RUN.internal_data + 9;
  return new Uint8Array(run.buffer.slice(start, start + size));
}

const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1n;
/** flags + 16 bytes of insn_size/insn_bytes = 3 u64s. */
const EMULATION_FAILURE_NDATA_WITH_BYTES = 3;
const MAX_INSTRUCTION_BYTES = 15;

function stop(status: number, reason: string): ExitAction {
  return { kind: 'stop', status, reason };
}

function hex(bytes: Uint8Array | undefined): string {
  if (!bytes || bytes.length === 0) return 'unavailable';
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Views of the single-item PIO data, reused across exits (the offset never changes for a vCPU). */
const itemCache = new WeakMap<Uint8Array, { offset: number; views: Uint8Array[] }>();
function pioItem(run: Uint8Array, offset: number, size: number): Uint8Array {
  let entry = itemCache.get(run);
  if (!entry || entry.offset !== offset) {
    entry = { offset, views: [] };
    itemCache.set(run, entry);
  }
  return (entry.views[size] ??= run.subarray(offset, offset + size));
}

/** Handles one exit; run is the vCPU's kvm_run page. */
export function handleExit(run: Uint8Array, view: DataView, ctx: ExitContext): ExitAction {
  const reason = view.getUint32(abi.RUN.exit_reason, true);
  switch (reason) {
    case abi.KVM_EXIT_IO: {
      const size = view.getUint8(abi.RUN.io_size);
      const port = view.getUint16(abi.RUN.io_port, true);
      const count = view.getUint32(abi.RUN.io_count, true);
      // data_offset is a u64 that KVM sets to a page inside the mmap'd run area: its high half is 0.
      const offset = view.getUint32(abi.RUN.io_data_offset, true);
      const write = view.getUint8(abi.RUN.io_direction) === abi.KVM_EXIT_IO_OUT;
      if (view.getUint32(abi.RUN.io_data_offset + 4, true) !== 0 || offset + size * count > run.length) {
        return stop(EXIT_GUEST_CRASH, 'KVM_EXIT_IO data outside the run page');
      }
      if (count === 1) {
        const item = pioItem(run, offset, size);
        if (write) ctx.pio.write(port, item);
        else ctx.pio.read(port, item);
        return CONTINUE;
      }
      // String I/O (rep ins/outs) arrives as count consecutive items.
      for (let i = 0; i < count; i++) {
        const item = run.subarray(offset + i * size, offset + (i + 1) * size);
        if (write) ctx.pio.write(port, item);
        else ctx.pio.read(port, item);
      }
      return CONTINUE;
    }
    case abi.KVM_EXIT_MMIO: {
      const address = Number(view.getBigUint64(abi.RUN.mmio_phys_addr, true));
      const length = Math.min(8, view.getUint32(abi.RUN.mmio_len, true));
      const data = run.subarray(abi.RUN.mmio_data, abi.RUN.mmio_data + length);
      if (view.getUint8(abi.RUN.mmio_is_write)) ctx.mmio.write(address, data);
      else ctx.mmio.read(address, data);
      return CONTINUE;
    }
    case abi.KVM_EXIT_HLT:
      return stop(EXIT_POWER_OFF, 'guest halted');
    case abi.KVM_EXIT_SHUTDOWN:
      return stop(EXIT_GUEST_CRASH, 'guest triple fault (KVM_EXIT_SHUTDOWN)');
    case abi.KVM_EXIT_SYSTEM_EVENT: {
      const type = view.getUint32(abi.RUN.system_event_type, true);
      if (type === abi.KVM_SYSTEM_EVENT_SHUTDOWN) return stop(EXIT_POWER_OFF, 'guest powered off');
      if (type === abi.KVM_SYSTEM_EVENT_RESET) return stop(EXIT_GUEST_RESET, 'guest reset');
      if (type === abi.KVM_SYSTEM_EVENT_CRASH) return stop(EXIT_GUEST_PANIC, 'guest crashed (system event)');
      return stop(EXIT_GUEST_CRASH, `unknown KVM_EXIT_SYSTEM_EVENT type ${type}`);
    }
    case abi.KVM_EXIT_INTERNAL_ERROR: {
      const suberror = view.getUint32(abi.RUN.internal_suberror, true);
      if (ctx.recoverInternalError?.(suberror, emulationFailureBytes(run, view))) return CONTINUE;
      const name = abi.INTERNAL_ERROR_NAMES[suberror] ?? `suberror ${suberror}`;
      const ndata = Math.min(16, view.getUint32(abi.RUN.internal_ndata, true));
      const data = Array.from({ length: ndata }, (_, i) =>
        view.getBigUint64(abi.RUN.internal_data + 8 * i, true).toString(16),
      );
      return stop(
        EXIT_GUEST_CRASH,
        `KVM internal error: ${name}` +
          (data.length ? ` (data ${data.join(' ')})` : '') +
          `; instruction bytes: ${hex(ctx.instructionBytes())}`,
      );
    }
    case abi.KVM_EXIT_FAIL_ENTRY: {
      const hw = view.getBigUint64(abi.RUN.fail_entry_hardware_reason, true);
      return stop(EXIT_GUEST_CRASH, `KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x${hw.toString(16)}`);
    }
    case abi.KVM_EXIT_IRQ_WINDOW_OPEN:
    case abi.KVM_EXIT_INTR:
      return CONTINUE;
    default:
      return stop(
        EXIT_GUEST_CRASH,
        `unhandled exit ${abi.EXIT_REASON_NAMES[reason] ?? `reason ${reason}`}; instruction bytes: ${hex(ctx.instructionBytes())}`,
      );
  }
}
