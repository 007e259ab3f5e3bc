import type { HeadKind } from '../../core/method/head';
import type { ConfigurationOutcome } from '../../core/pipeline/results';
import type { ComputeRecord, ComputeRuntime } from '../../core/util/compute-record';

export function computeRecordOf(runtime: ComputeRuntime, seconds: number, items: number): ComputeRecord {
  return { ...runtime, seconds, items, host: 'gpu-1', finishedAt: '2026-11-27T12:00:00.000Z' };
}

/**
 * A configuration's outcome with what the compute report and the plan's estimates read: the splits' sizes,
 * the feature keys with their records, and the heads' steps and records (accuracies are placeholders).
 */
export function outcomeWithCompute(
  configuration: string,
  options: {
    backbone?: string;
    images?: { train: number; test: number };
    features: { key: string; train?: ComputeRecord; test?: ComputeRecord };
    heads: { kind: HeadKind; key: string; steps: number; compute?: ComputeRecord }[];
    explain?: ComputeRecord;
  },
): ConfigurationOutcome {
  const { features, images = { train: 6000, test: 5800 } } = options;
  return {
    configuration,
    summaryKey: `summaries/${configuration}.json`,
    dataset: { name: 'cub', classes: 200, ...images, skipped: [] },
    backbone: options.backbone ?? 'resnet50',
    features: {
      train: `${features.key}-train`,
      test: `${features.key}-test`,
      reused: false,
      compute: {
        ...(features.train ? { train: features.train } : {}),
        ...(features.test ? { test: features.test } : {}),
      },
    },
    heads: options.heads.map((head) => ({
      kind: head.kind,
      backend: 'webgpu',
      headKey: head.key,
      reusedHead: false,
      training: {
        steps: head.steps,
        epochsRun: 1,
        stoppedEarly: false,
        resumedFromStep: null,
        history: [],
        bestEpoch: null,
      },
      ...(head.compute ? { compute: head.compute } : {}),
      evaluation: { count: images.test, top1: 0.8, top5: 0.9, detailsKey: `${head.key}/evaluation.json` },
    })),
    ...(options.explain ? { explainCompute: options.explain } : {}),
  };
}
