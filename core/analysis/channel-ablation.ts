import type { BatchSource, FeatureBatch, LabelledFeatureBatch } from './rv-coefficient';

/** A linear head over pooled features; weights are K x C, row-major. */
export interface LinearHead {
  /** 'infodisent': sparse pooling of the rotated maps Z and W+ >= 0; 'baseline': average pooling of F. */
  readonly kind: 'infodisent' | 'baseline';
  readonly weights: Float32Array | Float64Array;
  readonly classes: number;
}

export interface Histogram {
  /** Bin i counts values in [edges[i], edges[i + 1]); edges span 0..C, so heads of one backbone compare bin by bin. */
  readonly edges: number[];
  readonly counts: number[];
}

export interface CountDistribution {
  /** One value per image, in the order the images were added. */
  readonly values: Int32Array;
  readonly mean: number;
  /** Mean of the two middle values for an even count, like numpy.median. */
  readonly median: number;
  readonly histogram: Histogram;
}

export interface AblationResult {
  readonly fraction: number;
  readonly channels: number;
  readonly images: number;
  /**
   * Smallest m whose m largest positive contributions sum to at least `fraction` of all positive
   * contribution; m = 0 for an image without any positive contribution (counted in `imagesWithoutPositive`).
   */
  readonly channelsNeeded: CountDistribution;
  /** Channel usage per decision: channels with a positive contribution, per image. */
  readonly channelsUsed: CountDistribution;
  readonly imagesWithoutPositive: number;
}

const DEFAULT_FRACTION = 0.95;
const MAX_BINS = 64;

/**
 * m for one image, and the number of positive contributions. The total is summed in the same
 * descending order as the running sum, so the running sum ends exactly at the total and `fraction`
 * = 1 gives the count of positive channels. `positive` is working space of length >= C.
 */
export function channelsToReach(
  contributions: ArrayLike<number>,
  fraction = DEFAULT_FRACTION,
  positive: Float64Array = new Float64Array(contributions.length),
): { needed: number; positive: number } {
  let count = 0;
  for (let c = 0; c < contributions.length; c++) {
    const v = contributions[c]!;
    if (v > 0) positive[count++] = v;
  }
  const sorted = positive.subarray(0, count).sort().reverse();
  let total = 0;
  for (const v of sorted) total += v;
  // With no positive contribution the target is 0 and m = 0.
  const target = fraction * total;
  let running = 0;
  let needed = 0;
  while (running < target) running += sorted[needed++]!;
  return { needed, positive: count };
}

/**
 * Integer-aligned histogram edges over 0..channels: one bin per value while C < 64, otherwise a
 * 1-2-5 x 10^k bin width giving at most 64 bins.
 */
export function histogramEdges(channels: number): number[] {
  const minimumWidth = (channels + 1) / MAX_BINS;
  let width: number | undefined;
  for (let scale = 1; width === undefined; scale *= 10) {
    width = [1, 2, 5].map((f) => f * scale).find((w) => w >= minimumWidth);
  }
  const bins = Math.ceil((channels + 1) / width);
  return Array.from({ length: bins + 1 }, (_, i) => i * width);
}

function distribution(values: Int32Array, edges: number[]): CountDistribution {
  const sorted = Int32Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  const middle = n >> 1;
  const median = n === 0 ? NaN : n % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const width = edges[1]!;
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (const v of sorted) counts[Math.floor(v / width)]!++;
  return { values, mean: n === 0 ? NaN : sum / n, median, histogram: { edges, counts } };
}

/** Growable int32 list: per-image results are 4 bytes each, the only state that grows with N. */
class IntList {
  private data = new Int32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(2 * this.data.length);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }

  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/** Tally of the 95%-channel ablation over per-image contribution vectors a_kc (k = ground truth). */
export class ChannelAblation {
  private readonly needed = new IntList();
  private readonly used = new IntList();
  private withoutPositive = 0;
  private readonly scratch: Float64Array;

  constructor(
    readonly channels: number,
    readonly fraction = DEFAULT_FRACTION,
  ) {
    if (!(fraction > 0 && fraction <= 1)) throw new Error(`fraction must be in (0, 1], got ${fraction}`);
    this.scratch = new Float64Array(channels);
  }

