import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Configuration, loadSweepFile } from '../../core/config/experiment';
import type { HeadKind } from '../../core/method/head';
import {
  type DatasetRef,
  type ExplainStageResult,
  explainStage,
  extractSplit,
  type FeaturesRef,
  prepareDataset,
  type StageContext,
  type TrainedHeadRef,
  trainHeadStage,
} from '../../core/pipeline/stages';
import { LocalArtifactStore } from '../../core/store/local-store';
import { repoRoot } from '../../infra/paths';

/**
 * experiments/tiny.json cut down to a store trained in seconds: 3 classes of 6 training and 2 test images,
 * full-batch steps, one InfoDisent step, stability on 3 noised test images. Written as `<dir>/micro.json`.
 */
export async function writeMicroSweep(dir: string): Promise<{ file: string; configuration: Configuration }> {
  const sweep = JSON.parse(await readFile(path.join(repoRoot(), 'experiments', 'tiny.json'), 'utf8'));
  const configuration = sweep.configurations[0];
  sweep.name = 'micro';
  configuration.name = 'parts-micro';
  Object.assign(configuration.dataset.generator, { classes: 3, trainPerClass: 6, testPerClass: 2 });
  Object.assign(configuration.heads.baseline, { epochs: 10, batchSize: 18 });
  Object.assign(configuration.heads.infodisent, { epochs: 1, batchSize: 18, checkpointEvery: 0 });
  configuration.explain = { stabilityImages: 3 };
  const file = path.join(dir, 'micro.json');
  await writeFile(file, JSON.stringify(sweep, null, 2));
  return { file, configuration: (await loadSweepFile(file)).configurations[0]! };
}

export interface TrainedStore {
  context: StageContext;
  dataset: DatasetRef;
  train: FeaturesRef;
  test: FeaturesRef;
  heads: Record<HeadKind, TrainedHeadRef>;
  explained: ExplainStageResult;
}

/**
 * A configuration run through the pipeline's stages in this process (what the activities run in their
 * threads, without Temporal), laid out as `infodisent run --home <home>` leaves it: the store in
 * `<home>/store`, generated datasets in `<home>/datasets`.
 */
export async function trainStore(home: string, configuration: Configuration): Promise<TrainedStore> {
  const context: StageContext = {
    store: new LocalArtifactStore(path.join(home, 'store')),
    dataDir: path.join(home, 'datasets'),
  };
  const dataset = await prepareDataset(context, configuration);
  const train = await extractSplit(context, configuration, dataset, 'train');
  const test = await extractSplit(context, configuration, dataset, 'test');
  const heads = {
    baseline: await trainHeadStage(context, configuration, 'baseline', train),
    infodisent: await trainHeadStage(context, configuration, 'infodisent', train),
  };
  const explained = await explainStage(context, configuration, dataset, train, test, [
    heads.baseline,
    heads.infodisent,
  ]);
  return { context, dataset, train, test, heads, explained };
}
