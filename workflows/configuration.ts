import type { Duration, RetryPolicy } from '@temporalio/common';
import { proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Configuration } from '../core/config/experiment';
import type { HeadKind } from '../core/method/head';
import type { ConfigurationOutcome, HeadOutcome } from '../core/pipeline/results';
import type { TrainedHeadRef } from '../core/pipeline/stages';
import {
  type ConfigurationProgress,
  configurationProgressQuery,
  type StageState,
  type TaskQueues,
} from './progress';

/** How a failed stage is retried: after 5 s, 10 s, 20 s, 40 s; bad input (InputError) is not retried. */
export const STAGE_RETRY = {
  initialInterval: '5s',
  backoffCoefficient: 2,
  maximumInterval: '5m',
  maximumAttempts: 5,
  nonRetryableErrorTypes: ['InputError'],
} satisfies RetryPolicy;

function activitiesOn(taskQueue: string, heartbeatTimeout: Duration) {
  return proxyActivities<Activities>({
    taskQueue,
    startToCloseTimeout: '24h',
    // A lost worker is noticed after this long; activities heartbeat every few seconds while they run.
    heartbeatTimeout,
    retry: STAGE_RETRY,
  });
}

const HEADS: HeadKind[] = ['baseline', 'infodisent'];

export interface ConfigurationInput {
  configuration: Configuration;
  queues: TaskQueues;
  /** Default '2m'. */
  heartbeatTimeout?: Duration;
}

/** One dataset x backbone configuration: dataset, features, both heads, their evaluation. */
export async function configurationWorkflow({
  configuration,
  queues,
  heartbeatTimeout = '2m',
}: ConfigurationInput): Promise<ConfigurationOutcome> {
  const gpu = activitiesOn(queues.gpu, heartbeatTimeout);
  const cpu = activitiesOn(queues.cpu, heartbeatTimeout);
  const stages: StageState[] = [
    'dataset',
    'extract train',
    'extract test',
    ...HEADS.flatMap((kind) => [`train ${kind}`, `evaluate ${kind}`]),
    'explain',
  ].map((name) => ({ name, status: 'pending' }));
  setHandler(
    configurationProgressQuery,
    (): ConfigurationProgress => ({ configuration: configuration.name, stages }),
  );

  async function stage<T>(
    name: string,
    work: () => Promise<T>,
    summarise: (result: T) => string,
  ): Promise<T> {
    const state = stages.find((s) => s.name === name)!;
    state.status = 'running';
    try {
      const result = await work();
      state.status = 'done';
      state.summary = summarise(result);
      return result;
    } catch (error) {
      state.status = 'failed';
      throw error;
    }
  }

  const dataset = await stage(
    'dataset',
    () => cpu.prepareDataset(configuration),
    (d) => `${d.classes.length} classes, ${d.counts.train}/${d.counts.test} images`,
  );
  const cached = (reused: boolean, shards: number) =>
    reused ? 'cached' : shards > 0 ? `resumed (${shards} shards)` : 'extracted';
  const train = await stage(
    'extract train',
    () => gpu.extractFeatures(configuration, dataset, 'train'),
    (f) => cached(f.reused, f.reusedShards),
  );
  const test = await stage(
    'extract test',
    () => gpu.extractFeatures(configuration, dataset, 'test'),
    (f) => cached(f.reused, f.reusedShards),
  );
  const heads: HeadOutcome[] = [];
  const trainedHeads: TrainedHeadRef[] = [];
  for (const kind of HEADS) {
    const trained = await stage(
      `train ${kind}`,
      () => gpu.trainHead(configuration, kind, train),
      (t) => (t.reused ? 'cached' : `${t.result.steps} steps on ${t.backend}`),
    );
    const evaluation = await stage(
      `evaluate ${kind}`,
      () => gpu.evaluateHead(configuration, trained, test),
      (e) => `top-1 ${(100 * e.top1).toFixed(1)}%`,
    );
    trainedHeads.push(trained);
    heads.push({
      kind,
      backend: trained.backend,
      headKey: trained.key,
      reusedHead: trained.reused,
      training: trained.result,
      ...(trained.compute ? { compute: trained.compute } : {}),
      evaluation,
    });
  }
  // An explain result recorded in a history from before it carried faithfulness has none.
  const {
    summaryKey,
    faithfulness = {},
    compute: explainCompute,
  } = await stage(
    'explain',
    () => cpu.explain(configuration, dataset, train, test, trainedHeads),
    () => 'prototypes, explanations and faithfulness',
  );
  for (const head of heads) {
    const figures = faithfulness[head.kind];
    if (figures) head.faithfulness = figures;
  }
  return {
    configuration: configuration.name,
    summaryKey,
    dataset: {
      name: dataset.name,
      classes: dataset.classes.length,
      train: dataset.counts.train,
      test: dataset.counts.test,
      // The files its loader left out, then the images its extraction could not decode (the first of each).
      skipped: [...dataset.skipped, ...(train.skipped ?? []), ...(test.skipped ?? [])],
      skippedCount: [dataset, train, test].reduce(
        (sum, ref) => sum + (ref.skippedCount ?? ref.skipped?.length ?? 0),
        0,
      ),
    },
    backbone: configuration.backbone.name,
    features: {
      train: train.key,
      test: test.key,
      reused: train.reused && test.reused,
      compute: {
        ...(train.compute ? { train: train.compute } : {}),
        ...(test.compute ? { test: test.compute } : {}),
      },
    },
    heads,
    seed: configuration.seed,
    ...(explainCompute ? { explainCompute } : {}),
    ...(configuration.reported ? { reported: configuration.reported } : {}),
    ...(configuration.repeatOf ? { repeatOf: configuration.repeatOf } : {}),
  };
}
