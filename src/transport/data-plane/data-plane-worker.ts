/**
 * A virtio device's data-plane thread. It sleeps in epoll_wait on its control
 * eventfd, the ioeventfds of the queues it serves (all of the device's, or
 * its share when the device splits them among threads), the line's resample
 * fd and any fd the device watches; guest kicks reach it without any
 * userspace exit, and it answers through irqfds. Activation and reset arrive
 * through the shared transport state and the control eventfd, so this thread
 * never needs the main thread's event loop.
 */
import createDebug from 'debug';
import { workerData } from 'node:worker_threads';
import { memoryFromRegions } from '../../vmm/guest-ram.js';
import { EPOLLIN, EPOLL_EVENT_SIZE, epollAdd, epollCreate, epollRemove, epollWait } from '../../sys/epoll.js';
import { drainEventfd, signalEventfd } from '../../sys/eventfd.js';
import { close } from '../../sys/fd.js';
import { TransportInterrupt } from '../virtio-interrupt.js';
import { RateLimitedLog, logSynchronously, writeStderrNow } from '../../sys/thread-log.js';
import { EINTR } from '../../sys/errno.js';
import { VirtioTransportState } from '../virtio-transport-state.js';
import type { DataPlaneWorkerData } from './data-plane-protocol.js';
import { QueueError, SplitQueue } from '../../virtio/queue.js';
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_RING_INDIRECT_DESC,
  featureBit,
} from '../../virtio/virtio-constants.js';
import { createVirtioDevice, type DataPlaneHost } from '../../virtio/virtio-device.js';

const TOKEN_CONTROL = 0;
const TOKEN_RESAMPLE = 1;
const TOKEN_FIRST_KICK = 2;
const TOKEN_FIRST_WATCH = 1000;
const MAX_EVENTS = 64;

