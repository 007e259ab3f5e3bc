import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/open-store';
import { InputError } from '../util/errors';
import type { StageThreadInput, StageThreadMessage } from './stage-runner';
import {
  evaluateStage,
  explainStage,
  extractSplit,
  prepareDataset,
  reportStage,
  type StageContext,
  trainHeadStage,
} from './stages';

const STAGES = { prepareDataset, extractSplit, trainHeadStage, evaluateStage, explainStage, reportStage };

/** Entry point of a stage's worker thread (see stage-runner.ts). */
async function main(): Promise<void> {
  const { name, args, location } = workerData as StageThreadInput;
  const post = (message: StageThreadMessage) => parentPort!.postMessage(message);
  const context: StageContext = {
    store: openStore(location.storeUrl),
    dataDir: location.dataDir,
    ...(location.backend ? { backend: location.backend } : {}),
    progress: (stage, done, total, detail) =>
      post({ type: 'progress', stage, done, total, ...(detail ? { detail } : {}) }),
  };
  try {
    const run = STAGES[name] as (context: StageContext, ...rest: unknown[]) => Promise<unknown>;
    post({ type: 'result', value: await run(context, ...args) });
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    post({
      type: 'error',
      name: failure instanceof InputError ? 'InputError' : failure.name,
      message: failure.message,
      ...(failure.stack ? { stack: failure.stack } : {}),
    });
  }
}

void main();
