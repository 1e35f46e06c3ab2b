/**
 * The data module: formats (IDX, CIFAR), data sets (named, the user's own arrays, a folder of PNGs per class),
 * downloads, batching, augmentation, task streams.
 */
export * from './idx.js';
export * from './cifar.js';
export * from './dataset.js';
export * from './arrays.js';
export * from './image-folder.js';
export * from './fetch.js';
export * from './pipeline.js';
export * from './tasks.js';
export { encodeTar, parseTar, type TarEntry } from './tar.js';
export { isGzip } from './gzip.js';