  add(contributions: ArrayLike<number>): void {
    if (contributions.length !== this.channels) {
      throw new Error(`expected ${this.channels} contributions, got ${contributions.length}`);
    }
    const { needed, positive } = channelsToReach(contributions, this.fraction, this.scratch);
    this.needed.push(needed);
    this.used.push(positive);
    if (positive === 0) this.withoutPositive++;
  }

  result(): AblationResult {
    const edges = histogramEdges(this.channels);
    return {
      fraction: this.fraction,
      channels: this.channels,
      images: this.needed.length,
      channelsNeeded: distribution(this.needed.toArray(), edges),
      channelsUsed: distribution(this.used.toArray(), edges),
      imagesWithoutPositive: this.withoutPositive,
    };
  }
}

/**
 * Pooled features, n x C: 'sparse' is InfoDisent's p_c = max(0, max_ij Z_ijc) - max(0, max_ij -Z_ijc),
 * 'average' the baseline's mean over pixels.
 */
export function poolBatch(batch: FeatureBatch, pooling: 'sparse' | 'average'): Float64Array {
  const [n, height, width, channels] = batch.shape;
  const { data } = batch;
  const pixels = height * width;
  const pooled = new Float64Array(n * channels);
  // Channel-outer: the running max/min or sum stays in a register; the image's rows stay in cache.
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const first = i * pixels * channels + c;
      const last = first + pixels * channels;
      let value = 0;
      if (pooling === 'average') {
        for (let at = first; at < last; at += channels) value += data[at]!;
        value /= pixels;
      } else {
        let low = 0;
        for (let at = first; at < last; at += channels) {
          const v = data[at]!;
          if (v > value) value = v;
          else if (v < low) low = v;
        }
        value += low;
      }
      pooled[i * channels + c] = value;
    }
  }
  return pooled;
}

/** a_kc = W_kc p_c for class `label`; writes into `out` (length C). */
export function classContributions(
  head: LinearHead,
  pooled: ArrayLike<number>,
  label: number,
  out: Float64Array = new Float64Array(pooled.length),
): Float64Array {
  const channels = pooled.length;
  if (!(Number.isInteger(label) && label >= 0 && label < head.classes)) {
    throw new Error(`label ${label} outside 0..${head.classes - 1}`);
  }
  const row = label * channels;
  for (let c = 0; c < channels; c++) out[c] = head.weights[row + c]! * pooled[c]!;
  return out;
}

/** The ablation of one head over labelled feature batches: pooling by head kind, then a_kc. */
export class HeadAblation {
  private readonly tally: ChannelAblation;
  private readonly contributions: Float64Array;

  constructor(
    readonly head: LinearHead,
    readonly channels: number,
    fraction = DEFAULT_FRACTION,
  ) {
    if (head.weights.length !== head.classes * channels) {
      throw new Error(`weights hold ${head.weights.length} values, expected ${head.classes} x ${channels}`);
    }
    if (head.kind === 'infodisent' && head.weights.some((w) => w < 0)) {
      throw new Error('InfoDisent weights W+ must be non-negative');
    }
    this.tally = new ChannelAblation(channels, fraction);
    this.contributions = new Float64Array(channels);
  }

  addBatch(batch: LabelledFeatureBatch): void {
    const [n, , , channels] = batch.shape;
    if (channels !== this.channels) throw new Error(`batch has ${channels} channels, head ${this.channels}`);
    if (batch.labels.length !== n) throw new Error(`${batch.labels.length} labels for ${n} images`);
    const pooled = poolBatch(batch, this.head.kind === 'infodisent' ? 'sparse' : 'average');
    for (let i = 0; i < n; i++) {
      const p = pooled.subarray(i * channels, (i + 1) * channels);
      this.tally.add(classContributions(this.head, p, batch.labels[i]!, this.contributions));
    }
  }

  result(): AblationResult {
    return this.tally.result();
  }
}

/** Streams labelled batches through HeadAblation; C is taken from the head's weights. */
export async function headChannelAblation(
  source: BatchSource<LabelledFeatureBatch>,
  head: LinearHead,
  fraction = DEFAULT_FRACTION,
): Promise<AblationResult> {
  const ablation = new HeadAblation(head, head.weights.length / head.classes, fraction);
  for await (const batch of source) ablation.addBatch(batch);
  return ablation.result();
}
