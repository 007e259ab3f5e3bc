import { classRow } from './maps';
import type { ExplainModel } from './models';
import type { ChannelPrototypes, PrototypeCell } from './prototypes';

type LinearScores = Pick<ExplainModel, 'weights' | 'bias' | 'classes'>;

export interface ChannelContribution<P extends PrototypeCell = PrototypeCell> {
  channel: number;
  /** a_kc = W_kc p_c for the explained class. */
  contribution: number;
  weight: number;
  pooled: number;
  /** The channel's prototypes, when a prototype table was given. */
  prototypes: P[];
}

export interface PredictionExplanation<P extends PrototypeCell = PrototypeCell> {
  /** The class explained: the predicted one (highest logit, first on ties). */
  predicted: number;
  logits: number[];
  /** b_k of the predicted class: logit = sum_c a_kc + bias. */
  bias: number;
  /** Sum of the positive and of the negative a_kc over all channels. */
  positiveTotal: number;
  negativeTotal: number;
  /** The channels with the largest positive a_kc, descending (fewer when fewer are positive). */
  channels: ChannelContribution<P>[];
}

/** Indices of the `top` largest positive values, descending (lower index first on ties). */
export function topPositive(values: ArrayLike<number>, top: number): number[] {
  const order: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i]! > 0) order.push(i);
  order.sort((a, b) => values[b]! - values[a]! || a - b);
  return order.slice(0, top);
}

/**
 * Explanation of one prediction (SPEC section 1): the `top` channels with the largest positive
 * contribution to the predicted class, each with its prototypes from `prototypes` (indexed by channel,
 * as findPrototypes/locatePrototypes return them). `pooled` is the image's p [C].
 */
export function explainPrediction<P extends PrototypeCell = PrototypeCell>(
  model: LinearScores,
  pooled: ArrayLike<number>,
  options: { top?: number; prototypes?: readonly ChannelPrototypes<P>[] } = {},
): PredictionExplanation<P> {
  const c = model.weights.length / model.classes;
  if (pooled.length !== c) throw new Error(`pooled vector has ${pooled.length} values, model ${c} channels`);
  const logits = Array.from({ length: model.classes }, (_, k) => {
    const w = classRow(model, k);
    let sum = model.bias[k]!;
    for (let ch = 0; ch < c; ch++) sum += w[ch]! * pooled[ch]!;
    return sum;
  });
  const predicted = logits.reduce((best, v, k) => (v > logits[best]! ? k : best), 0);
  const w = classRow(model, predicted);
  const a = Float64Array.from(w, (weight, ch) => weight * pooled[ch]!);
  let positiveTotal = 0;
  let negativeTotal = 0;
  for (const v of a) {
    if (v > 0) positiveTotal += v;
    else negativeTotal += v;
  }
  return {
    predicted,
    logits,
    bias: model.bias[predicted]!,
    positiveTotal,
    negativeTotal,
    channels: topPositive(a, options.top ?? 5).map((channel) => ({
      channel,
      contribution: a[channel]!,
      weight: w[channel]!,
      pooled: pooled[channel]!,
      prototypes: options.prototypes?.[channel]?.prototypes ?? [],
    })),
  };
}

export interface ClassKeyChannels {
  label: number;
  /** Test images of the class seen. */
  images: number;
  /** By descending mean positive contribution. */
  channels: { channel: number; meanContribution: number }[];
}

/**
 * Key channels of each class (SPEC section 1): the channels with the largest mean positive contribution
 * max(0, a_kc) over the test images of class k. Streams pooled batches; holds K x C sums.
 */
export class KeyChannelTally {
  private readonly sums: Float64Array;
  private readonly counts: Int32Array;
  readonly channels: number;

  constructor(private readonly model: LinearScores) {
    this.channels = model.weights.length / model.classes;
    this.sums = new Float64Array(model.weights.length);
    this.counts = new Int32Array(model.classes);
  }

  /** pooled [n, C] with the ground-truth label of each image. */
  add(pooled: Float32Array, labels: ArrayLike<number>): void {
    const c = this.channels;
    if (pooled.length !== labels.length * c)
      throw new Error(`${pooled.length} pooled values for ${labels.length} images`);
    for (let i = 0; i < labels.length; i++) {
      const k = labels[i]!;
      const w = classRow(this.model, k);
      this.counts[k]!++;
      for (let ch = 0; ch < c; ch++) {
        const v = w[ch]! * pooled[i * c + ch]!;
        if (v > 0) this.sums[k * c + ch]! += v;
      }
    }
  }

  /** Mean positive contribution of every channel to class k, [C] (zeros for a class without images). */
  means(k: number): Float64Array {
    const c = this.channels;
    const n = this.counts[k]!;
    return Float64Array.from(this.sums.subarray(k * c, (k + 1) * c), (s) => (n > 0 ? s / n : 0));
  }

  result(top = 5): ClassKeyChannels[] {
    return Array.from({ length: this.model.classes }, (_, label) => {
      const means = this.means(label);
      return {
        label,
        images: this.counts[label]!,
        channels: topPositive(means, top).map((channel) => ({ channel, meanContribution: means[channel]! })),
      };
    });
  }
}
