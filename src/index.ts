/** The package's public API: build, run and await virtual machines from JavaScript. */
export { VirtualMachine, runVm, statusForError, messageForError } from './vm.js';
export { ConfigError, parseMemorySize, type VmConfig, type ConsoleKind } from './config.js';
export { BootError } from './boot/index.js';
export { KvmError } from './vmm/kvm.js';
export * from './base/exit-status.js';
