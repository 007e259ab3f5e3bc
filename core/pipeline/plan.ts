import path from 'node:path';
import type { Backbone } from '../backbones/backbone';
import { openBackbone } from '../backbones/registry';
import type { BaselineHeadConfig, Configuration, InfoDisentHeadConfig } from '../config/experiment';
import type { Split } from '../data/dataset';
import { FEATURE_DTYPE_BYTES, type FeatureShape, itemSize } from '../features/feature-set';
import { featureCacheKey, isShardFile } from '../features/feature-store';
import type { HeadKind } from '../method/head';
import { BACKENDS, type BackendName } from '../tf/backend';
import { type Estimate, estimate, measuredRates, type RateKey } from './estimate';
import { storedSweeps } from './results';
import { featureSettings, prepareDatasetManifest, type StageContext, trainedHeadKey } from './stages';

/** A split's features: in the store whole, partly (an extraction cut off: it resumes), or not at all. */
export interface SplitPlan {
  key: string;
  images: number;
  /** The feature set's size once whole. */
  bytes: number;
  state: 'cached' | 'partial' | 'extract';
  /** Shards stored so far, for a partial set. */
  shards?: number;
  /** Extracting the whole set at the backbone's rate measured before, where the store's results have one. */
  estimate?: Estimate;
}

/** A head: trained already, checkpointed part-way (training resumes), or still to train. */
export interface HeadPlan {
  kind: HeadKind;
  state: 'trained' | 'checkpoint' | 'train';
  /** The backend it was trained on, where it is in the store. */
  backend?: BackendName;
  /** Training steps to take, for a head not trained yet: at most, as early stopping may end sooner. */
  steps?: number;
  /** Those steps at the rate measured before for its kind on this backbone, where the store's results have one. */
  estimate?: Estimate;
}

/** What a sweep run would do for one configuration, and what it would reuse. */
export interface ConfigurationPlan {
  configuration: string;
  dataset: { name: string; classes: number; train: number; test: number; skipped: number };
  backbone: { name: string; map: FeatureShape };
  features: Record<Split, SplitPlan>;
  heads: HeadPlan[];
}

export interface SweepPlan {
  planned: ConfigurationPlan[];
  /** Configurations whose dataset or backbone cannot be read, with the reason (naming the file). */
  failed: { configuration: string; error: string }[];
  /** Work left for which no earlier run in the store measured a rate, so it has no estimate. */
  unmeasured: RateKey[];
}

type BackboneIdentity = Pick<Backbone, 'name' | 'fingerprint' | 'preprocessing' | 'preset' | 'featureShape'>;

const HEADS: HeadKind[] = ['baseline', 'infodisent'];

/** The steps of a head's whole training on `items` training images, its validation share held out (validationMask). */
function trainingSteps(settings: BaselineHeadConfig | InfoDisentHeadConfig, items: number): number {
  const held = Math.round(items * settings.validationFraction);
  return settings.epochs * Math.ceil((items - held) / settings.batchSize);
}

async function splitPlan(
  context: StageContext,
  key: string,
  images: number,
  bytesPerImage: number,
): Promise<SplitPlan> {
  const plan = { key, images, bytes: images * bytesPerImage };
  if (await context.store.exists(`${key}/manifest.json`)) return { ...plan, state: 'cached' };
  const shards = (await context.store.list(`${key}/`)).filter((file) =>
    isShardFile(path.basename(file)),
  ).length;
  return shards > 0 ? { ...plan, state: 'partial', shards } : { ...plan, state: 'extract' };
}

/** A head of the configuration trained on these features: on its backend, or on any where it says 'auto'. */
async function headPlan(
  context: StageContext,
  configuration: Configuration,
  kind: HeadKind,
  featuresKey: string,
): Promise<HeadPlan> {
  const backends = configuration.backend === 'auto' ? BACKENDS : [configuration.backend];
  let checkpoint: HeadPlan | undefined;
  for (const backend of backends) {
    const key = trainedHeadKey(configuration, kind, featuresKey, backend);
    if (await context.store.exists(`${key}/head.bin`)) return { kind, state: 'trained', backend };
    if (!checkpoint && (await context.store.exists(`${key}/checkpoint.bin`)))
      checkpoint = { kind, state: 'checkpoint', backend };
  }
  return checkpoint ?? { kind, state: 'train' };
}

