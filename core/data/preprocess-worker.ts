/** Worker side of PreprocessPool (preprocess-pool.ts): writes a request's images into the batch's shared buffer. */
import { serveRequests } from '../util/worker-client';
import { ImageDecodeError, PRESETS, preprocessImage } from './preprocess';
import type { PreprocessReply, PreprocessRequest } from './preprocess-pool';

serveRequests<PreprocessRequest, PreprocessReply>(async ({ files, preset, batch, first }) => {
  const pixels = PRESETS[preset].cropSize ** 2 * 3;
  const data = new Float32Array(
    batch,
    first * pixels * Float32Array.BYTES_PER_ELEMENT,
    files.length * pixels,
  );
  try {
    // Decodes run together in libuv's pool; each resize runs here as its decode completes.
    await Promise.all(
      files.map(async (file, i) => data.set((await preprocessImage(file, preset)).data, i * pixels)),
    );
  } catch (error) {
    if (error instanceof ImageDecodeError)
      return { reply: { decodeError: { file: error.file, reason: error.reason } } };
    throw error;
  }
  return { reply: { done: true } };
});
