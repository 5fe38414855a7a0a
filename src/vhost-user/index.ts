/** The vhost-user front-end: the message protocol and a connection to a back-end process. */
export * from './error.js';
export * from './protocol.js';
export * from './frontend.js';
