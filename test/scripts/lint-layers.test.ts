/** scripts/lint-layers.mjs: a layer importing from above it fails `npm test`; this tree passes. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = path.join(root, 'scripts', 'lint-layers.mjs');

function lint(at: string): { status: number | null; lines: string[] } {
  const run = spawnSync(process.execPath, [script, '--root', at], { encoding: 'utf8' });
  return { status: run.status, lines: run.stdout.trim().split('\n') };
}

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kvm-lint-layers-'));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

test('this tree: every import points down', () => {
  const { status, lines } = lint(root);
  assert.is(status, 0, lines.join('\n'));
  assert.match(lines.at(-1)!, /^lint:layers: OK, \d+ files/);
});

test('a violating tree fails with one line per upward import, type-only and run-time ones included', () => {
  const dir = tree({
    'src/base/exit-status.ts': 'export const EXIT_OK = 0;\n',
    'src/transport/interrupt.ts': "import { EXIT_OK } from '../base/exit-status.js';\nexport const X = EXIT_OK;\n",
    'src/virtio/queue.ts': [
      '/** A comment naming an import is not one: import { X } from "../transport/interrupt.js" */',
      "import type { X } from '../transport/interrupt.js';",
      "export { X as Y } from '../transport/interrupt.js';",
      "export const load = () => import('../builder/vm.js');",
      "export const worker = new URL('../transport/worker.js', import.meta.url);",
      "import { readFileSync } from 'node:fs';",
      '',
    ].join('\n'),
    'src/virtio/devices/rng.ts': "import {\n  X,\n} from '../../transport/interrupt.js';\nexport const Z = X;\n",
    'src/disk/image.ts': "import '../virtio/devices/rng.js';\n",
    'src/builder/vm.ts': "import { X } from '../transport/interrupt.js';\nexport const V = X;\n",
    'src/index.ts': "export * from './builder/vm.js';\n",
    'src/extra/stray.ts': 'export {};\n',
  });
  try {
    const { status, lines } = lint(dir);
    assert.is(status, 1);
    assert.equal(lines, [
      'src/disk/image.ts imports src/virtio/devices/rng.ts: layer disk may not import from layer devices',
      'src/virtio/devices/rng.ts imports src/transport/interrupt.ts: layer devices may not import from layer transport',
      'src/virtio/queue.ts imports src/transport/interrupt.ts: layer virtio may not import from layer transport',
      'src/virtio/queue.ts imports src/builder/vm.ts: layer virtio may not import from layer builder',
      'src/virtio/queue.ts imports src/transport/worker.ts: layer virtio may not import from layer transport',
      'src/extra/stray.ts is in no layer: add its folder to LAYERS in scripts/lint-layers.mjs',
      'lint:layers: 6 violation(s) in 8 files',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
