/**
 * The register state one virtio device shares between threads: vCPU threads
 * serve the driver's register accesses (MMIO or PCI), the device's
 * data-plane thread reads the negotiated queues at activation and raises
 * interrupts. It is transport-neutral: both transports keep the same fields.
 */
import { SharedLock } from '../vmm/shared-lock.js';
import { VIRTIO_MSI_NO_VECTOR } from '../virtio/virtio-constants.js';

// Int32 words.
const LOCK = 0;
const STATUS = 1;
const DEVICE_FEATURES_LO = 2;
const DEVICE_FEATURES_HI = 3;
const DEVICE_FEATURE_SEL = 4;
const DRIVER_FEATURES_LO = 5;
const DRIVER_FEATURES_HI = 6;
const DRIVER_FEATURE_SEL = 7;
const QUEUE_SEL = 8;
const CONFIG_GENERATION = 9;
const ISR = 10;
const CONFIG_VECTOR = 11;
const MSIX_ENABLED = 12;
const MSIX_FUNCTION_MASK = 13;
/** Bumped (and the control eventfds written) when the data plane must look at the status. */
const CONTROL_SEQUENCE = 14;
const TERMINATE = 16;
const QUEUE_COUNT = 17;
const MSIX_VECTORS = 18;
const CONFIG_SIZE = 19;
const DATA_PLANE_THREADS = 20;
/** Bumped by every device reset: a data-plane thread still holding queues of an older epoch drops them. */
const RESET_EPOCH = 21;
const HEADER_WORDS = 24;

// Per data-plane thread, after the header.
/** The thread's acknowledgement: the CONTROL_SEQUENCE it has handled. */
const T_CONTROL_ACK = 0;
/** 1 while the thread runs (a reset only waits for threads that exist). */
const T_ATTACHED = 1;
/** 1 once the thread has seen the end of the VM (it is finishing its I/O in flight). */
const T_ENDING = 2;
const T_WORDS = 3;

// Per queue.
const Q_MAX_SIZE = 0;
const Q_SIZE = 1;
const Q_READY = 2;
const Q_DESC_LO = 3;
const Q_DESC_HI = 4;
const Q_DRIVER_LO = 5;
const Q_DRIVER_HI = 6;
const Q_DEVICE_LO = 7;
const Q_DEVICE_HI = 8;
const Q_VECTOR = 9;
const Q_WORDS = 10;

// Per MSI-X vector: address lo, address hi, data, vector control, pending.
const V_ADDRESS_LO = 0;
const V_ADDRESS_HI = 1;
const V_DATA = 2;
const V_CONTROL = 3;
const V_PENDING = 4;
const V_WORDS = 5;
export const MSIX_VECTOR_CTRL_MASKBIT = 1;

export type QueueAddressField = 'desc' | 'driver' | 'device';

export interface QueueState {
  readonly maxSize: number;
  readonly size: number;
  readonly ready: boolean;
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
  readonly vector: number;
}

export interface TransportStateInit {
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSpace: Uint8Array;
  readonly msixVectors: number;
  /** Data-plane threads serving the device (each acknowledges control requests); default 1. */
  readonly dataPlaneThreads?: number;
}

export class VirtioTransportState {
  readonly words: Int32Array;
  /** The device-specific configuration space. */
  readonly config: Uint8Array;
  readonly lock: SharedLock;
  private readonly threadBase = HEADER_WORDS;
  private readonly queueBase: number;
  private readonly vectorBase: number;

  constructor(readonly shared: SharedArrayBuffer) {
    const header = new Int32Array(shared, 0, HEADER_WORDS);
    const queues = header[QUEUE_COUNT]!;
    const vectors = header[MSIX_VECTORS]!;
    this.queueBase = this.threadBase + header[DATA_PLANE_THREADS]! * T_WORDS;
    this.vectorBase = this.queueBase + queues * Q_WORDS;
    const wordCount = this.vectorBase + vectors * V_WORDS;
    this.words = new Int32Array(shared, 0, wordCount);
    this.config = new Uint8Array(shared, wordCount * 4, header[CONFIG_SIZE]!);
    this.lock = new SharedLock(this.words, LOCK);
  }

