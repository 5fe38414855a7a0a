/**
 * Host memory, outside guest RAM, that the kernel reads or writes on a
 * device's behalf: iovec arrays (for readv/writev or io_uring SQEs), bounce
 * buffers for O_DIRECT, a TAP's overflow area. Anonymous mmap, so the address
 * is known and stable (and page-aligned); NORESERVE, so an arena sized for the
 * worst case costs only the pages actually touched.
 */
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap, view } from './memory.js';

const PAGE = 4096;

export class HostBuffer {
  readonly address: number;
  readonly length: number;
  readonly bytes: Uint8Array;
  private freed = false;

  constructor(length: number) {
    this.length = Math.max(PAGE, Math.ceil(length / PAGE) * PAGE);
    this.address = mmap(this.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    this.bytes = new Uint8Array(view(this.address, this.length));
  }

  get words(): Uint32Array {
    return new Uint32Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength / 4);
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    munmap(this.address, this.length);
  }
}
