/** Worker side of PreprocessPool (preprocess-pool.ts): writes a request's images into the batch's shared buffer. */
import { serveRequests } from '../util/worker-client';
import { cropPixels, decodeRgb, ImageDecodeError, PRESETS, preprocessRgb } from './preprocess';
import type { PreprocessReply, PreprocessRequest } from './preprocess-pool';

serveRequests<PreprocessRequest, PreprocessReply>(async ({ files, preset, format, batch, first }) => {
  const values = PRESETS[preset].cropSize ** 2 * 3;
  const data =
    format === 'pixels'
      ? new Uint8Array(batch, first * values, files.length * values)
      : new Float32Array(batch, first * values * Float32Array.BYTES_PER_ELEMENT, files.length * values);
  const prepared = (image: Awaited<ReturnType<typeof decodeRgb>>) =>
    format === 'pixels' ? cropPixels(image, PRESETS[preset]) : preprocessRgb(image, preset).data;
  try {
    // Decodes run together in libuv's pool; each resize runs here as its decode completes.
    await Promise.all(files.map(async (file, i) => data.set(prepared(await decodeRgb(file)), i * values)));
  } catch (error) {
    if (error instanceof ImageDecodeError)
      return { reply: { decodeError: { file: error.file, reason: error.reason } } };
    throw error;
  }
  return { reply: { done: true } };
});
