export * from './version.js';
export * from './mime.js';
export * from './errors.js';
export * from './schema.js';
export * from './query-schema.js';
export * from './admin-schema.js';
export * from './routes.js';
export * from './validate.js';
