/** Worker side of PreprocessPool (preprocess-pool.ts): writes a request's images into the batch's shared buffer. */
import { serveRequests } from '../util/worker-client';
import { cropPixels, decodeRgb, ImageDecodeError, PRESETS, preprocessRgb } from './preprocess';
import type { PreprocessReply, PreprocessRequest, UnreadableImage } from './preprocess-pool';

serveRequests<PreprocessRequest, PreprocessReply>(async ({ files, preset, format, batch, first }) => {
  const values = PRESETS[preset].cropSize ** 2 * 3;
  const data =
    format === 'pixels'
      ? new Uint8Array(batch, first * values, files.length * values)
      : new Float32Array(batch, first * values * Float32Array.BYTES_PER_ELEMENT, files.length * values);
  const prepared = (image: Awaited<ReturnType<typeof decodeRgb>>) =>
    format === 'pixels' ? cropPixels(image, PRESETS[preset]) : preprocessRgb(image, preset).data;
  const unreadable: UnreadableImage[] = [];
  // Decodes run together in libuv's pool; each resize runs here as its decode completes. Every file is
  // tried, so that a run that skips unreadable images learns of all of them; their rows stay zero.
  await Promise.all(
    files.map(async (file, i) => {
      try {
        data.set(prepared(await decodeRgb(file)), i * values);
      } catch (error) {
        if (!(error instanceof ImageDecodeError)) throw error;
        unreadable.push({ index: first + i, file: error.file, reason: error.reason });
      }
    }),
  );
  return { reply: { unreadable } };
});
