import type { FeatureManifest } from '../../core/features/feature-store';
import type { ConfigurationOutcome, HeadOutcome } from '../../core/pipeline/results';
import { type ArtifactStore, putJson } from '../../core/store/artifact-store';

const SHAPE = { height: 2, width: 2, channels: 8 };

/** A feature set as extraction leaves it: its shards, then (once whole) its manifest. */
export async function writeFeatureSet(store: ArtifactStore, key: string, images: number, whole: boolean) {
  const shards = Math.ceil(images / 2);
  for (let index = 0; index < shards; index++)
    await store.put(`${key}/shard-${String(index).padStart(5, '0')}.f32`, new Uint8Array(2 * 32 * 4));
  if (!whole) return;
  const manifest: FeatureManifest = {
    version: 1,
    key,
    dataset: 'parts',
    split: 'train',
    backbone: 'bb',
    backboneFingerprint: 'f',
    shape: SHAPE,
    classCount: 2,
    count: images,
    labels: Array.from({ length: images }, (_, i) => i % 2),
    items: Array.from({ length: images }, (_, i) => `img-${i}.png`),
    shards: [],
    dtype: 'float32',
  };
  await putJson(store, `${key}/manifest.json`, manifest);
}

/** The artifacts of the prune fixture, by what a prune should do with them. */
export const PRUNE_FIXTURE = {
  /** Read by the stored sweep 'kept'. */
  used: [
    'features/bb/used-train',
    'features/bb/used-test',
    'heads/baseline/used',
    'heads/infodisent/used',
    'summaries/kept-a.json',
  ],
  /** Complete, and no stored sweep reads them. */
  unused: ['features/bb/old', 'heads/infodisent/old', 'summaries/old-b.json'],
  /** A cut-off extraction, a head with only its training checkpoint, one head's part of a cut-off explain stage. */
  incomplete: ['features/bb/cut', 'heads/infodisent/cut', 'summaries/cut-c.baseline.part.json'],
  /** The features' sizes: 8 and 6 images of 2x2x8 float32 values. */
  bytes: {
    'features/bb/used-train': 8 * 32 * 4,
    'features/bb/used-test': 4 * 32 * 4,
    'features/bb/old': 6 * 32 * 4,
  },
};

/**
 * A store holding one finished sweep ('kept') and what other runs left: a complete feature set, a trained
 * head and a summary that no stored sweep reads, a cut-off extraction and a head in training.
 */
export async function writePruneFixture(store: ArtifactStore): Promise<void> {
  await writeFeatureSet(store, 'features/bb/used-train', 8, true);
  await writeFeatureSet(store, 'features/bb/used-test', 4, true);
  await writeFeatureSet(store, 'features/bb/old', 6, true);
  await writeFeatureSet(store, 'features/bb/cut', 6, false);
  for (const head of ['heads/baseline/used', 'heads/infodisent/used', 'heads/infodisent/old']) {
    await store.put(`${head}/head.bin`, new Uint8Array(16));
    await putJson(store, `${head}/evaluation-x.json`, { top1: 0.5 });
  }
  await store.put('heads/infodisent/cut/checkpoint.bin', new Uint8Array(16));
  await putJson(store, 'summaries/kept-a.json', { configuration: 'a' });
  await putJson(store, 'summaries/old-b.json', { configuration: 'b' });
  await putJson(store, 'summaries/cut-c.baseline.part.json', { summary: {}, seconds: 1 });
  // Of a configuration's outcome, only what names the artifacts it read: all a prune looks at.
  const outcome: Pick<ConfigurationOutcome, 'configuration' | 'summaryKey' | 'features'> & {
    heads: Pick<HeadOutcome, 'kind' | 'headKey'>[];
  } = {
    configuration: 'a',
    summaryKey: 'summaries/kept-a.json',
    features: { train: 'features/bb/used-train', test: 'features/bb/used-test', reused: false },
    heads: (['baseline', 'infodisent'] as const).map((kind) => ({ kind, headKey: `heads/${kind}/used` })),
  };
  await putJson(store, 'results/kept/results.json', {
    sweep: 'kept',
    finishedAt: '2026-11-27T00:00:00.000Z',
    completed: [outcome],
    failed: [],
  });
}
