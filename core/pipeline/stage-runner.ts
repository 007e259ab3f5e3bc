import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../tf/backend';
import { type ErrorMessage, fromErrorMessage } from '../util/errors';
import type * as stages from './stages';

/** The stages that may run in a thread of their own, by name. */
export type StageName =
  | 'prepareDataset'
  | 'extractSplit'
  | 'trainHeadStage'
  | 'evaluateStage'
  | 'explainStage'
  | 'reportStage';
type StageFunction<N extends StageName> = (typeof stages)[N];
export type StageArgs<N extends StageName> =
  StageFunction<N> extends (context: never, ...args: infer A) => unknown ? A : never;
export type StageResult<N extends StageName> = Awaited<ReturnType<StageFunction<N>>>;

export interface StageLocation {
  /** Artifact store URL: a local path, file:// or s3://bucket/prefix. */
  storeUrl: string;
  dataDir: string;
  /** The worker's tfjs backend, for configurations that leave it on 'auto'. */
  backend?: BackendChoice;
}

export interface StageProgressMessage {
  type: 'progress';
  stage: string;
  done: number;
  total: number;
  detail?: string;
}

export type StageThreadMessage =
  | StageProgressMessage
  | { type: 'result'; value: unknown }
  | ({ type: 'error' } & ErrorMessage);

export interface StageRequest {
  name: StageName;
  args: unknown[];
  location: StageLocation;
}

export interface StageThreadPoolOptions {
  /** Idle threads kept for the next stage (each holds a loaded tfjs backend and backbones). */
  maxIdle?: number;
  /** An idle thread is ended after this long, giving its memory back. */
  idleMs?: number;
}

interface PooledThread {
  thread: Worker;
  idleTimer?: NodeJS.Timeout;
}

/**
 * Runs stages in worker threads. Tensor work and onnxruntime block their thread for seconds at a
 * time; in threads of their own they leave the Temporal worker's event loop free for heartbeats,
 * queries and cancellation. Threads outlive their stage so that the next stage finds tfjs, its wasm or
 * GPU backend and the backbone already loaded; a thread whose stage failed or was cancelled is ended,
 * never reused, so no half-done tensor state leaks into another stage.
 */
export class StageThreadPool {
  private readonly idle: PooledThread[] = [];
  private readonly maxIdle: number;
  private readonly idleMs: number;

  constructor(options: StageThreadPoolOptions = {}) {
    this.maxIdle = options.maxIdle ?? 2;
    this.idleMs = options.idleMs ?? 120_000;
  }

  run<N extends StageName>(
    name: N,
    args: StageArgs<N>,
    location: StageLocation,
    onProgress: (message: StageProgressMessage) => void,
    signal?: AbortSignal,
  ): Promise<StageResult<N>> {
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error(`stage ${name} was cancelled`));
    const pooled = this.take();
    const { thread } = pooled;
    thread.ref();
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (outcome: () => void, reusable: boolean) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', abort);
        thread.off('message', onMessage);
        thread.off('error', onError);
        thread.off('exit', onExit);
        if (reusable) this.release(pooled);
        else void thread.terminate();
        outcome();
      };
      const abort = () =>
        finish(() => reject(signal?.reason ?? new Error(`stage ${name} was cancelled`)), false);
      const onMessage = (message: StageThreadMessage) => {
        if (message.type === 'progress') onProgress(message);
        else if (message.type === 'result') finish(() => resolve(message.value as StageResult<N>), true);
        else finish(() => reject(fromErrorMessage(message)), false);
      };
      const onError = (error: Error) => finish(() => reject(error), false);
      const onExit = (code: number) =>
        finish(() => reject(new Error(`stage ${name} thread exited with code ${code}`)), false);
      signal?.addEventListener('abort', abort, { once: true });
      thread.on('message', onMessage);
      thread.on('error', onError);
      thread.on('exit', onExit);
      const request: StageRequest = { name, args, location };
      thread.postMessage(request);
    });
  }

  /** Ends every idle thread (running stages finish or are cancelled by their own signals). */
  async close(): Promise<void> {
    const threads = this.idle.splice(0);
    await Promise.all(
      threads.map(({ thread, idleTimer }) => {
        clearTimeout(idleTimer);
        return thread.terminate();
      }),
    );
  }

  private take(): PooledThread {
    const pooled = this.idle.pop();
    if (pooled) {
      clearTimeout(pooled.idleTimer);
      return pooled;
    }
    return { thread: new Worker(path.join(__dirname, 'stage-thread.js')) };
  }

  private release(pooled: PooledThread): void {
    if (this.idle.length >= this.maxIdle) {
      void pooled.thread.terminate();
      return;
    }
    // An idle thread must not keep the process alive, and gives its memory back after a while.
    pooled.thread.unref();
    pooled.idleTimer = setTimeout(() => {
      const index = this.idle.indexOf(pooled);
      if (index >= 0) this.idle.splice(index, 1);
      void pooled.thread.terminate();
    }, this.idleMs);
    pooled.idleTimer.unref();
    this.idle.push(pooled);
  }
}
