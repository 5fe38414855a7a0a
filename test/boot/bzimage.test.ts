import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BootError } from '../../src/boot/boot-error.js';
import { loadKernel } from '../../src/boot/load-kernel.js';
import { E820_TYPE_RAM, E820_TYPE_RESERVED } from '../../src/boot/memory-map.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { throwsBootError } from './assert-boot-error.js';
import { buildBzImage, patternPayload } from './bzimage-writer.js';

const MiB = 0x100000;
const ZP = 0x7000;

function boot(kernel: Uint8Array, extra: { initrd?: Uint8Array; cmdline?: string; acpiRsdp?: number; layout?: [number, number][] } = {}) {
  const memory = GuestMemory.fromLayout(extra.layout ?? [[0, 64 * MiB]]);
  const result = loadKernel({
    kernel,
    memory,
    cmdline: extra.cmdline ?? 'console=ttyS0 reboot=k panic=1',
    ...(extra.initrd && { initrd: extra.initrd }),
    ...(extra.acpiRsdp !== undefined && { acpiRsdp: extra.acpiRsdp }),
  });
  return { memory, result };
}

test('good bzImage: payload at 1 MiB, entry at startup_64, zero page filled in', () => {
  const initrd = Uint8Array.from({ length: 0x2345 }, (_, i) => i & 0xff);
  const image = buildBzImage();
  const { memory, result } = boot(image, { initrd, acpiRsdp: 0xf0000 });
  assert.is(result.protocol, 'linux-bzimage');

  const payload = patternPayload();
  assert.equal(memory.slice(0x100000, payload.length), payload);
  assert.is(result.cpu.rip, 0x100200);
  assert.is(result.cpu.rsi, ZP);
  // Relocatable kernel decompresses at pref_address (16 MiB) with init_size 2 MiB.
  assert.equal(result.kernelRange, [0x100000, 0x1000000 + 0x200000]);

  // Setup header copied from the image (version, xloadflags, jump).
  assert.is(memory.readU16(ZP + 0x206), 0x020f);
  assert.is(memory.readU16(ZP + 0x236), 0x03);
  assert.is(memory.readU8(ZP + 0x200), 0xeb);
  assert.is(memory.readU16(ZP + 0x1fe), 0xaa55);
  assert.is(memory.readU32(ZP + 0x202), 0x53726448);

  assert.is(memory.readU8(ZP + 0x210), 0xff, 'type_of_loader');
  assert.is(memory.readU8(ZP + 0x211), 0x81, 'loadflags LOADED_HIGH | CAN_USE_HEAP');
  assert.is(memory.readU16(ZP + 0x224), 0xde00, 'heap_end_ptr');
  assert.is(memory.readU16(ZP + 0x1fa), 0xffff, 'vid_mode');
  assert.is(memory.readU32(ZP + 0x214), 0x100000, 'code32_start');

  assert.is(memory.readU32(ZP + 0x228), 0x20000, 'cmd_line_ptr');
  assert.is(memory.readU32(ZP + 0x0c8), 0, 'ext_cmd_line_ptr');
  assert.is(memory.readCString(0x20000, 4096), 'console=ttyS0 reboot=k panic=1');

  const [start, end] = result.initrdRange!;
  assert.is(memory.readU32(ZP + 0x218), start, 'ramdisk_image');
  assert.is(memory.readU32(ZP + 0x21c), initrd.length, 'ramdisk_size');
  assert.is(memory.readU32(ZP + 0x0c0), 0);
  assert.is(memory.readU32(ZP + 0x0c4), 0);
  assert.is(end - start, initrd.length);
  assert.equal(memory.slice(start, initrd.length), initrd);

  assert.is(memory.readU64(ZP + 0x070), 0xf0000n, 'acpi_rsdp_addr');

  assert.is(memory.readU8(ZP + 0x1e8), 3, 'e820_entries');
  const e820 = [0, 1, 2].map((i) => {
    const at = ZP + 0x2d0 + i * 20;
    return [Number(memory.readU64(at)), Number(memory.readU64(at + 8)), memory.readU32(at + 16)];
  });
  assert.equal(e820, [
    [0, 0x9fc00, E820_TYPE_RAM],
    [0x9fc00, 0x60400, E820_TYPE_RESERVED],
    [0x100000, 63 * MiB, E820_TYPE_RAM],
  ]);
  assert.equal(result.memoryMap.map((e) => [e.address, e.size, e.type]), e820);
});

