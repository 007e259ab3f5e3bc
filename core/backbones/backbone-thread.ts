import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkerClient } from '../util/worker-client';
import type { Backbone } from './backbone';
import type { BackboneSpec } from './registry';

/** What the thread says of its backbone once open: everything but the methods, and whether it takes pixels. */
export type BackboneInfo = Omit<Backbone, 'extract' | 'extractPixels' | 'dispose'> & { takesPixels: boolean };

/** A backbone's description, as it crosses a thread or process boundary. */
export function backboneInfo(backbone: Backbone): BackboneInfo {
  const { extract: _extract, extractPixels, dispose: _dispose, ...info } = backbone;
  return { ...info, takesPixels: extractPixels !== undefined };
}

export type BackboneThreadRequest =
  | { kind: 'open'; spec: BackboneSpec }
  /** A batch of normalised values, or (a Uint8Array) of pixels for `extractPixels`. */
  | { kind: 'extract'; images: Float32Array | Uint8Array; n: number };

export type BackboneThreadReply = BackboneInfo | Float32Array;

/**
 * The backbone of `spec`, opened and run in a thread of its own. onnxruntime's run() blocks the thread
 * that calls it until the batch is done, on a GPU too; from here the caller's thread stays free, so what
 * it does with one batch's features (checks, copies, hashing and writing shards) overlaps the next batch
 * on the device. Each batch's images are copied to the thread (shared memory, as PreprocessPool's
 * batches are, is shared instead); its features come back without a copy.
 */
export async function openBackboneInThread(spec: BackboneSpec): Promise<Backbone> {
  const client = new WorkerClient<BackboneThreadRequest, BackboneThreadReply>(
    new Worker(path.join(__dirname, 'backbone-thread-worker.js')),
    'backbone',
  );
  let info: BackboneInfo;
  try {
    info = (await client.request({ kind: 'open', spec })) as BackboneInfo;
  } catch (error) {
    client.close(error as Error);
    throw error;
  }
  const extract = (images: Float32Array | Uint8Array, n: number): Promise<Float32Array> => {
    // A view is cloned with its whole buffer: send only its own values. Shared memory is not copied.
    const whole =
      images.buffer instanceof SharedArrayBuffer ||
      (images.byteOffset === 0 && images.byteLength === images.buffer.byteLength);
    return client.request({
      kind: 'extract',
      images: whole ? images : images.slice(),
      n,
    }) as Promise<Float32Array>;
  };
  const { takesPixels, ...described } = info;
  return {
    ...described,
    extract,
    ...(takesPixels ? { extractPixels: extract } : {}),
    dispose() {
      client.close(new Error('backbone thread disposed'));
    },
  };
}
