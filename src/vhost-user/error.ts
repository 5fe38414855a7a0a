/**
 * What goes wrong talking to a vhost-user backend: the connection (closed, timed out, a host
 * call failed), a reply that breaks the protocol, a negative acknowledgement, or a request the
 * negotiated features do not allow. A backend is another process, so all of these are host
 * errors (status 4), each one line naming the request.
 */
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type VhostUserErrorKind = 'connection' | 'timeout' | 'protocol' | 'nack' | 'unsupported' | 'invalid';

export class VhostUserError extends VmmError<VhostUserErrorKind> {
  constructor(kind: VhostUserErrorKind, message: string, options: { readonly cause?: unknown } = {}) {
    super(kind, `vhost-user: ${message}`, { status: EXIT_HOST_ERROR, ...options });
  }
}
