/**
 * Every module the VMM loads by path at run time resolves, even on a host without /dev/kvm
 * (where the tests that would load them by booting a VM are skipped): worker entry points
 * (vCPU, data plane), the bus devices a vCPU thread instantiates by module URL and factory
 * name, and the virtio devices a data-plane thread does. A path left behind by a move
 * fails here. Each target must also have its source in src/, so a stale file in dist/
 * cannot hide a broken path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { VIRTIO_DEVICE_MODULES, deviceModule } from '../src/builder/virtio-devices.js';
import { addLegacyDevices } from '../src/legacy/index.js';
import type { DeviceSpec } from '../src/vmm/device.js';
import type { Machine } from '../src/vmm/machine.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const distSrc = path.join(root, 'dist', 'src');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? jsFiles(full) : e.name.endsWith('.js') ? [full] : [];
  });
}

/** The compiled module exists, and so does the TypeScript it was built from. */
function assertBuilt(url: string, what: string): void {
  const file = fileURLToPath(url);
  assert.ok(existsSync(file), `${what}: ${path.relative(root, file)} does not exist`);
  if (file.startsWith(distSrc + path.sep) && file.endsWith('.js')) {
    const source = path.join(root, 'src', path.relative(distSrc, file)).replace(/\.js$/, '.ts');
    assert.ok(existsSync(source), `${what}: ${path.relative(root, file)} is stale (no ${path.relative(root, source)})`);
  }
}

async function assertFactory(url: string, factory: string, what: string): Promise<void> {
  assertBuilt(url, what);
  const module = (await import(url)) as Record<string, unknown>;
  assert.type(module[factory], 'function', `${what}: ${factory} is not exported by ${path.relative(root, fileURLToPath(url))}`);
}

test("every literal new URL('…', import.meta.url) and import('…') in dist/src resolves", () => {
  const literal = [/new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g, /\bimport\(\s*(['"])(\.[^'"]+)\1\s*\)/g];
  let checked = 0;
  for (const file of jsFiles(distSrc)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of literal) {
      for (const match of text.matchAll(pattern)) {
        assertBuilt(new URL(match[2]!, pathToFileURL(file)).href, `${path.relative(root, file)}: '${match[2]}'`);
        checked += 1;
      }
    }
  }
  // vCPU worker, data-plane worker, virtio-mmio, virtio-pci, PCI root, the CLI's vm.js and package.json at least.
  assert.ok(checked >= 7, `only ${checked} run-time module paths found`);
});

test('each virtio device module a data-plane thread loads exports its factory', async () => {
  for (const kind of Object.keys(VIRTIO_DEVICE_MODULES) as Array<keyof typeof VIRTIO_DEVICE_MODULES>) {
    const spec = deviceModule(kind, {});
    await assertFactory(spec.module, spec.factory, `virtio ${kind}`);
  }
});

test('each legacy device module a vCPU thread loads exports its factory', async () => {
  const specs: DeviceSpec[] = [];
  const machine = { addDevice: (spec: DeviceSpec) => void specs.push(spec), vm: { fd: -1 } } as unknown as Machine;
  addLegacyDevices(machine, { serialOutputFd: 1, memoryBytes: 64 << 20, highMemoryBytes: 0 });
  assert.ok(specs.length >= 7, `${specs.length} legacy devices`);
  for (const spec of specs) await assertFactory(spec.module, spec.factory, spec.name);
});

test.run();
