/** Worker side of PreprocessPool (preprocess-pool.ts): one batch per message, answered in one NHWC buffer. */
import { parentPort } from 'node:worker_threads';
import { ImageDecodeError, PRESETS, preprocessImage } from './preprocess';
import type { PreprocessReply, PreprocessRequest } from './preprocess-pool';

parentPort!.on('message', async ({ id, files, preset }: PreprocessRequest) => {
  const pixels = PRESETS[preset].cropSize ** 2 * 3;
  try {
    const data = new Float32Array(files.length * pixels);
    // Decodes run together in libuv's pool; each resize runs here as its decode completes.
    await Promise.all(
      files.map(async (file, i) => data.set((await preprocessImage(file, preset)).data, i * pixels)),
    );
    parentPort!.postMessage({ id, data } satisfies PreprocessReply, [data.buffer]);
  } catch (error) {
    const failure = error as Error;
    const decode = failure instanceof ImageDecodeError ? { file: failure.file, reason: failure.reason } : {};
    parentPort!.postMessage({ id, error: { message: failure.message, ...decode } } satisfies PreprocessReply);
  }
});
