import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type ErrorMessage, fromErrorMessage } from '../util/errors';
import type { Backbone } from './backbone';
import type { BackboneSpec } from './registry';

/** What the thread says of its backbone once open: everything but the methods. */
export type BackboneInfo = Omit<Backbone, 'extract' | 'dispose'>;

export type BackboneThreadReply =
  | { kind: 'ready'; info: BackboneInfo }
  | { kind: 'failed'; error: ErrorMessage }
  | { kind: 'features'; id: number; buffer: ArrayBuffer; byteOffset: number; length: number }
  | { kind: 'error'; id: number; error: ErrorMessage };

export interface BackboneThreadRequest {
  id: number;
  images: Float32Array;
  n: number;
}

interface Pending {
  resolve: (features: Float32Array) => void;
  reject: (error: Error) => void;
}

/**
 * The backbone of `spec`, opened and run in a thread of its own. onnxruntime's run() blocks the thread
 * that calls it until the batch is done, on a GPU too; from here the caller's thread stays free, so what
 * it does with one batch's features (checks, copies, hashing and writing shards) overlaps the next batch
 * on the device. Each batch's images are copied to the thread; its features come back without a copy.
 */
export function openBackboneInThread(spec: BackboneSpec): Promise<Backbone> {
  const worker = new Worker(path.join(__dirname, 'backbone-thread-worker.js'), { workerData: { spec } });
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let failure: Error | undefined;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const request of pending.values()) request.reject(error);
    pending.clear();
  };
  return new Promise<Backbone>((resolve, reject) => {
    worker.on('error', (error) => {
      const wrapped = new Error(`backbone thread failed: ${error.message}`);
      reject(wrapped);
      failAll(wrapped);
    });
    worker.on('exit', (code) => {
      const error = new Error(`backbone thread exited with code ${code}`);
      reject(error);
      failAll(error);
    });
    worker.on('message', (reply: BackboneThreadReply) => {
      if (reply.kind === 'failed') {
        reject(fromErrorMessage(reply.error));
        void worker.terminate();
      } else if (reply.kind === 'ready') {
        // The thread keeps the process alive only while a batch is in flight.
        worker.unref();
        resolve({
          ...reply.info,
          extract(images: Float32Array, n: number): Promise<Float32Array> {
            if (failure) return Promise.reject(failure);
            const id = nextId++;
            // A view is cloned with its whole buffer: send only its own values.
            const whole = images.byteOffset === 0 && images.byteLength === images.buffer.byteLength;
            const message: BackboneThreadRequest = { id, images: whole ? images : images.slice(), n };
            return new Promise<Float32Array>((resolveBatch, rejectBatch) => {
              pending.set(id, { resolve: resolveBatch, reject: rejectBatch });
              worker.ref();
              worker.postMessage(message);
            });
          },
          dispose() {
            failAll(new Error('backbone thread disposed'));
            void worker.terminate();
          },
        });
      } else {
        const request = pending.get(reply.id);
        if (!request) return;
        pending.delete(reply.id);
        if (pending.size === 0) worker.unref();
        if (reply.kind === 'features')
          request.resolve(new Float32Array(reply.buffer, reply.byteOffset, reply.length));
        else request.reject(fromErrorMessage(reply.error));
      }
    });
  });
}
