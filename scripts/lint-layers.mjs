#!/usr/bin/env node
// Fails when a module under src/ imports from a layer it may not use (docs/ARCHITECTURE.md,
// "Layers"). Every import/export-from statement counts, `import type` included, and so do
// run-time module references: import('…') and new URL('…', import.meta.url) with a literal
// string. Only relative specifiers are followed (packages and node: builtins are not layers).
//
//   node scripts/lint-layers.mjs [--root DIR]
//
// Prints one line per violation and exits 1, or one OK line and exits 0.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Layers, lowest first: where each lives (longest folder prefix wins) and what it may import
 * besides itself. Siblings (boot and virtio; the device families) may not import each other.
 */
export const LAYERS = [
  { name: 'base', folders: ['src/base/'], may: [] },
  { name: 'sys', folders: ['src/sys/'], may: ['base'] },
  // The vhost-user front-end speaks to a back-end process over a socket: host I/O, no KVM.
  { name: 'vhost-user', folders: ['src/vhost-user/'], may: ['base', 'sys'] },
  { name: 'vmm', folders: ['src/vmm/'], may: ['base', 'sys'] },
  { name: 'boot', folders: ['src/boot/'], may: ['base', 'sys', 'vmm'] },
  { name: 'virtio', folders: ['src/virtio/'], may: ['base', 'sys', 'vmm'] },
  { name: 'transport', folders: ['src/transport/'], may: ['base', 'sys', 'vhost-user', 'vmm', 'virtio'] },
  // Devices never know their transport, and the transport never knows a device.
  { name: 'devices', folders: ['src/virtio/devices/'], may: ['base', 'sys', 'vhost-user', 'vmm', 'virtio'] },
  { name: 'legacy', folders: ['src/legacy/'], may: ['base', 'sys', 'vmm'] },
  { name: 'disk', folders: ['src/disk/'], may: ['base', 'sys'] },
  { name: 'net', folders: ['src/net/'], may: ['base', 'sys'] },
  {
    name: 'builder',
    folders: ['src/builder/'],
    may: ['base', 'sys', 'vhost-user', 'vmm', 'boot', 'virtio', 'transport', 'devices', 'legacy', 'disk', 'net'],
  },
  {
    name: 'cli',
    folders: ['src/cli/'],
    may: ['base', 'sys', 'vhost-user', 'vmm', 'boot', 'virtio', 'transport', 'devices', 'legacy', 'disk', 'net', 'builder'],
  },
  // The public library API re-exports from anywhere.
  { name: 'api', folders: ['src/index.ts'], may: '*' },
];

/** The layer a repository-relative path (forward slashes) belongs to, or undefined. */
export function layerOf(file) {
  let best;
  for (const layer of LAYERS) {
    for (const folder of layer.folders) {
      const hit = folder.endsWith('/') ? file.startsWith(folder) : file === folder;
      if (hit && (!best || folder.length > best.folder.length)) best = { layer, folder };
    }
  }
  return best?.layer;
}

function sourceFiles(dir) {
  if (!existsSync(dir)) return [];
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries.flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Comments out of the way, so an example in a doc comment is not an import. */
function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

const SPECIFIERS = [
  // import … from '…', import type … from '…', export … from '…' (any line breaks in between)
  /\b(?:import|export)\b[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/g,
  // import '…' (side effects only)
  /\bimport\s*(['"])([^'"]+)\1/g,
  // import('…')
  /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g,
  // new URL('…', import.meta.url): worker entry points and modules loaded by name
  /\bnew\s+URL\s*\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g,
];

/** The relative module specifiers of one source text. */
export function specifiersOf(text) {
  const code = stripComments(text);
  const found = new Set();
  for (const pattern of SPECIFIERS) {
    for (const match of code.matchAll(pattern)) if (match[2].startsWith('.')) found.add(match[2]);
  }
  return [...found];
}

/** Every import of src/**.ts that crosses into a layer it may not use. */
export function lintLayers(root) {
  const files = sourceFiles(path.join(root, 'src'));
  const violations = [];
  const unmapped = [];
  let edges = 0;
  for (const file of files) {
    const from = path.relative(root, file).split(path.sep).join('/');
    const layer = layerOf(from);
    if (!layer) {
      unmapped.push(from);
      continue;
    }
    for (const spec of specifiersOf(readFileSync(file, 'utf8'))) {
      const target = path
        .relative(root, path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')))
        .split(path.sep)
        .join('/');
      if (!target.startsWith('src/')) continue;
      edges += 1;
      const to = layerOf(target);
      if (!to || to === layer || layer.may === '*' || layer.may.includes(to.name)) continue;
      violations.push(`${from} imports ${target}: layer ${layer.name} may not import from layer ${to.name}`);
    }
  }
  for (const file of unmapped) violations.push(`${file} is in no layer: add its folder to LAYERS in scripts/lint-layers.mjs`);
  return { files: files.length, edges, violations };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--root');
  const root = at > 0 ? path.resolve(process.argv[at + 1]) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { files, edges, violations } = lintLayers(root);
  if (violations.length > 0) {
    for (const line of violations) console.log(line);
    console.log(`lint:layers: ${violations.length} violation(s) in ${files} files`);
    process.exit(1);
  }
  console.log(`lint:layers: OK, ${files} files, ${edges} imports inside src, every one downward (${LAYERS.length} layers)`);
}
