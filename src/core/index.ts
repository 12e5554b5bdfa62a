export * from './engine.js';
export * from './options.js';
export * from './outgoing.js';
export * from './hub.js';
export * from './logger.js';
export * from './addon.js';
