/**
 * /dev/kvm and the VM file descriptor: creating a VM, its in-kernel devices,
 * memory slots, interrupt lines, ioeventfds and irqfds. vCPU ioctls live in vcpu.ts.
 */
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import * as abi from './kvm-abi.js';
import { O_RDWR, open } from '../sys/fd.js';
import { HostCallError } from '../sys/ffi.js';
import { ioctl, ioctlBuffer } from '../sys/ioctl.js';

export type KvmErrorKind = 'unavailable' | 'permission' | 'api-version' | 'capability' | 'vcpu-limit' | 'ioctl';

/** KVM cannot be used or refused a call: status 4, except more vCPUs than the host's KVM allows (2). */
export class KvmError extends VmmError<KvmErrorKind> {
  constructor(kind: KvmErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind, message, { ...options, status: kind === 'vcpu-limit' ? EXIT_INVALID_ARGUMENTS : EXIT_HOST_ERROR });
  }
}

/** Runs an ioctl wrapper, turning a failure into a KvmError that names it. */
function kvmCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof HostCallError) throw new KvmError('ioctl', error.message, { cause: error });
    throw error;
  }
}

/** The system-level handle on /dev/kvm. */
export class Kvm {
  readonly fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** KVM_DEVICE overrides the path (tests use it to prove the no-KVM error path). */
  static open(path = process.env.KVM_DEVICE || '/dev/kvm'): Kvm {
    let fd: number;
    try {
      fd = open(path, O_RDWR);
    } catch (error) {
      const code = error instanceof HostCallError ? error.code : '';
      if (code === 'EACCES' || code === 'EPERM') {
        throw new KvmError('permission', `${path}: permission denied (add yourself to the kvm group or run as root)`);
      }
      throw new KvmError('unavailable', `${path}: cannot open (${code || String(error)}); is KVM enabled on this host?`);
    }
    const kvm = new Kvm(fd);
    const version = kvmCall(() => ioctl(fd, abi.KVM_GET_API_VERSION, 'KVM_GET_API_VERSION'));
    if (version !== abi.KVM_API_VERSION) {
      throw new KvmError('api-version', `${path}: KVM API version ${version}, expected ${abi.KVM_API_VERSION}`);
    }
    for (const [cap, name] of [
      [abi.KVM_CAP_IRQCHIP, 'KVM_CAP_IRQCHIP'],
      [abi.KVM_CAP_USER_MEMORY, 'KVM_CAP_USER_MEMORY'],
      [abi.KVM_CAP_SET_TSS_ADDR, 'KVM_CAP_SET_TSS_ADDR'],
      [abi.KVM_CAP_EXT_CPUID, 'KVM_CAP_EXT_CPUID'],
      [abi.KVM_CAP_PIT2, 'KVM_CAP_PIT2'],
      [abi.KVM_CAP_IOEVENTFD, 'KVM_CAP_IOEVENTFD'],
      [abi.KVM_CAP_IRQFD, 'KVM_CAP_IRQFD'],
      [abi.KVM_CAP_IMMEDIATE_EXIT, 'KVM_CAP_IMMEDIATE_EXIT'],
    ] as const) {
      if (kvm.checkExtension(cap) <= 0) throw new KvmError('capability', `${path}: KVM lacks ${name}`);
    }
    return kvm;
  }

  checkExtension(capability: number): number {
    return kvmCall(() => ioctl(this.fd, abi.KVM_CHECK_EXTENSION, 'KVM_CHECK_EXTENSION', capability));
  }

  /** KVM's recommended vCPU limit (KVM_CAP_NR_VCPUS), falling back to 4 as the API says. */
  get recommendedVcpus(): number {
    return this.checkExtension(abi.KVM_CAP_NR_VCPUS) || 4;
  }

  get vcpuMmapSize(): number {
    return kvmCall(() => ioctl(this.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 'KVM_GET_VCPU_MMAP_SIZE'));
  }

