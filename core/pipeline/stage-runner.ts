import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../tf/backend';
import { InputError } from '../util/errors';
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
  | { type: 'error'; name: string; message: string; stack?: string };

export interface StageThreadInput {
  name: StageName;
  args: unknown[];
  location: StageLocation;
}

/**
 * Runs a stage in a worker thread. Tensor work and onnxruntime block their thread for seconds at a
 * time; in a thread of their own they leave the Temporal worker's event loop free for heartbeats,
 * queries and cancellation. Aborting the signal terminates the thread.
 */
export function runStageInThread<N extends StageName>(
  name: N,
  args: StageArgs<N>,
  location: StageLocation,
  onProgress: (message: StageProgressMessage) => void,
  signal?: AbortSignal,
): Promise<StageResult<N>> {
  return new Promise((resolve, reject) => {
    const input: StageThreadInput = { name, args, location };
    const thread = new Worker(path.join(__dirname, 'stage-thread.js'), { workerData: input });
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', abort);
      outcome();
    };
    const abort = () => {
      void thread.terminate();
      finish(() => reject(signal?.reason ?? new Error(`stage ${name} was cancelled`)));
    };
    signal?.addEventListener('abort', abort, { once: true });
    thread.on('message', (message: StageThreadMessage) => {
      if (message.type === 'progress') onProgress(message);
      else if (message.type === 'result') finish(() => resolve(message.value as StageResult<N>));
      else {
        const error =
          message.name === 'InputError' ? new InputError(message.message) : new Error(message.message);
        if (message.stack) error.stack = message.stack;
        finish(() => reject(error));
      }
    });
    thread.on('error', (error) => finish(() => reject(error)));
    thread.on('exit', (code) =>
      finish(() => reject(new Error(`stage ${name} thread exited with code ${code}`))),
    );
  });
}