test('setup header is copied up to 0x202 + byte at 0x201, and setup_data is cleared', () => {
  const image = buildBzImage({ headerEnd: 0x26c });
  const v = new DataView(image.buffer);
  v.setUint32(0x268, 0x12345678, true); // kernel_info_offset: last field inside the header
  v.setUint32(0x26c, 0xeeeeeeee, true); // past the header end
  v.setBigUint64(0x250, 0xdeadbeefn, true); // setup_data from the file
  const { memory } = boot(image);
  assert.is(memory.readU32(ZP + 0x268), 0x12345678);
  assert.is(memory.readU32(ZP + 0x26c), 0);
  assert.is(memory.readU64(ZP + 0x250), 0n);
});

test('64-bit CPU state for the Linux protocol', () => {
  const { result } = boot(buildBzImage());
  const cpu = result.cpu;
  assert.is(cpu.cr0, 0x80000011);
  assert.is(cpu.cr4, 0x20);
  assert.is(cpu.efer, 0x500);
  assert.is(cpu.cr3, 0x9000);
  assert.is(cpu.rflags, 0x2);
  assert.is(cpu.rsp, 0x8ff0);
  assert.is(cpu.rbx, 0);
  assert.equal(cpu.idt, { base: 0, limit: 0 });
  assert.equal(cpu.gdt, { base: 0x500, limit: 47 });
  assert.equal([cpu.cs.selector, cpu.cs.type, cpu.cs.l, cpu.cs.db, cpu.cs.g, cpu.cs.s, cpu.cs.limit], [0x10, 0xb, 1, 0, 1, 1, 0xffffffff]);
  assert.equal([cpu.data.selector, cpu.data.type, cpu.data.db, cpu.data.s], [0x18, 0x3, 1, 1]);
  assert.equal([cpu.tr.type, cpu.tr.s, cpu.tr.present, cpu.tr.limit], [0xb, 0, 1, 0x67]);
});

test('no initrd, no RSDP: fields stay zero', () => {
  const { memory, result } = boot(buildBzImage());
  assert.is(result.initrdRange, undefined);
  assert.is(memory.readU32(ZP + 0x218), 0);
  assert.is(memory.readU32(ZP + 0x21c), 0);
  assert.is(memory.readU64(ZP + 0x070), 0n);
});

test('initrd is placed page-aligned below initrd_addr_max and above the kernel', () => {
  const initrd = new Uint8Array(3 * MiB + 5);
  const { result } = boot(buildBzImage({ initrdAddrMax: 0x2ffffff }), { initrd });
  const [start, end] = result.initrdRange!;
  assert.is(start % 0x1000, 0);
  assert.ok(end <= 0x3000000, 'below initrd_addr_max + 1');
  assert.ok(start >= result.kernelRange[1], 'above the kernel');
  assert.is(start, (0x3000000 - initrd.length) & ~0xfff);
});

test('initrd that cannot fit is refused', () => {
  throwsBootError(() => boot(buildBzImage(), { initrd: new Uint8Array(50 * MiB) }), 'initrd-too-large');
  // Room exists in RAM, but not below initrd_addr_max.
  throwsBootError(() => boot(buildBzImage({ initrdAddrMax: 0x12fffff }), { initrd: new Uint8Array(2 * MiB) }), 'initrd-too-large');
});

test('setup_sects 0 means 4', () => {
  const { memory, result } = boot(buildBzImage({ setupSects: 0 }));
  assert.equal(memory.slice(0x100000, 16), patternPayload().subarray(0, 16));
  assert.is(result.cpu.rip, 0x100200);
});

test('non-relocatable kernel loads at pref_address', () => {
  const { memory, result } = boot(buildBzImage({ relocatable: false, prefAddress: 0x400000 }));
  assert.is(result.cpu.rip, 0x400200);
  assert.equal(memory.slice(0x400000, 16), patternPayload().subarray(0, 16));
  assert.is(memory.readU32(ZP + 0x214), 0x400000);
  throwsBootError(() => boot(buildBzImage({ relocatable: false, prefAddress: 0x10000 })), 'bad-header');
  throwsBootError(() => boot(buildBzImage({ relocatable: false, prefAddress: 0x3f00000 })), 'too-large');
});

test('kernel whose init_size does not fit in RAM is refused', () => {
  throwsBootError(() => boot(buildBzImage({ initSize: 60 * MiB })), 'too-large', /init_size/);
});

test('version too old', () => {
  throwsBootError(() => boot(buildBzImage({ version: 0x0205 })), 'unsupported-version', /2\.05/);
});

