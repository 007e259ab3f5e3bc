import type { Split } from '../data/dataset';
import { FEATURE_DTYPE_BYTES, type FeatureDtype, type FeatureShape, itemSize } from '../features/feature-set';
import { type FeatureManifest, isShardFile, skippedImages } from '../features/feature-store';
import { type ArtifactStore, getJson } from '../store/artifact-store';
import {
  type ConfigurationOutcome,
  outcomeKeys,
  type SweepResults,
  storedSweeps,
  sweepRuns,
} from './results';

/** A feature set in the store: whole once its manifest is written, else an extraction under way or cut off. */
export interface StoredFeatures {
  key: string;
  backbone: string;
  /** Shards stored so far. */
  shards: number;
  /** From the manifest; absent while the set is incomplete. */
  complete?: {
    dataset: string;
    split: Split;
    images: number;
    /** Images its extraction left out as unreadable (skipInvalid). */
    skipped: number;
    shape: FeatureShape;
    dtype: FeatureDtype;
    /** The features' size: images x H x W x C values of the dtype. */
    bytes: number;
  };
  /** The stored sweeps whose results read it. */
  usedBy: string[];
}

/** A head in the store: finished once its weights are written, else a training checkpoint. */
export interface StoredHead {
  key: string;
  kind: string;
  finished: boolean;
  usedBy: string[];
}

/** A configuration's explanation summary (prototypes, explanations, analyses), which its report is made of. */
export interface StoredSummary {
  key: string;
  /** One head's part of a summary whose explain stage was cut off (it continues from it). */
  part: boolean;
  usedBy: string[];
}

export interface StoreInventory {
  location: string;
  /** `runs`: the runs whose results are kept (re-evaluations included; see sweepRuns). */
  sweeps: { sweep: string; finishedAt: string; completed: number; failed: number; runs: number }[];
  features: StoredFeatures[];
  heads: StoredHead[];
  summaries: StoredSummary[];
}

/** Keys under `prefix` grouped by their first `depth` segments, e.g. features/<backbone>/<hash>. */
async function groups(store: ArtifactStore, prefix: string, depth: number): Promise<Map<string, string[]>> {
  const grouped = new Map<string, string[]>();
  for (const key of await store.list(prefix)) {
    const parts = key.split('/');
    if (parts.length <= depth) continue;
    const group = parts.slice(0, depth).join('/');
    // A feature set can hold thousands of shards: appended in place, not copied.
    const files = grouped.get(group) ?? [];
    files.push(parts.slice(depth).join('/'));
    grouped.set(group, files);
  }
  return grouped;
}

/**
 * Each configuration of a sweep as it last completed, in any of the sweep's stored runs: a run in which it
 * failed, or that `--only` left it out of, replaces results.json without it, yet the next run reuses what it
 * last completed with, so that stays in use.
 */
async function lastCompleted(store: ArtifactStore, latest: SweepResults): Promise<ConfigurationOutcome[]> {
  const last = new Map<string, ConfigurationOutcome>();
  for (const run of await sweepRuns(store, latest.sweep)) {
    for (const outcome of run.completed) last.set(outcome.configuration, outcome);
  }
  return [...last.values()];
}

/**
 * What the store holds of the pipeline's work: the finished sweeps, the feature sets, the trained heads and
 * the explanation summaries, each with the stored sweeps that use it. Reads only keys and manifests.
 */
export async function storeInventory(store: ArtifactStore): Promise<StoreInventory> {
  const sweeps = await storedSweeps(store);
  const usedBy = new Map<string, string[]>();
  for (const results of sweeps) {
    const keys = (await lastCompleted(store, results)).flatMap(outcomeKeys);
    for (const key of new Set(keys)) usedBy.set(key, [...(usedBy.get(key) ?? []), results.sweep]);
  }
  const features = await Promise.all(
    [...(await groups(store, 'features/', 3))].map(async ([key, files]): Promise<StoredFeatures> => {
      const manifest = files.includes('manifest.json')
        ? await getJson<FeatureManifest>(store, `${key}/manifest.json`)
        : undefined;
      return {
        key,
        backbone: key.split('/')[1]!,
        shards: files.filter(isShardFile).length,
        ...(manifest
          ? {
              complete: {
                dataset: manifest.dataset,
                split: manifest.split,
                images: manifest.count,
                skipped: skippedImages(manifest).length,
                shape: manifest.shape,
                dtype: manifest.dtype,
                bytes: manifest.count * itemSize(manifest.shape) * FEATURE_DTYPE_BYTES[manifest.dtype],
              },
            }
          : {}),
        usedBy: usedBy.get(key) ?? [],
      };
    }),
  );
  const heads = [...(await groups(store, 'heads/', 3))].map(
    ([key, files]): StoredHead => ({
      key,
      kind: key.split('/')[1]!,
      finished: files.includes('head.bin'),
      usedBy: usedBy.get(key) ?? [],
    }),
  );
  const runsKept = (await store.list('results/')).filter((key) => key.includes('/runs/'));
  const summaries = (await store.list('summaries/')).map(
    (key): StoredSummary => ({ key, part: key.endsWith('.part.json'), usedBy: usedBy.get(key) ?? [] }),
  );
  return {
    location: store.location,
    sweeps: sweeps.map((s) => ({
      sweep: s.sweep,
      finishedAt: s.finishedAt,
      completed: s.completed.length,
      failed: s.failed.length,
      runs: Math.max(1, runsKept.filter((key) => key.startsWith(`results/${s.sweep}/runs/`)).length),
    })),
    features,
    heads,
    summaries,
  };
}