/**
 * Reads each configuration's dataset (generating a parts dataset, as a run would first) and backbone, and
 * looks up in the store which features and heads a run would reuse and which it would compute. A
 * configuration whose dataset or backbone cannot be read is reported, and the others are still planned.
 */
export async function planSweep(
  context: StageContext,
  configurations: readonly Configuration[],
  onProgress?: (configuration: string, done: number, total: number) => void,
): Promise<SweepPlan> {
  const plan: SweepPlan = { planned: [], failed: [], unmeasured: [] };
  const rates = measuredRates(await storedSweeps(context.store));
  const estimateOf = (key: RateKey, items: number) => {
    const time = estimate(rates, key, items);
    if (!time && !plan.unmeasured.includes(key)) plan.unmeasured.push(key);
    return time;
  };
  // Configurations that share a dataset or a backbone read it once: a dataset's file tree is listed and
  // checked, a backbone opened (on the CPU: only its identity and map are needed) and closed.
  const datasets = new Map<string, ReturnType<typeof prepareDatasetManifest>>();
  const backbones = new Map<string, Promise<BackboneIdentity>>();
  const once = <T>(cache: Map<string, T>, spec: unknown, read: () => T): T => {
    const id = JSON.stringify(spec);
    if (!cache.has(id)) cache.set(id, read());
    return cache.get(id)!;
  };
  const identify = (configuration: Configuration) => {
    const spec = { ...configuration.backbone, provider: 'cpu' as const };
    return once(backbones, spec, () =>
      openBackbone(spec).then((backbone) => {
        const { name, fingerprint, preprocessing, preset, featureShape } = backbone;
        backbone.dispose();
        return { name, fingerprint, preprocessing, preset, featureShape };
      }),
    );
  };
  for (const [index, configuration] of configurations.entries()) {
    onProgress?.(configuration.name, index, configurations.length);
    try {
      const { dataset, manifest } = await once(datasets, configuration.dataset, () =>
        prepareDatasetManifest(context, configuration),
      );
      const backbone = await identify(configuration);
      const { dtype } = configuration.features;
      const bytesPerImage = itemSize(backbone.featureShape) * FEATURE_DTYPE_BYTES[dtype];
      const split = (name: Split) =>
        splitPlan(
          context,
          featureCacheKey(manifest, name, backbone, featureSettings(configuration)),
          dataset.counts[name],
          bytesPerImage,
        );
      const withEstimate = (split: SplitPlan): SplitPlan => {
        const time =
          split.state === 'cached'
            ? undefined
            : estimateOf(`extract ${configuration.backbone.name}`, split.images);
        return time ? { ...split, estimate: time } : split;
      };
      const features = { train: withEstimate(await split('train')), test: withEstimate(await split('test')) };
      const heads = await Promise.all(
        HEADS.map(async (kind): Promise<HeadPlan> => {
          const head = await headPlan(context, configuration, kind, features.train.key);
          if (head.state === 'trained') return head;
          const steps = trainingSteps(configuration.heads[kind], dataset.counts.train);
          const time = estimateOf(`train ${kind} on ${configuration.backbone.name}`, steps);
          return { ...head, steps, ...(time ? { estimate: time } : {}) };
        }),
      );
      plan.planned.push({
        configuration: configuration.name,
        dataset: {
          name: dataset.name,
          classes: dataset.classes.length,
          ...dataset.counts,
          skipped: dataset.skippedCount ?? dataset.skipped.length,
        },
        backbone: { name: backbone.name, map: backbone.featureShape },
        features,
        heads,
      });
    } catch (error) {
      plan.failed.push({ configuration: configuration.name, error: (error as Error).message });
    }
  }
  onProgress?.('', configurations.length, configurations.length);
  return plan;
}
