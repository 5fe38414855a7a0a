/**
 * The device status state machine (virtio 1.2 §2.1, §3.1), shared by both
 * transports: writing 0 resets the device (waiting for the data plane to let
 * go of the queues), FEATURES_OK is refused unless the driver accepted
 * VIRTIO_F_VERSION_1, and DRIVER_OK hands the queues to the data plane
 * (every one of the device's data-plane threads).
 */
import type createDebug from 'debug';
import { signalEventfd } from '../sys/eventfd.js';
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
} from '../virtio/virtio-constants.js';
import type { VirtioTransportState } from './virtio-transport-state.js';

/** How long a reset waits for the data plane to stop using the queues. */
export const RESET_TIMEOUT_MS = 1000;

export interface StatusTransition {
  /** One control eventfd per data-plane thread of the device. */
  readonly controlFds: readonly number[];
  readonly log: createDebug.Debugger;
  /** Transport-specific extra work after the registers were reset (e.g. MSI-X). */
  readonly afterReset?: () => void;
}

export function writeStatus(state: VirtioTransportState, value: number, transition: StatusTransition): void {
  if (value === 0) {
    resetDevice(state, transition);
    return;
  }
  let next = value & 0xff;
  const current = state.status;
  if (next & VIRTIO_CONFIG_S_FEATURES_OK && !(current & VIRTIO_CONFIG_S_FEATURES_OK)) {
    if ((state.driverFeatures & featureBit(VIRTIO_F_VERSION_1)) === 0n) {
      transition.log('refusing FEATURES_OK: the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)');
      next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
  }
  if (next & VIRTIO_CONFIG_S_DRIVER_OK && !(next & VIRTIO_CONFIG_S_FEATURES_OK)) {
    transition.log('ignoring DRIVER_OK without FEATURES_OK');
    next &= ~VIRTIO_CONFIG_S_DRIVER_OK;
  }
  // The device's own NEEDS_RESET bit survives driver writes until a reset, even one a
  // data-plane thread sets while this write is under way.
  const [old] = state.updateStatus((before) => next | (before & VIRTIO_CONFIG_S_NEEDS_RESET));
  const newlyOk = next & VIRTIO_CONFIG_S_DRIVER_OK && !(old & VIRTIO_CONFIG_S_DRIVER_OK);
  const newlyFailed = next & VIRTIO_CONFIG_S_FAILED && !(old & VIRTIO_CONFIG_S_FAILED);
  if (newlyOk || newlyFailed) {
    state.requestControl();
    signalControl(transition);
  }
}

export function resetDevice(state: VirtioTransportState, transition: StatusTransition): void {
  state.status = 0;
  // A data-plane thread that misses this reset (busy past the timeout) still sees it afterwards.
  state.bumpResetEpoch();
  const sequence = state.requestControl();
  signalControl(transition);
  if (!state.waitForControl(sequence, RESET_TIMEOUT_MS)) transition.log('data plane slow to acknowledge the reset');
  state.resetRegisters();
  transition.afterReset?.();
}

function signalControl(transition: StatusTransition): void {
  for (const fd of transition.controlFds) signalEventfd(fd);
}
