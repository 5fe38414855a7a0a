/** The package's public API: build, run and await virtual machines from JavaScript. */
export { VirtualMachine, runVm, statusForError, messageForError } from './builder/vm.js';
export { ConfigError, parseMemorySize, validateConfig, type VmConfig, type ValidConfig, type ConsoleKind } from './builder/config.js';
export { VmmError } from './base/vmm-error.js';
export { errorToExit, type ErrorExit } from './base/error-exit.js';
export { BootError } from './boot/index.js';
export { KvmError } from './vmm/kvm.js';
export * from './base/exit-status.js';
