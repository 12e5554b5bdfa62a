export * from './errors.js';
export * from './event.js';
export * from './channel.js';
export * from './commands.js';
export * from './cursor.js';
export { uuidv7, randomId } from './uuid.js';
