/** KVM's ioeventfd table for one VM, as virtio-pci sees it through its IoeventfdRegistrar. */
import os from 'node:os';
import type { IoeventfdRegistrar } from '../../src/transport/pci/virtio-pci.js';
import { KvmError } from '../../src/vmm/kvm.js';
import { HostCallError } from '../../src/sys/ffi.js';

/** EEXIST for an address that is taken, ENOENT for one that is not, as KVM_IOEVENTFD answers. */
export class IoeventfdTable {
  readonly byAddress = new Map<number, number>();
  readonly registrar: IoeventfdRegistrar = ({ address, eventFd }, assign) => {
    const holder = this.byAddress.get(address);
    const fail = (code: 'EEXIST' | 'ENOENT'): never => {
      throw new KvmError('ioctl', `KVM_IOEVENTFD failed: ${code}`, { cause: new HostCallError('KVM_IOEVENTFD', os.constants.errno[code], code) });
    };
    if (assign) {
      if (holder !== undefined) fail('EEXIST');
      this.byAddress.set(address, eventFd);
    } else {
      if (holder !== eventFd) fail('ENOENT');
      this.byAddress.delete(address);
    }
  };
}
