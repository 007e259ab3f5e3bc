import { parentPort } from 'node:worker_threads';
import type { ArtifactStore } from '../store/artifact-store';
import { openStore } from '../store/open-store';
import { toErrorMessage } from '../util/errors';
import type { StageRequest, StageThreadMessage } from './stage-runner';
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

/** Stores opened by earlier stages of this thread, by URL (an S3 client keeps its connections). */
const stores = new Map<string, ArtifactStore>();

function storeAt(url: string): ArtifactStore {
  let store = stores.get(url);
  if (!store) {
    store = openStore(url);
    stores.set(url, store);
  }
  return store;
}

const post = (message: StageThreadMessage) => parentPort!.postMessage(message);

/** Runs one stage request of the pool (see stage-runner.ts); the thread then waits for the next. */
async function runStage({ name, args, location }: StageRequest): Promise<void> {
  const context: StageContext = {
    store: storeAt(location.storeUrl),
    storeUrl: location.storeUrl,
    dataDir: location.dataDir,
    ...(location.backend ? { backend: location.backend } : {}),
    progress: (stage, done, total, detail) =>
      post({ type: 'progress', stage, done, total, ...(detail ? { detail } : {}) }),
  };
  try {
    const run = STAGES[name] as (context: StageContext, ...rest: unknown[]) => Promise<unknown>;
    post({ type: 'result', value: await run(context, ...args) });
  } catch (error) {
    post({ type: 'error', ...toErrorMessage(error) });
  }
}

parentPort!.on('message', (request: StageRequest) => void runStage(request));
