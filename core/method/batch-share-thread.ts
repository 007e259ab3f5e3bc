import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FeatureShape } from '../features/feature-set';
import { type ErrorMessage, fromErrorMessage } from '../util/errors';

export type BatchShareRequest =
  | { kind: 'forward'; rotation: Float32Array; maps: Float32Array; shape: FeatureShape; atBase: boolean }
  | { kind: 'gradient'; gradPooled: Float32Array };

export type BatchShareReply =
  | { kind: 'pooled'; pooled: Float32Array }
  | { kind: 'sums'; sums: Float64Array }
  | { kind: 'error'; error: ErrorMessage };

/**
 * A thread with its own wasm backend that computes one share of a batch's images (batch-share.ts) while
 * this thread computes the other: its forward pass, then, given dL/dp, its dL/dE sum. One per thread that
 * trains, started on first use, holding no process open while idle; requests are answered in order.
 */
export class BatchShareThread {
  private static instance: BatchShareThread | undefined;
  private readonly waiting: { resolve: (reply: BatchShareReply) => void; reject: (error: Error) => void }[] =
    [];

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (reply: BatchShareReply) => {
      const request = this.waiting.shift()!;
      if (this.waiting.length === 0) worker.unref();
      if (reply.kind === 'error') request.reject(fromErrorMessage(reply.error));
      else request.resolve(reply);
    });
    const fail = (error: Error) => {
      BatchShareThread.instance = undefined;
      for (const request of this.waiting.splice(0)) request.reject(error);
    };
    worker.on('error', (error) => fail(new Error(`batch share thread failed: ${error.message}`)));
    worker.on('exit', (code) => fail(new Error(`batch share thread exited with code ${code}`)));
  }

  /** Whether a second core is there to use. */
  static available(): boolean {
    return os.availableParallelism() > 1;
  }

  static shared(): BatchShareThread {
    BatchShareThread.instance ??= new BatchShareThread(
      new Worker(path.join(__dirname, 'batch-share-worker.js')),
    );
    return BatchShareThread.instance;
  }

  private send(request: BatchShareRequest, transfer: ArrayBuffer[] = []): Promise<BatchShareReply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.ref();
      this.worker.postMessage(request, transfer);
    });
  }

  /** p [C, n] of the share `maps`, rotated by `rotation` [C, C] (both copied to the thread). */
  async forward(
    rotation: Float32Array,
    maps: Float32Array,
    shape: FeatureShape,
    atBase: boolean,
  ): Promise<Float32Array> {
    const reply = await this.send({ kind: 'forward', rotation, maps, shape, atBase });
    return (reply as Extract<BatchShareReply, { kind: 'pooled' }>).pooled;
  }

  /** The share's row sum [C, C] in float64 (shareGradient), given its dL/dp [C, n]. */
  async gradient(gradPooled: Float32Array): Promise<Float64Array> {
    const reply = await this.send({ kind: 'gradient', gradPooled }, [gradPooled.buffer as ArrayBuffer]);
    return (reply as Extract<BatchShareReply, { kind: 'sums' }>).sums;
  }
}
