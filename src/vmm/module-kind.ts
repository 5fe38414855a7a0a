/**
 * What the device kinds of every family have in common (bus devices in
 * src/vmm/device.ts, virtio devices in src/virtio/virtio-device.ts, PCI
 * functions in src/transport/pci/pci-function.ts): a kind is declared once in
 * its module, naming that module (`import.meta.url`) and its own export, and
 * a worker thread that is told a kind's reference (plain data) loads it back
 * through `loadKind`, which checks that the export is a kind of the expected
 * family naming that very module and export.
 */

/** Where a kind is exported: the module's URL and the export's name (plain data). */
export interface KindRef {
  readonly module: string;
  readonly exportName: string;
}

/** The families of kinds a thread loads by reference. */
export type KindFamily = 'bus device' | 'virtio device' | 'PCI function';

/** Every kind carries its family, so one family's export is never taken for another's. */
export interface Kind<Family extends KindFamily> extends KindRef {
  readonly family: Family;
}

/** A kind's reference alone (what crosses to a thread), without its functions. */
export function kindRef(kind: KindRef): KindRef {
  return { module: kind.module, exportName: kind.exportName };
}

/**
 * The kind `ref` names, from its module: its export must be a kind of `family` naming that same
 * module and export, with a function under each of `methods`. Otherwise a TypeError naming
 * the export.
 */
export async function loadKind<K extends Kind<KindFamily>>(ref: KindRef, family: K['family'], methods: ReadonlyArray<keyof K & string>): Promise<K> {
  const exported = ((await import(ref.module)) as Record<string, unknown>)[ref.exportName];
  const kind = (typeof exported === 'object' && exported !== null ? exported : {}) as Partial<Record<string, unknown>>;
  if (kind['family'] !== family || kind['module'] !== ref.module || kind['exportName'] !== ref.exportName || methods.some((m) => typeof kind[m] !== 'function')) {
    throw new TypeError(`${ref.module} does not export a ${family} kind as ${ref.exportName}`);
  }
  return kind as unknown as K;
}