  static create(init: TransportStateInit): VirtioTransportState {
    const threads = init.dataPlaneThreads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`${threads} data-plane threads`);
    const wordCount = HEADER_WORDS + threads * T_WORDS + init.queueMaxSizes.length * Q_WORDS + init.msixVectors * V_WORDS;
    const shared = new SharedArrayBuffer(wordCount * 4 + init.configSpace.length);
    const header = new Int32Array(shared, 0, HEADER_WORDS);
    header[QUEUE_COUNT] = init.queueMaxSizes.length;
    header[MSIX_VECTORS] = init.msixVectors;
    header[CONFIG_SIZE] = init.configSpace.length;
    header[DATA_PLANE_THREADS] = threads;
    header[DEVICE_FEATURES_LO] = Number(init.deviceFeatures & 0xffffffffn) | 0;
    header[DEVICE_FEATURES_HI] = Number(init.deviceFeatures >> 32n) | 0;
    const state = new VirtioTransportState(shared);
    state.config.set(init.configSpace);
    init.queueMaxSizes.forEach((max, q) => (state.words[state.queueBase + q * Q_WORDS + Q_MAX_SIZE] = max));
    state.resetRegisters();
    return state;
  }

  get queueCount(): number {
    return this.words[QUEUE_COUNT]!;
  }
  get msixVectorCount(): number {
    return this.words[MSIX_VECTORS]!;
  }
  get dataPlaneThreads(): number {
    return this.words[DATA_PLANE_THREADS]!;
  }

  /** Everything a reset clears (virtio 1.2 §2.4), keeping what the device offers. */
  resetRegisters(): void {
    for (const w of [STATUS, DEVICE_FEATURE_SEL, DRIVER_FEATURES_LO, DRIVER_FEATURES_HI, DRIVER_FEATURE_SEL, QUEUE_SEL, ISR]) {
      Atomics.store(this.words, w, 0);
    }
    this.words[CONFIG_VECTOR] = VIRTIO_MSI_NO_VECTOR;
    for (let q = 0; q < this.queueCount; q++) {
      const b = this.queueBase + q * Q_WORDS;
      this.words[b + Q_SIZE] = this.words[b + Q_MAX_SIZE]!;
      for (const f of [Q_READY, Q_DESC_LO, Q_DESC_HI, Q_DRIVER_LO, Q_DRIVER_HI, Q_DEVICE_LO, Q_DEVICE_HI]) this.words[b + f] = 0;
      this.words[b + Q_VECTOR] = VIRTIO_MSI_NO_VECTOR;
    }
  }

  get status(): number {
    return Atomics.load(this.words, STATUS);
  }
  set status(value: number) {
    Atomics.store(this.words, STATUS, value & 0xff);
  }
  /** Sets status bits atomically (the data plane sets DEVICE_NEEDS_RESET). */
  orStatus(bits: number): void {
    Atomics.or(this.words, STATUS, bits);
  }
  /**
   * Replaces the status with `next(old)` atomically, so bits another thread sets meanwhile
   * (DEVICE_NEEDS_RESET from a data-plane thread) are not lost; returns [old, new].
   */
  updateStatus(next: (old: number) => number): [number, number] {
    for (;;) {
      const old = Atomics.load(this.words, STATUS);
      const value = next(old) & 0xff;
      if (Atomics.compareExchange(this.words, STATUS, old, value) === old) return [old, value];
    }
  }
  get resetEpoch(): number {
    return Atomics.load(this.words, RESET_EPOCH);
  }
  /** The reset epoch's word, for queues that check it themselves (SplitQueue's session). */
  get resetEpochIndex(): number {
    return RESET_EPOCH;
  }
  bumpResetEpoch(): void {
    Atomics.add(this.words, RESET_EPOCH, 1);
  }

  get deviceFeatures(): bigint {
    return (BigInt(this.words[DEVICE_FEATURES_HI]! >>> 0) << 32n) | BigInt(this.words[DEVICE_FEATURES_LO]! >>> 0);
  }
  get deviceFeatureSelect(): number {
    return this.words[DEVICE_FEATURE_SEL]! >>> 0;
  }
  set deviceFeatureSelect(value: number) {
    this.words[DEVICE_FEATURE_SEL] = value | 0;
  }
  /** 32-bit window of the offered features selected by DeviceFeatureSel. */
  deviceFeatureWindow(): number {
    const sel = this.deviceFeatureSelect;
    if (sel > 1) return 0;
    return this.words[sel === 0 ? DEVICE_FEATURES_LO : DEVICE_FEATURES_HI]! >>> 0;
  }

  get driverFeatureSelect(): number {
    return this.words[DRIVER_FEATURE_SEL]! >>> 0;
  }
  set driverFeatureSelect(value: number) {
    this.words[DRIVER_FEATURE_SEL] = value | 0;
  }
  get driverFeatures(): bigint {
    return (BigInt(this.words[DRIVER_FEATURES_HI]! >>> 0) << 32n) | BigInt(this.words[DRIVER_FEATURES_LO]! >>> 0);
  }
  driverFeatureWindow(): number {
    const sel = this.driverFeatureSelect;
    if (sel > 1) return 0;
    return this.words[sel === 0 ? DRIVER_FEATURES_LO : DRIVER_FEATURES_HI]! >>> 0;
  }
  /** Writes the selected window; bits beyond what the device offers are kept out. */
  setDriverFeatureWindow(value: number): void {
    const sel = this.driverFeatureSelect;
    if (sel > 1) return;
    const offered = this.words[sel === 0 ? DEVICE_FEATURES_LO : DEVICE_FEATURES_HI]!;
    this.words[sel === 0 ? DRIVER_FEATURES_LO : DRIVER_FEATURES_HI] = value & offered;
  }

  get queueSelect(): number {
    return this.words[QUEUE_SEL]! >>> 0;
  }
  set queueSelect(value: number) {
    this.words[QUEUE_SEL] = value & 0xffff;
  }
  /** Whether QueueSel names a queue this device has. */
  get selectedQueueExists(): boolean {
    return this.queueSelect < this.queueCount;
  }

  queue(index: number): QueueState {
    const b = this.queueBase + index * Q_WORDS;
    const w = this.words;
    const address = (lo: number, hi: number): number => (w[b + hi]! >>> 0) * 2 ** 32 + (w[b + lo]! >>> 0);
    return {
      maxSize: w[b + Q_MAX_SIZE]!,
      size: w[b + Q_SIZE]!,
      ready: w[b + Q_READY] === 1,
      desc: address(Q_DESC_LO, Q_DESC_HI),
      driver: address(Q_DRIVER_LO, Q_DRIVER_HI),
      device: address(Q_DEVICE_LO, Q_DEVICE_HI),
      vector: w[b + Q_VECTOR]! & 0xffff,
    };
  }

  setQueueSize(index: number, size: number): void {
    this.words[this.queueBase + index * Q_WORDS + Q_SIZE] = size & 0xffff;
  }
  setQueueReady(index: number, ready: boolean): void {
    this.words[this.queueBase + index * Q_WORDS + Q_READY] = ready ? 1 : 0;
  }
  /** Sets the low or high 32 bits of a queue address. */
  setQueueAddressPart(index: number, field: QueueAddressField, high: boolean, value: number): void {
    const lo = field === 'desc' ? Q_DESC_LO : field === 'driver' ? Q_DRIVER_LO : Q_DEVICE_LO;
    this.words[this.queueBase + index * Q_WORDS + lo + (high ? 1 : 0)] = value | 0;
  }
  setQueueVector(index: number, vector: number): void {
    this.words[this.queueBase + index * Q_WORDS + Q_VECTOR] = vector & 0xffff;
  }

  get configGeneration(): number {
    return Atomics.load(this.words, CONFIG_GENERATION);
  }
  bumpConfigGeneration(): void {
    Atomics.add(this.words, CONFIG_GENERATION, 1);
  }

  /** Interrupt status bits (VIRTIO_ISR_*). */
  get isr(): number {
    return Atomics.load(this.words, ISR);
  }
  raiseIsr(bits: number): void {
    Atomics.or(this.words, ISR, bits);
  }
  /** Reads and clears (PCI ISR semantics). */
  takeIsr(): number {
    return Atomics.exchange(this.words, ISR, 0);
  }
  acknowledgeIsr(bits: number): void {
    Atomics.and(this.words, ISR, ~bits);
  }

  get configVector(): number {
    return this.words[CONFIG_VECTOR]! & 0xffff;
  }
  set configVector(value: number) {
    this.words[CONFIG_VECTOR] = value & 0xffff;
  }

  // MSI-X (PCI transport only).
  get msixEnabled(): boolean {
    return Atomics.load(this.words, MSIX_ENABLED) === 1;
  }
  set msixEnabled(on: boolean) {
    Atomics.store(this.words, MSIX_ENABLED, on ? 1 : 0);
  }
  get msixFunctionMask(): boolean {
    return Atomics.load(this.words, MSIX_FUNCTION_MASK) === 1;
  }
  set msixFunctionMask(on: boolean) {
    Atomics.store(this.words, MSIX_FUNCTION_MASK, on ? 1 : 0);
  }
  private vectorWord(vector: number, field: number): number {
    return this.vectorBase + vector * V_WORDS + field;
  }
  /** MSI-X table entry words (address lo, address hi, data, vector control). */
  msixEntryWord(vector: number, word: number): number {
    return Atomics.load(this.words, this.vectorWord(vector, word)) >>> 0;
  }
  setMsixEntryWord(vector: number, word: number, value: number): void {
    Atomics.store(this.words, this.vectorWord(vector, word), value | 0);
  }
  msixMessage(vector: number): { addressLo: number; addressHi: number; data: number } {
    return {
      addressLo: this.msixEntryWord(vector, V_ADDRESS_LO),
      addressHi: this.msixEntryWord(vector, V_ADDRESS_HI),
      data: this.msixEntryWord(vector, V_DATA),
    };
  }
  msixMasked(vector: number): boolean {
    return this.msixFunctionMask || (this.msixEntryWord(vector, V_CONTROL) & MSIX_VECTOR_CTRL_MASKBIT) !== 0;
  }
  msixPending(vector: number): boolean {
    return Atomics.load(this.words, this.vectorWord(vector, V_PENDING)) === 1;
  }
  setMsixPending(vector: number, pending: boolean): boolean {
    return Atomics.exchange(this.words, this.vectorWord(vector, V_PENDING), pending ? 1 : 0) === 1;
  }

  // Control channel between the transport (vCPU threads) and the data plane.
  /** Asks the data plane to look at the status again; returns the sequence number to wait for. */
  requestControl(): number {
    return Atomics.add(this.words, CONTROL_SEQUENCE, 1) + 1;
  }
  get controlSequence(): number {
    return Atomics.load(this.words, CONTROL_SEQUENCE);
  }
  /** Data-plane thread `thread` has handled every request up to `sequence`. */
  acknowledgeControl(thread: number, sequence: number): void {
    const word = this.threadWord(thread, T_CONTROL_ACK);
    Atomics.store(this.words, word, sequence);
    Atomics.notify(this.words, word);
  }
  dataPlaneAttached(thread: number): boolean {
    return Atomics.load(this.words, this.threadWord(thread, T_ATTACHED)) === 1;
  }
  setDataPlaneAttached(thread: number, on: boolean): void {
    Atomics.store(this.words, this.threadWord(thread, T_ATTACHED), on ? 1 : 0);
  }
  /** Thread `thread` has seen `terminating` and is ending (waiting for its I/O in flight). */
  dataPlaneEnding(thread: number): boolean {
    return Atomics.load(this.words, this.threadWord(thread, T_ENDING)) === 1;
  }
  setDataPlaneEnding(thread: number): void {
    Atomics.store(this.words, this.threadWord(thread, T_ENDING), 1);
  }
  /** Every data-plane thread is running. */
  get allDataPlanesAttached(): boolean {
    for (let t = 0; t < this.dataPlaneThreads; t++) if (!this.dataPlaneAttached(t)) return false;
    return true;
  }
  /** Waits (bounded) until every running data-plane thread has handled `sequence`. */
  waitForControl(sequence: number, timeoutMs: number): boolean {
    const deadline = Date.now() + timeoutMs;
    for (let t = 0; t < this.dataPlaneThreads; t++) {
      const word = this.threadWord(t, T_CONTROL_ACK);
      for (;;) {
        if (!this.dataPlaneAttached(t)) break;
        const ack = Atomics.load(this.words, word);
        if (ack - sequence >= 0) break;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        // Bounded slices: a thread that detaches meanwhile never acknowledges.
        Atomics.wait(this.words, word, ack, Math.min(left, 50));
      }
    }
    return true;
  }
  private threadWord(thread: number, field: number): number {
    if (thread < 0 || thread >= this.dataPlaneThreads) throw new RangeError(`data-plane thread ${thread}`);
    return this.threadBase + thread * T_WORDS + field;
  }
  get terminating(): boolean {
    return Atomics.load(this.words, TERMINATE) === 1;
  }
  terminate(): void {
    Atomics.store(this.words, TERMINATE, 1);
  }
}
