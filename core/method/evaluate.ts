import * as tf from '@tensorflow/tfjs';
import { type FeatureSet, iterateBatches } from '../features/feature-set';
import { checkSetFitsHead, FeatureInputError } from '../features/feature-validation';
import type { Head } from './head';

export interface Evaluation {
  count: number;
  top1: number;
  top5: number;
  /** Accuracy of each class (NaN for a class without test items). */
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  /**
   * Each evaluated item's label and top-1 class, in the set's order: what pairs two heads' results image by
   * image (McNemar's test). Absent from evaluations stored before they were kept.
   */
  labels?: number[];
  predictions?: number[];
}

/** Top-1/top-5 accuracy, per-class accuracy and confusion counts, streaming over the set's shards. */
export async function evaluateHead(
  head: Head,
  set: FeatureSet,
  options: { batchSize?: number; include?: (index: number) => boolean } = {},
): Promise<Evaluation> {
  checkSetFitsHead(set, head);
  const include = options.include;
  const selected = include ? set.labels.filter((_, i) => include(i)).length : set.labels.length;
  if (selected === 0)
    throw new FeatureInputError(
      set.name,
      {},
      'evaluated items',
      0,
      `of ${set.labels.length} means an empty split`,
    );
  const k = set.classCount;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const labels: number[] = [];
  const predictions: number[] = [];
  let top5Hits = 0;
  for await (const batch of iterateBatches(set, options.batchSize ?? 64, include ? { include } : {})) {
    const logits = await head.logits(batch.maps);
    const topK = Math.min(5, k);
    const { values, indices } = tf.topk(logits, topK);
    const ranked = await indices.data();
    tf.dispose([logits, values, indices]);
    batch.labels.forEach((label, i) => {
      const row = ranked.subarray(i * topK, (i + 1) * topK);
      confusion[label]![row[0]!]! += 1;
      if (row.includes(label)) top5Hits += 1;
      labels.push(label);
      predictions.push(row[0]!);
    });
  }
  const correct = confusion.reduce((sum, row, i) => sum + row[i]!, 0);
  const count = labels.length;
  return {
    count,
    top1: correct / count,
    top5: top5Hits / count,
    perClass: confusion.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total === 0 ? Number.NaN : row[i]! / total;
    }),
    confusion,
    labels,
    predictions,
  };
}
