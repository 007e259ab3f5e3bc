import os from 'node:os';

/**
 * Sizes libuv's thread pool to the machine, unless UV_THREADPOOL_SIZE is set already. sharp decodes every
 * image there, and the pool is shared by the whole process, stage and preprocessing threads included: its
 * default of 4 threads would decode at most four images at a time on a 16-core GPU worker. libuv reads the
 * variable when the pool starts, on first use, so entry points call this before any asynchronous work.
 */
export function sizeLibuvPool(): void {
  process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, os.availableParallelism()));
}
