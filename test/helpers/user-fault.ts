/**
 * userfaultfd(2) for tests: a range of anonymous memory whose missing pages
 * fault into the test's hands. A thread whose system call copies into such a
 * page (preadv into a guest buffer) blocks inside the kernel until the test
 * fills the page: a deterministic way to keep one thread busy and watch what
 * the others do meanwhile. Needs /dev/userfaultfd (Linux 6.1+) and root
 * (faults in kernel mode are only delivered to privileged handlers).
 */
import { EPOLLIN, EPOLL_EVENT_SIZE, epollAdd, epollCreate, epollWait } from '../../src/sys/epoll.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDWR, close, open, readFd } from '../../src/sys/fd.js';
import { ioctl, ioctlBuffer } from '../../src/sys/ioctl.js';

const UFFD_API = 0xaa;
/** _IO(0xAA, 0x00) on /dev/userfaultfd: a new userfaultfd, flags as the argument. */
const USERFAULTFD_IOC_NEW = 0xaa00;
/** _IOWR(0xAA, 0x3F, struct uffdio_api) */
const UFFDIO_API = 0xc018aa3f;
/** _IOWR(0xAA, 0x00, struct uffdio_register) */
const UFFDIO_REGISTER = 0xc020aa00;
/** _IOWR(0xAA, 0x04, struct uffdio_zeropage) */
const UFFDIO_ZEROPAGE = 0xc020aa04;
const UFFDIO_REGISTER_MODE_MISSING = 1;
const UFFD_EVENT_PAGEFAULT = 0x12;
/** struct uffd_msg */
const UFFD_MSG_SIZE = 32;
const UFFD_MSG_PAGEFAULT_ADDRESS = 16;
const PAGE = 4096;

export class UserFaultRange {
  private readonly epfd: number;

  private constructor(
    private readonly fd: number,
    readonly address: number,
    readonly length: number,
  ) {
    this.epfd = epollCreate();
    epollAdd(this.epfd, fd, EPOLLIN, 0);
  }

  /** Registers [address, address + length) (page-aligned, not yet touched) for missing-page faults. */
  static register(address: number, length: number): UserFaultRange {
    if (address % PAGE !== 0 || length % PAGE !== 0 || length === 0) throw new RangeError('userfault range must be whole pages');
    const device = open('/dev/userfaultfd', O_RDWR);
    let fd: number;
    try {
      fd = ioctl(device, USERFAULTFD_IOC_NEW, 'USERFAULTFD_IOC_NEW', O_NONBLOCK | O_CLOEXEC);
    } finally {
      close(device);
    }
    const api = new Uint8Array(24);
    new DataView(api.buffer).setBigUint64(0, BigInt(UFFD_API), true);
    ioctlBuffer(fd, UFFDIO_API, 'UFFDIO_API', api);
    const register = new Uint8Array(32);
    const v = new DataView(register.buffer);
    v.setBigUint64(0, BigInt(address), true);
    v.setBigUint64(8, BigInt(length), true);
    v.setBigUint64(16, BigInt(UFFDIO_REGISTER_MODE_MISSING), true);
    ioctlBuffer(fd, UFFDIO_REGISTER, 'UFFDIO_REGISTER', register);
    return new UserFaultRange(fd, address, length);
  }

  /** Waits for a thread to fault on the range; returns the faulting address, or undefined after the timeout. */
  waitForFault(timeoutMs: number): number | undefined {
    const events = new Uint8Array(EPOLL_EVENT_SIZE);
    const message = new Uint8Array(UFFD_MSG_SIZE);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = readFd(this.fd, message);
      if (n === UFFD_MSG_SIZE && message[0] === UFFD_EVENT_PAGEFAULT) {
        return Number(new DataView(message.buffer).getBigUint64(UFFD_MSG_PAGEFAULT_ADDRESS, true));
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      epollWait(this.epfd, events, left);
    }
  }

  /** Maps zero pages over the whole range, which wakes every thread waiting on it. */
  release(): void {
    const zeropage = new Uint8Array(32);
    const v = new DataView(zeropage.buffer);
    v.setBigUint64(0, BigInt(this.address), true);
    v.setBigUint64(8, BigInt(this.length), true);
    ioctlBuffer(this.fd, UFFDIO_ZEROPAGE, 'UFFDIO_ZEROPAGE', zeropage);
  }

  /** Closing the userfaultfd also lets any thread still waiting go (its copy then faults normally). */
  close(): void {
    close(this.epfd);
    close(this.fd);
  }
}
