/**
 * Port 0x80, the POST diagnostic port. Linux writes to it as an I/O delay
 * (outb_p); claiming it keeps those writes out of the unhandled-port log.
 */
import { defineBusDevice } from '../vmm/device.js';

export const POST_PORT = 0x80;

export const postPortDevice = defineBusDevice({
  module: import.meta.url,
  exportName: 'postPortDevice',
  create: () => ({
    read(_offset, data) {
      data.fill(0);
    },
    write() {},
  }),
});
