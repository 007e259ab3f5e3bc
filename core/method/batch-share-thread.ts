import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FeatureShape } from '../features/feature-set';
import { WorkerClient } from '../util/worker-client';

export type BatchShareRequest =
  | { kind: 'forward'; rotation: Float32Array; maps: Float32Array; shape: FeatureShape; atBase: boolean }
  | { kind: 'gradient'; gradPooled: Float32Array };

/** p [C, n] for a forward request, the row sums [C, C] for a gradient request. */
export type BatchShareReply = Float32Array | Float64Array;

/**
 * A thread with its own wasm backend that computes one share of a batch's images (batch-share.ts) while
 * this thread computes the other: its forward pass, then, given dL/dp, its gradient row sum. One per
 * thread that trains, started on first use, holding no process open while idle.
 */
export class BatchShareThread {
  private static instance: BatchShareThread | undefined;

  private constructor(private readonly client: WorkerClient<BatchShareRequest, BatchShareReply>) {}

  /** Whether a second core is there to use. */
  static available(): boolean {
    return os.availableParallelism() > 1;
  }

  /** The thread of this one, started again if it failed (a thread that died is not reused). */
  static shared(): BatchShareThread {
    if (!BatchShareThread.instance || BatchShareThread.instance.client.closed)
      BatchShareThread.instance = new BatchShareThread(
        new WorkerClient(new Worker(path.join(__dirname, 'batch-share-worker.js')), 'batch share'),
      );
    return BatchShareThread.instance;
  }

  /** p [C, n] of the share `maps`, rotated by `rotation` [C, C] (both copied to the thread). */
  async forward(
    rotation: Float32Array,
    maps: Float32Array,
    shape: FeatureShape,
    atBase: boolean,
  ): Promise<Float32Array> {
    return (await this.client.request({ kind: 'forward', rotation, maps, shape, atBase })) as Float32Array;
  }

  /** The share's row sum [C, C] in float64 (shareGradient), given its dL/dp [C, n]. */
  async gradient(gradPooled: Float32Array): Promise<Float64Array> {
    return (await this.client.request({ kind: 'gradient', gradPooled }, [
      gradPooled.buffer as ArrayBuffer,
    ])) as Float64Array;
  }
}