  /** The raw kvm_cpuid2 entries the host supports (40 bytes each). */
  supportedCpuid(): Uint8Array {
    for (let capacity = 128; capacity <= 4096; capacity *= 2) {
      const buffer = new Uint8Array(abi.SIZEOF_KVM_CPUID2 + capacity * abi.SIZEOF_KVM_CPUID_ENTRY2);
      new DataView(buffer.buffer).setUint32(0, capacity, true);
      try {
        ioctlBuffer(this.fd, abi.KVM_GET_SUPPORTED_CPUID, 'KVM_GET_SUPPORTED_CPUID', buffer);
      } catch (error) {
        if (error instanceof HostCallError && error.code === 'E2BIG') continue;
        throw kvmCall(() => {
          throw error;
        });
      }
      const count = new DataView(buffer.buffer).getUint32(0, true);
      return buffer.slice(abi.SIZEOF_KVM_CPUID2, abi.SIZEOF_KVM_CPUID2 + count * abi.SIZEOF_KVM_CPUID_ENTRY2);
    }
    throw new KvmError('ioctl', 'KVM_GET_SUPPORTED_CPUID: too many entries');
  }

  createVm(): VmFd {
    return new VmFd(kvmCall(() => ioctl(this.fd, abi.KVM_CREATE_VM, 'KVM_CREATE_VM', 0)));
  }
}

/**
 * Addresses KVM needs on Intel for real-mode emulation: three pages for the
 * TSS and one for the identity map, placed just under the 4 GiB BIOS area,
 * inside the PCI hole where no RAM lives (as kvmtool and Firecracker do).
 */
export const KVM_TSS_ADDRESS = 0xfffbd000;
export const KVM_IDENTITY_MAP_ADDRESS = 0xfffbc000;

/** KVM's IOAPIC id register keeps 4 bits. */
export const MAX_KVM_IOAPIC_ID = 15;

/** VM-level ioctls. The fd is a plain number, usable from any thread. */
export class VmFd {
  constructor(readonly fd: number) {}

  setupPlatform(): void {
    kvmCall(() => {
      ioctl(this.fd, abi.KVM_SET_TSS_ADDR, 'KVM_SET_TSS_ADDR', KVM_TSS_ADDRESS);
      const identity = new Uint8Array(8);
      new DataView(identity.buffer).setBigUint64(0, BigInt(KVM_IDENTITY_MAP_ADDRESS), true);
      ioctlBuffer(this.fd, abi.KVM_SET_IDENTITY_MAP_ADDR, 'KVM_SET_IDENTITY_MAP_ADDR', identity);
      ioctl(this.fd, abi.KVM_CREATE_IRQCHIP, 'KVM_CREATE_IRQCHIP');
      // struct kvm_pit_config { u32 flags; u32 pad[15]; }: flags 0 = no speaker dummy.
      ioctlBuffer(this.fd, abi.KVM_CREATE_PIT2, 'KVM_CREATE_PIT2', new Uint8Array(abi.SIZEOF_KVM_PIT_CONFIG));
    });
  }

