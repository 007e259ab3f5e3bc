import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Configuration } from '../core/config/experiment';
import type { Split } from '../core/data/dataset';
import type { HeadKind } from '../core/method/head';
import { type SweepResults, writeSweepResults } from '../core/pipeline/results';
import * as stages from '../core/pipeline/stages';
import type { ArtifactStore } from '../core/store/artifact-store';
import { InputError } from '../core/util/errors';

export interface ActivityDependencies {
  store: ArtifactStore;
  dataDir: string;
}

/** Heartbeat payload: what the CLI's progress bars show for a running activity. */
export interface StageProgress {
  stage: string;
  done: number;
  total: number;
  detail?: string;
}

/** Bad input fails without retries; anything else is retried by the workflow's policy. */
async function run<T>(
  work: (context: stages.StageContext) => Promise<T>,
  dependencies: ActivityDependencies,
): Promise<T> {
  const context: stages.StageContext = {
    ...dependencies,
    progress: (stage, done, total, detail) => {
      const details: StageProgress = { stage, done, total, ...(detail ? { detail } : {}) };
      Context.current().heartbeat(details);
    },
  };
  try {
    return await work(context);
  } catch (error) {
    if (error instanceof InputError) throw ApplicationFailure.nonRetryable(error.message, 'InputError');
    throw error;
  }
}

/** Thin adapters from Temporal to the pipeline's stages; every stage is idempotent and content-addressed. */
export function createActivities(dependencies: ActivityDependencies) {
  return {
    prepareDataset: (configuration: Configuration) =>
      run((context) => stages.prepareDataset(context, configuration), dependencies),
    extractFeatures: (configuration: Configuration, dataset: stages.DatasetRef, split: Split) =>
      run((context) => stages.extractSplit(context, configuration, dataset, split), dependencies),
    trainHead: (configuration: Configuration, kind: HeadKind, features: stages.FeaturesRef) =>
      run((context) => stages.trainHeadStage(context, configuration, kind, features), dependencies),
    evaluateHead: (configuration: Configuration, trained: stages.TrainedHeadRef, test: stages.FeaturesRef) =>
      run((context) => stages.evaluateStage(context, configuration, trained, test), dependencies),
    writeResults: (results: SweepResults) =>
      run(() => writeSweepResults(dependencies.store, results), dependencies),
  };
}

export type Activities = ReturnType<typeof createActivities>;