async function main(): Promise<void> {
  // This thread lives in epoll_wait: its process.stderr would only flush when it ends.
  logSynchronously();
  const data = workerData as DataPlaneWorkerData;
  const log = createDebug(`kvm:${data.name}`);
  const state = new VirtioTransportState(data.state);
  const memory = memoryFromRegions(data.regions);
  const interrupt = new TransportInterrupt(state, data.interrupt);
  const device = await createVirtioDevice(data.device, { thread: data.thread, queues: data.queues });
  const served = new Set(data.queues);

  const epfd = epollCreate();
  epollAdd(epfd, data.controlFd, EPOLLIN, TOKEN_CONTROL);
  if (data.interrupt.resampleFd !== undefined) epollAdd(epfd, data.interrupt.resampleFd, EPOLLIN, TOKEN_RESAMPLE);
  for (const q of data.queues) epollAdd(epfd, data.kickFds[q]!, EPOLLIN, TOKEN_FIRST_KICK + q);

  // A guest can fail the device as often as it resets it: one stderr line each would be a flood.
  const failureLog = new RateLimitedLog(writeStderrNow, `kvm: ${data.name}`);
  const watched = new Map<number, { fd: number; onReadable: () => void }>();
  let nextWatchToken = TOKEN_FIRST_WATCH;
  let active = false;
  /** The reset epoch the active queues belong to. */
  let activeEpoch = -1;

  const deactivate = (): void => {
    if (!active) return;
    active = false;
    device.reset();
    for (const [token, w] of watched) {
      epollRemove(epfd, w.fd);
      watched.delete(token);
    }
  };

  const host: DataPlaneHost = {
    watch(fd, onReadable) {
      const token = nextWatchToken++;
      watched.set(token, { fd, onReadable });
      epollAdd(epfd, fd, EPOLLIN, token);
    },
    unwatch(fd) {
      for (const [token, w] of watched) {
        if (w.fd === fd) {
          epollRemove(epfd, fd);
          watched.delete(token);
        }
      }
    },
    resume(queueIndex) {
      // The queue's own kick eventfd: epoll_wait returns at once, with any control request beside it.
      const fd = data.kickFds[queueIndex];
      if (fd !== undefined && served.has(queueIndex)) signalEventfd(fd);
    },
    failDevice(reason) {
      // Queues of a session the driver already reset: nothing of the new session is wrong.
      if (state.resetEpoch !== activeEpoch) {
        log('stale queues dropped: %s', reason);
        deactivate();
        return;
      }
      log('device needs reset: %s', reason);
      failureLog.line(`kvm: ${data.name}: ${reason}; device needs reset\n`);
      deactivate();
      state.orStatus(VIRTIO_CONFIG_S_NEEDS_RESET);
      interrupt.signalConfigChange();
    },
    log,
  };

  const guarded = (what: () => void): void => {
    try {
      what();
    } catch (error) {
      if (error instanceof QueueError && !error.fatal) log('malformed request ignored: %s', error.message);
      else if (error instanceof QueueError) host.failDevice(error.message);
      else host.failDevice(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  /** `epoch`: the reset epoch read before the status that asked for this activation. */
  const activate = (epoch: number): void => {
    activeEpoch = epoch;
    const features = state.driverFeatures;
    const options = {
      eventIdx: (features & featureBit(VIRTIO_F_RING_EVENT_IDX)) !== 0n,
      indirect: (features & featureBit(VIRTIO_F_RING_INDIRECT_DESC)) !== 0n,
    };
    const queues = Array.from({ length: state.queueCount }, (_, q) => {
      const s = state.queue(q);
      if (!s.ready || !served.has(q)) return undefined;
      const session = { words: state.words, index: state.resetEpochIndex, epoch: activeEpoch };
      return new SplitQueue(memory, { size: s.size, descTable: s.desc, availRing: s.driver, usedRing: s.device }, options, session);
    });
    device.activate({ memory, queues, features, interrupt, host, resetEpoch: activeEpoch });
    active = true;
    log('activated with features 0x%s, %d queue(s) ready', features.toString(16), queues.filter(Boolean).length);
    // Kicks that came before activation are still counted in their eventfds; serve them now.
    queues.forEach((queue, q) => {
      if (queue) {
        drainEventfd(data.kickFds[q]!);
        device.queueNotified(q);
      }
    });
  };

  const handleControl = (): boolean => {
    drainEventfd(data.controlFd);
    const sequence = state.controlSequence;
    if (state.terminating) {
      state.setDataPlaneEnding(data.thread);
      return false;
    }
    // The epoch first: a reset stores status 0 before it bumps the epoch, so a DRIVER_OK read
    // after this epoch belongs to it or to an older one. Read the other way round, a reset landing
    // between the reads would give the old session's queues the new epoch, and a thread that
    // then missed the reset's deadline would keep them as if current.
    const epoch = state.resetEpoch;
    const status = state.status;
    // A reset this thread was too busy to acknowledge in time still ends the old session here.
    if (active && (status === 0 || !(status & VIRTIO_CONFIG_S_DRIVER_OK) || epoch !== activeEpoch)) deactivate();
    if (status & VIRTIO_CONFIG_S_DRIVER_OK && !active && !(status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED))) {
      guarded(() => activate(epoch));
    }
    state.acknowledgeControl(data.thread, sequence);
    return true;
  };

  state.setDataPlaneAttached(data.thread, true);
  // A control request made before this thread existed is served now, the end of the VM among
  // them: a thread that starts late (a loaded host) may find it already asked for, and its
  // eventfd drained here, so it must not go on to wait for a signal that was already sent.
  let running = state.controlSequence !== 0 || state.terminating ? handleControl() : true;
  const events = new Uint8Array(MAX_EVENTS * EPOLL_EVENT_SIZE);
  const view = new DataView(events.buffer);
  while (running) {
    const count = epollWait(epfd, events, -1);
    if (count === -EINTR) continue;
    if (count < 0) {
      writeStderrNow(`kvm: ${data.name}: epoll_wait failed (errno ${-count})\n`);
      break;
    }
    for (let i = 0; i < count && running; i++) {
      const token = view.getUint32(i * EPOLL_EVENT_SIZE + 4, true);
      if (token === TOKEN_CONTROL) {
        running = handleControl();
      } else if (token === TOKEN_RESAMPLE) {
        drainEventfd(data.interrupt.resampleFd!);
        interrupt.resample();
      } else if (token < TOKEN_FIRST_WATCH) {
        const q = token - TOKEN_FIRST_KICK;
        drainEventfd(data.kickFds[q]!);
        if (active) guarded(() => device.queueNotified(q));
      } else {
        const w = watched.get(token);
        if (w && active) guarded(w.onReadable);
      }
    }
  }
  // Detach only once nothing is in flight: a reset waits for this thread until then.
  deactivate();
  failureLog.flush();
  state.setDataPlaneAttached(data.thread, false);
  close(epfd);
}

void main();