  /**
   * Sets the in-kernel IOAPIC's id register, which KVM starts at 0, to the id the firmware
   * tables give it. KVM keeps 4 bits of it, so ids above 15 cannot be matched.
   */
  setIoapicId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > MAX_KVM_IOAPIC_ID) throw new KvmError('ioctl', `IOAPIC id ${id} is not 0..${MAX_KVM_IOAPIC_ID}`);
    kvmCall(() => {
      const chip = new Uint8Array(abi.SIZEOF_KVM_IRQCHIP);
      const view = new DataView(chip.buffer);
      view.setUint32(0, abi.KVM_IRQCHIP_IOAPIC, true);
      ioctlBuffer(this.fd, abi.KVM_GET_IRQCHIP, 'KVM_GET_IRQCHIP', chip);
      view.setUint32(abi.KVM_IRQCHIP_IOAPIC_ID, id, true);
      ioctlBuffer(this.fd, abi.KVM_SET_IRQCHIP, 'KVM_SET_IRQCHIP', chip);
    });
  }

  setUserMemoryRegion(slot: number, guestAddress: number, size: number, hostAddress: number): void {
    const region = new Uint8Array(abi.SIZEOF_KVM_USERSPACE_MEMORY_REGION);
    const v = new DataView(region.buffer);
    v.setUint32(0, slot, true);
    v.setUint32(4, 0, true); // flags
    v.setBigUint64(8, BigInt(guestAddress), true);
    v.setBigUint64(16, BigInt(size), true);
    v.setBigUint64(24, BigInt(hostAddress), true);
    kvmCall(() => ioctlBuffer(this.fd, abi.KVM_SET_USER_MEMORY_REGION, 'KVM_SET_USER_MEMORY_REGION', region));
  }

  createVcpu(id: number): number {
    return kvmCall(() => ioctl(this.fd, abi.KVM_CREATE_VCPU, 'KVM_CREATE_VCPU', id));
  }
}

/**
 * Sets an interrupt line of the in-kernel PIC/IOAPIC. Usable from any thread
 * (vCPU workers raise the UART's line), so it takes the VM fd, not an object.
 */
const irqLevelBuffer = new Uint8Array(abi.SIZEOF_KVM_IRQ_LEVEL);
const irqLevelView = new DataView(irqLevelBuffer.buffer);
export function setIrqLine(vmFd: number, irq: number, level: boolean): void {
  irqLevelView.setUint32(0, irq, true);
  irqLevelView.setUint32(4, level ? 1 : 0, true);
  kvmCall(() => ioctlBuffer(vmFd, abi.KVM_IRQ_LINE, 'KVM_IRQ_LINE', irqLevelBuffer));
}

const KVM_IRQFD_FLAG_RESAMPLE = 2;

/**
 * Binds an eventfd to a GSI: a write to the eventfd injects the interrupt in
 * the kernel, from any thread. With a resample fd the line is level-triggered:
 * it stays asserted until the guest's EOI, which then signals resampleFd.
 */
export function assignIrqfd(vmFd: number, eventFd: number, gsi: number, resampleFd?: number): void {
  const buffer = new Uint8Array(abi.SIZEOF_KVM_IRQFD);
  const v = new DataView(buffer.buffer);
  v.setUint32(0, eventFd, true);
  v.setUint32(4, gsi, true);
  v.setUint32(8, resampleFd === undefined ? 0 : KVM_IRQFD_FLAG_RESAMPLE, true);
  v.setUint32(12, resampleFd ?? 0, true);
  kvmCall(() => ioctlBuffer(vmFd, abi.KVM_IRQFD, 'KVM_IRQFD', buffer));
}


const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

export interface IoeventfdOptions {
  readonly address: number;
  /** Access width to match: 1, 2, 4 or 8; 0 matches any width (MMIO only). */
  readonly length: number;
  readonly eventFd: number;
  readonly pio?: boolean;
  /** Only writes of this value kick the eventfd. */
  readonly datamatch?: number;
}

/** A guest write to `address` signals `eventFd` inside the kernel: no exit to userspace. */
export function setIoeventfd(vmFd: number, options: IoeventfdOptions, assign = true): void {
  const buffer = new Uint8Array(abi.SIZEOF_KVM_IOEVENTFD);
  const v = new DataView(buffer.buffer);
  let flags = 0;
  if (options.datamatch !== undefined) {
    flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    v.setBigUint64(0, BigInt(options.datamatch), true);
  }
  if (options.pio) flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (!assign) flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  v.setBigUint64(8, BigInt(options.address), true);
  v.setUint32(16, options.length, true);
  v.setInt32(20, options.eventFd, true);
  v.setUint32(24, flags, true);
  kvmCall(() => ioctlBuffer(vmFd, abi.KVM_IOEVENTFD, 'KVM_IOEVENTFD', buffer));
}