test('protocol without xloadflags, or XLF_KERNEL_64 clear, is not 64-bit', () => {
  throwsBootError(() => boot(buildBzImage({ version: 0x020a })), 'not-64-bit');
  throwsBootError(() => boot(buildBzImage({ xloadflags: 0x02 })), 'not-64-bit', /XLF_KERNEL_64/);
});

test('bad magic or boot flag is not a kernel', () => {
  throwsBootError(() => boot(buildBzImage({ magic: 0x12345678 })), 'not-a-kernel');
  throwsBootError(() => boot(buildBzImage({ bootFlag: 0 })), 'not-a-kernel');
  throwsBootError(() => boot(new Uint8Array(0)), 'not-a-kernel');
  throwsBootError(() => boot(new Uint8Array(0x300).fill(0x41)), 'not-a-kernel');
});

test('zImage (LOADED_HIGH clear) is refused', () => {
  throwsBootError(() => boot(buildBzImage({ loadflags: 0 })), 'not-bzimage');
});

test('command line longer than cmdline_size is refused; exactly cmdline_size is fine', () => {
  const image = buildBzImage({ cmdlineSize: 16 });
  throwsBootError(() => boot(image, { cmdline: 'x'.repeat(17) }), 'cmdline-too-long', /16/);
  const { memory } = boot(image, { cmdline: 'y'.repeat(16) });
  assert.is(memory.readCString(0x20000, 100), 'y'.repeat(16));
  throwsBootError(() => boot(buildBzImage(), { cmdline: 'z'.repeat(0x10000) }), 'cmdline-too-long');
  throwsBootError(() => boot(buildBzImage(), { cmdline: 'a\0b' }), 'bad-option');
});

test('inconsistent header fields are refused', () => {
  throwsBootError(() => boot(buildBzImage({ kernelAlignment: 0x300000 })), 'bad-header', /power of two/);
  throwsBootError(() => boot(buildBzImage({ headerEnd: 0x300 })), 'bad-header');
  throwsBootError(() => boot(buildBzImage({ headerEnd: 0x230 })), 'bad-header');
  // setup_sects claims more setup code than the file holds.
  throwsBootError(() => boot(buildBzImage({ setupSects: 200 }).subarray(0, 4096)), 'bad-header', /truncated/);
});

test('a bzImage cut short of what syssize says is refused; up to syssize rounding is fine', () => {
  // The audit's case: 8 KiB of a 39 KiB kernel, a valid header and startup_64 still in the file.
  const whole = buildBzImage({ payload: patternPayload(39 * 1024) });
  throwsBootError(() => boot(whole.subarray(0, 8 * 1024)), 'bad-header', /truncated.*syssize/);
  throwsBootError(() => boot(whole.subarray(0, whole.length - 16)), 'bad-header', /truncated/);
  // syssize rounds the payload up to 16 bytes, so a payload 15 bytes short of it is whole.
  const odd = buildBzImage({ payload: patternPayload(0x3001) });
  assert.is(boot(odd).result.protocol, 'linux-bzimage');
  throwsBootError(() => boot(odd.subarray(0, odd.length - 1)), 'bad-header', /truncated/);
  throwsBootError(() => boot(buildBzImage({ syssize: 0 })), 'bad-header', /syssize/);
});

test('boot structures split across two regions are refused', () => {
  throwsBootError(() => boot(buildBzImage(), { layout: [[0, 0x10000], [0x10000, 32 * MiB]] }), 'memory-too-small', /boot structures/);
});

test('bad ACPI RSDP address is refused', () => {
  throwsBootError(() => boot(buildBzImage(), { acpiRsdp: 128 * MiB }), 'bad-option');
});

test('every truncation or header-byte corruption of a bzImage ends in success or a BootError', () => {
  const image = buildBzImage();
  const memory = GuestMemory.fromLayout([[0, 24 * MiB]]);
  for (let length = 0; length <= 0x700; length += 3) {
    try {
      loadKernel({ kernel: image.subarray(0, length), memory, cmdline: '' });
    } catch (error) {
      assert.instance(error, BootError, `length ${length}: ${String(error)}`);
    }
  }
  for (let offset = 0x1f1; offset < 0x270; offset++) {
    for (const value of [0x00, 0x80, 0xff]) {
      const b = image.slice();
      b[offset] = value;
      try {
        loadKernel({ kernel: b, memory, cmdline: 'x' });
      } catch (error) {
        assert.instance(error, BootError, `offset ${offset.toString(16)}: ${String(error)}`);
      }
    }
  }
});

test.run();
