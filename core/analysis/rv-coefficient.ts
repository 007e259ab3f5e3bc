import type { FeatureSet } from '../features/feature-set';
import { SeededRandom } from '../util/random';

/** A batch of feature maps of shape [n, H, W, C], HWC per image with channels innermost. */
export interface FeatureBatch {
  readonly data: Float32Array;
  readonly shape: readonly [n: number, height: number, width: number, channels: number];
}

export interface LabelledFeatureBatch extends FeatureBatch {
  /** Ground-truth class per image. */
  readonly labels: ArrayLike<number>;
}

/** Batches pulled one at a time, so only one batch need be in memory. */
export type BatchSource<T> = Iterable<T> | AsyncIterable<T>;

/** A stored feature set as labelled batches in storage order, one shard in memory at a time. */
export async function* featureSetBatches(set: FeatureSet): AsyncGenerator<LabelledFeatureBatch> {
  const { height, width, channels } = set.shape;
  let start = 0;
  for (const [index, size] of set.shardSizes.entries()) {
    const data = await set.readShard(index);
    yield { data, shape: [size, height, width, channels], labels: set.labels.subarray(start, start + size) };
    start += size;
  }
}

export interface MapShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export interface RvOptions {
  /** Refuse to start when the accumulators would exceed this many bytes (default 1 GiB). */
  maxBytes?: number;
  /** Images centred and multiplied together at once; bounds the working buffer (default 64). */
  chunkImages?: number;
}

export interface RvSampledOptions extends RvOptions {
  /** Number of distinct channel pairs drawn uniformly without replacement (default 1000). */
  pairs?: number;
  seed?: number;
}

export interface RvAutoOptions extends RvSampledOptions {
  /**
   * All pairs are evaluated exactly when (C(C-1)/2 + C) * (H*W)^2 is at most this (default 2^24):
   * that number of doubles is the accumulator state, and about the multiply-adds per image. With 7x7 maps
   * that means C <= 117, with 14x14 C <= 29; every backbone of the paper is sampled.
   */
  maxExactElements?: number;
}

export interface RvResult {
  /** 'exact' when every channel pair was evaluated; the confidence interval then has zero width. */
  readonly mode: 'exact' | 'sampled';
  readonly images: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** C(C-1)/2. */
  readonly pairsTotal: number;
  readonly pairsEvaluated: number;
  /** Evaluated pairs whose RV is defined: neither channel is constant over the images. */
  readonly pairsDefined: number;
  /** Channels with identical maps in every image (e.g. dead ReLU channels): RV is 0/0 for their pairs. */
  readonly constantChannels: number;
  /** Mean RV over the defined pairs (NaN when there are none). */
  readonly mean: number;
  /** Sample standard deviation of RV over the defined pairs. */
  readonly sd: number;
  /**
   * 95% confidence interval of the mean over all defined pairs of the population: normal
   * approximation, mean +- 1.96 sd / sqrt(k), with the finite-population correction
   * sqrt((M - k) / (M - 1)) for k pairs drawn without replacement from M defined pairs.
   */
  readonly ci95: readonly [number, number];
  /** Mean and interval multiplied by 100: the scale printed in the paper's Table 8. */
  readonly table8x100: { readonly mean: number; readonly ci95: readonly [number, number] };
  /** Evaluated pairs as [c0, d0, c1, d1, ...] with c < d. */
  readonly pairs: Uint32Array;
  /** RV per evaluated pair, NaN where undefined. */
  readonly values: Float64Array;
}

const DEFAULT_MAX_BYTES = 2 ** 30;
const DEFAULT_CHUNK = 64;
const DEFAULT_PAIRS = 1000;
const DEFAULT_MAX_EXACT_ELEMENTS = 2 ** 24;
const Z95 = 1.959963984540054;

export function pairCount(channels: number): number {
  return (channels * (channels - 1)) / 2;
}

/** Every pair c < d, ordered by c then d. */
export function allChannelPairs(channels: number): Uint32Array {
  const pairs = new Uint32Array(2 * pairCount(channels));
  let k = 0;
  for (let c = 0; c < channels; c++) {
    for (let d = c + 1; d < channels; d++) {
      pairs[k++] = c;
      pairs[k++] = d;
    }
  }
  return pairs;
}

/**
 * SeededRandom starts xoroshiro128plus from (-1, ~seed, seed, 0): for small seeds its first draw is
 * ~1 and the next ones agree across neighbouring seeds. Hashing the seed (murmur3's finaliser
 * of seed + golden ratio) makes nearby seeds give unrelated samples.
 */
function scrambleSeed(seed: number): number {
  let h = (seed + 0x9e3779b9) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * `count` distinct pairs c < d drawn uniformly without replacement (Floyd's algorithm over the
 * pair indices), ordered by c then d; all pairs when count >= C(C-1)/2.
 */
export function sampleChannelPairs(channels: number, count: number, seed: number): Uint32Array {
  if (!(Number.isInteger(count) && count > 0)) {
    throw new Error(`pair count must be a positive integer, got ${count}`);
  }
  const total = pairCount(channels);
  if (count >= total) return allChannelPairs(channels);
  const random = new SeededRandom(scrambleSeed(seed));
  const chosen = new Set<number>();
  for (let j = total - count; j < total; j++) {
    const t = random.int(0, j);
    chosen.add(chosen.has(t) ? j : t);
  }
  const indices = Float64Array.from(chosen).sort();
  const pairs = new Uint32Array(2 * count);
  // Pair index of (c, d) in row-major upper-triangle order: c (2C - c - 1) / 2 + d - c - 1.
  const rowStart = (c: number) => (c * (2 * channels - c - 1)) / 2;
  let c = 0;
  indices.forEach((index, k) => {
    while (rowStart(c + 1) <= index) c++;
    pairs[2 * k] = c;
    pairs[2 * k + 1] = index - rowStart(c) + c + 1;
  });
  return pairs;
}

/** Pixel block of the cross-product kernel: 3x3 blocks keep nine sums in registers per pass. */
const BLOCK = 3;

/**
 * Streaming RV coefficients for a fixed set of distinct channel pairs.
 *
 * For each pair (c, d) and each channel in some pair it keeps the centred HW x HW cross-product
 * S_cd = X_c^T X_d in float64, so memory is (pairs + channels used) (HW)^2 doubles whatever the
 * number of images. Each chunk of images is centred on its own mean and merged into the running
 * sums by the pairwise update S += S_chunk + (N_a n_b / N) (mu_b - mu_a)(mu_b - mu_a)^T, which avoids
 * the cancellation of sum(x x^T) - N mu mu^T on features with a large mean.
 * RV(c, d) = tr(S_cd S_cd^T) / sqrt(tr(S_cc^2) tr(S_dd^2)) = |S_cd|_F^2 / (|S_cc|_F |S_dd|_F).
 */
export class RvAccumulator {
  readonly pixels: number;
  /** Pixels rounded up to a multiple of BLOCK: the kernel needs no tail, and padded rows stay zero. */
  private readonly padded: number;
  private readonly chunk: number;
  /** Channels that appear in some pair, ascending; all per-channel state is indexed by slot in it. */
  private readonly used: Uint32Array;
  /** Pairs as slots into `used`. */
  private readonly slotPairs: Uint32Array;
  private readonly crossProducts: Float64Array;
  private readonly selfProducts: Float64Array;
  private readonly mean: Float64Array;
  /** Per chunk: chunk mean minus running mean, the merge term of the pairwise update. */
  private readonly meanShift: Float64Array;
  /** Chunk features centred, laid out [slot][pixel][image] so the kernel's inner loop is contiguous. */
  private readonly centred: Float64Array;
  /** Every channel's maps in the first image, and the channels no later image has differed from yet. */
  private readonly firstImage: Float32Array;
  private undecided: Uint32Array;
  private count = 0;

  constructor(
    readonly shape: MapShape,
    readonly pairs: Uint32Array,
    options: RvOptions = {},
  ) {
    const { height, width, channels } = shape;
    if (!(height > 0 && width > 0 && channels > 1)) throw new Error('RV needs H, W >= 1 and C >= 2');
    const slotOf = new Int32Array(channels).fill(-1);
    for (const channel of pairs) {
      if (channel >= channels) throw new Error(`pair channel ${channel} out of range for C=${channels}`);
      slotOf[channel] = 0;
    }
    this.used = Uint32Array.from(slotOf.keys()).filter((c) => slotOf[c] === 0);
    this.used.forEach((c, slot) => {
      slotOf[c] = slot;
    });
    this.slotPairs = pairs.map((c) => slotOf[c]!);
    this.pixels = height * width;
    this.padded = paddedPixels(shape);
    this.chunk = options.chunkImages ?? DEFAULT_CHUNK;
    const bytes = RvAccumulator.bytesNeeded(shape, pairs.length / 2, this.chunk);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (bytes > maxBytes) {
      throw new Error(
        `RV accumulators for ${pairs.length / 2} pairs of C=${channels} ${height}x${width} maps need ` +
          `${(bytes / 2 ** 20).toFixed(0)} MiB > limit ${(maxBytes / 2 ** 20).toFixed(0)} MiB: sample fewer pairs`,
      );
    }
    const square = this.padded * this.padded;
    const slots = this.used.length;
    this.crossProducts = new Float64Array((pairs.length / 2) * square);
    this.selfProducts = new Float64Array(slots * square);
    this.mean = new Float64Array(slots * this.padded);
    this.meanShift = new Float64Array(slots * this.padded);
    this.centred = new Float64Array(slots * this.padded * this.chunk);
    this.firstImage = new Float32Array(channels * this.pixels);
    this.undecided = Uint32Array.from(slotOf.keys());
  }

  /** Upper bound on the bytes of state for `pairs` pairs (every channel counted as used). */
  static bytesNeeded(shape: MapShape, pairs: number, chunkImages = DEFAULT_CHUNK): number {
    const padded = paddedPixels(shape);
    const perChannel = 8 * padded * (padded + 2 + chunkImages) + 5 * shape.height * shape.width;
    return 8 * pairs * padded * padded + shape.channels * perChannel;
  }

  get images(): number {
    return this.count;
  }

  add(batch: FeatureBatch): void {
    const [n, height, width, channels] = batch.shape;
    if (height !== this.shape.height || width !== this.shape.width || channels !== this.shape.channels) {
      throw new Error(
        `batch maps ${height}x${width}x${channels} differ from ${this.shape.height}x${this.shape.width}x${this.shape.channels}`,
      );
    }
    if (batch.data.length !== n * height * width * channels) {
      throw new Error('batch data does not match its shape');
    }
    for (let start = 0; start < n; start += this.chunk) {
      this.addChunk(batch.data, start, Math.min(this.chunk, n - start));
    }
  }

  private addChunk(data: Float32Array, start: number, n: number): void {
    const { pixels, padded, chunk, centred, meanShift, mean, used, firstImage } = this;
    const channels = this.shape.channels;
    const slotStride = padded * chunk;
    if (this.count === 0) {
      firstImage.set(data.subarray(start * pixels * channels, (start + 1) * pixels * channels));
    }
    // Once a channel is seen to vary it is dropped, so real features cost a few images' worth of checks.
    let undecided = 0;
    for (const c of this.undecided) {
      let varies = false;
      for (let i = 0; i < n && !varies; i++) {
        const image = (start + i) * pixels * channels;
        for (let a = 0; a < pixels && !varies; a++) {
          varies = data[image + a * channels + c] !== firstImage[a * channels + c];
        }
      }
      if (!varies) this.undecided[undecided++] = c;
    }
    this.undecided = this.undecided.subarray(0, undecided);
    const total = this.count + n;
    const mergeWeight = (this.count * n) / total;
    // Pixel-outer order: a pixel's rows of all images stay in cache while every channel is copied out.
    for (let a = 0; a < pixels; a++) {
      for (let slot = 0; slot < used.length; slot++) {
        const c = used[slot]!;
        const row = slot * slotStride + a * chunk;
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const v = data[((start + i) * pixels + a) * channels + c]!;
          centred[row + i] = v;
          sum += v;
        }
        const m = sum / n;
        for (let i = 0; i < n; i++) centred[row + i]! -= m;
        meanShift[slot * padded + a] = m - mean[slot * padded + a]!;
      }
    }
    const square = padded * padded;
    for (let slot = 0; slot < used.length; slot++) {
      this.accumulate(this.selfProducts, slot * square, slot, slot, n, mergeWeight, true);
    }
    const { slotPairs } = this;
    for (let k = 0; k < slotPairs.length / 2; k++) {
      this.accumulate(
        this.crossProducts,
        k * square,
        slotPairs[2 * k]!,
        slotPairs[2 * k + 1]!,
        n,
        mergeWeight,
        false,
      );
    }
    for (let at = 0; at < mean.length; at++) mean[at]! += (meanShift[at]! * n) / total;
    this.count = total;
  }

  /**
   * out += X_c^T X_d over the chunk plus the merge term, in BLOCK x BLOCK pixel blocks (nine
   * independent sums per pass over the images). `upper` fills only the blocks on or above the
   * diagonal: S_cc is symmetric.
   */
  private accumulate(
    out: Float64Array,
    offset: number,
    c: number,
    d: number,
    n: number,
    mergeWeight: number,
    upper: boolean,
  ): void {
    const { padded, chunk, centred: x, meanShift: shift } = this;
    const xc = c * padded * chunk;
    const xd = d * padded * chunk;
    for (let a = 0; a < padded; a += BLOCK) {
      const u0 = xc + a * chunk;
      const u1 = u0 + chunk;
      const u2 = u1 + chunk;
      const ca0 = mergeWeight * shift[c * padded + a]!;
      const ca1 = mergeWeight * shift[c * padded + a + 1]!;
      const ca2 = mergeWeight * shift[c * padded + a + 2]!;
      for (let b = upper ? a : 0; b < padded; b += BLOCK) {
        const v0 = xd + b * chunk;
        const v1 = v0 + chunk;
        const v2 = v1 + chunk;
        let s00 = 0;
        let s01 = 0;
        let s02 = 0;
        let s10 = 0;
        let s11 = 0;
        let s12 = 0;
        let s20 = 0;
        let s21 = 0;
        let s22 = 0;
        for (let i = 0; i < n; i++) {
          const q0 = x[v0 + i]!;
          const q1 = x[v1 + i]!;
          const q2 = x[v2 + i]!;
          let p = x[u0 + i]!;
          s00 += p * q0;
          s01 += p * q1;
          s02 += p * q2;
          p = x[u1 + i]!;
          s10 += p * q0;
          s11 += p * q1;
          s12 += p * q2;
          p = x[u2 + i]!;
          s20 += p * q0;
          s21 += p * q1;
          s22 += p * q2;
        }
        const db0 = shift[d * padded + b]!;
        const db1 = shift[d * padded + b + 1]!;
        const db2 = shift[d * padded + b + 2]!;
        const o0 = offset + a * padded + b;
        const o1 = o0 + padded;
        const o2 = o1 + padded;
        out[o0]! += s00 + ca0 * db0;
        out[o0 + 1]! += s01 + ca0 * db1;
        out[o0 + 2]! += s02 + ca0 * db2;
        out[o1]! += s10 + ca1 * db0;
        out[o1 + 1]! += s11 + ca1 * db1;
        out[o1 + 2]! += s12 + ca1 * db2;
        out[o2]! += s20 + ca2 * db0;
        out[o2 + 1]! += s21 + ca2 * db1;
        out[o2 + 2]! += s22 + ca2 * db2;
      }
    }
  }

  /** Squared Frobenius norm; with `upper`, blocks below the diagonal are read from their mirror. */
  private frobeniusSquared(matrix: Float64Array, offset: number, upper: boolean): number {
    const { padded } = this;
    let sum = 0;
    for (let a = 0; a < padded; a++) {
      for (let b = 0; b < padded; b++) {
        const mirrored = upper && Math.floor(b / BLOCK) < Math.floor(a / BLOCK);
        const v = matrix[offset + (mirrored ? b * padded + a : a * padded + b)]!;
        sum += v * v;
      }
    }
    return sum;
  }

  result(): RvResult {
    const { channels, height, width } = this.shape;
    const square = this.padded * this.padded;
    const selfNorms = Float64Array.from(this.used, (_, slot) =>
      Math.sqrt(this.frobeniusSquared(this.selfProducts, slot * square, true)),
    );
    const evaluated = this.pairs.length / 2;
    const values = new Float64Array(evaluated);
    let defined = 0;
    let sum = 0;
    for (let k = 0; k < evaluated; k++) {
      const denominator = selfNorms[this.slotPairs[2 * k]!]! * selfNorms[this.slotPairs[2 * k + 1]!]!;
      values[k] =
        denominator > 0 ? this.frobeniusSquared(this.crossProducts, k * square, false) / denominator : NaN;
      if (denominator > 0) {
        defined++;
        sum += values[k]!;
      }
    }
    const mean = defined > 0 ? sum / defined : NaN;
    let squares = 0;
    for (const v of values) if (!Number.isNaN(v)) squares += (v - mean) ** 2;
    const sd = defined > 1 ? Math.sqrt(squares / (defined - 1)) : NaN;
    const constantChannels = this.undecided.length;
    const population = pairCount(channels - constantChannels);
    const mode = evaluated === pairCount(channels) ? 'exact' : 'sampled';
    const correction = population > 1 ? Math.sqrt(Math.max(0, population - defined) / (population - 1)) : 0;
    const halfWidth = defined === population ? 0 : (Z95 * sd * correction) / Math.sqrt(defined);
    const ci95 = [mean - halfWidth, mean + halfWidth] as const;
    return {
      mode,
      images: this.count,
      height,
      width,
      channels,
      pairsTotal: pairCount(channels),
      pairsEvaluated: evaluated,
      pairsDefined: defined,
      constantChannels,
      mean,
      sd,
      ci95,
      table8x100: { mean: 100 * mean, ci95: [100 * ci95[0], 100 * ci95[1]] },
      pairs: this.pairs,
      values,
    };
  }
}

function paddedPixels(shape: MapShape): number {
  return Math.ceil((shape.height * shape.width) / BLOCK) * BLOCK;
}

function mapShapeOf(batch: FeatureBatch): MapShape {
  const [, height, width, channels] = batch.shape;
  return { height, width, channels };
}

/** Streams the source into an accumulator created, from the first batch's shape, by `create`. */
async function streamRv(
  source: BatchSource<FeatureBatch>,
  create: (shape: MapShape) => RvAccumulator,
): Promise<RvResult> {
  let accumulator: RvAccumulator | undefined;
  for await (const batch of source) {
    accumulator ??= create(mapShapeOf(batch));
    accumulator.add(batch);
  }
  if (!accumulator) throw new Error('RV of an empty feature source');
  return accumulator.result();
}

/** Exact mean RV over all C(C-1)/2 pairs; throws (before streaming) past `maxBytes`. */
export function rvAllPairs(source: BatchSource<FeatureBatch>, options: RvOptions = {}): Promise<RvResult> {
  return streamRv(source, (shape) => new RvAccumulator(shape, allChannelPairs(shape.channels), options));
}

/** Mean RV over uniformly sampled distinct pairs, with a 95% CI (see RvResult.ci95). */
export function rvSampledPairs(
  source: BatchSource<FeatureBatch>,
  options: RvSampledOptions = {},
): Promise<RvResult> {
  return streamRv(
    source,
    (shape) =>
      new RvAccumulator(
        shape,
        sampleChannelPairs(shape.channels, options.pairs ?? DEFAULT_PAIRS, options.seed ?? 0),
        options,
      ),
  );
}

/** True when all pairs fit the exact budget of RvAutoOptions.maxExactElements. */
export function rvExactIsCheap(shape: MapShape, maxExactElements = DEFAULT_MAX_EXACT_ELEMENTS): boolean {
  const pixels = shape.height * shape.width;
  return (pairCount(shape.channels) + shape.channels) * pixels * pixels <= maxExactElements;
}

/** All pairs when rvExactIsCheap, sampled pairs otherwise (decided on the first batch's shape). */
export function rvMeanAuto(
  source: BatchSource<FeatureBatch>,
  options: RvAutoOptions = {},
): Promise<RvResult> {
  return streamRv(source, (shape) => {
    const pairs = rvExactIsCheap(shape, options.maxExactElements)
      ? allChannelPairs(shape.channels)
      : sampleChannelPairs(shape.channels, options.pairs ?? DEFAULT_PAIRS, options.seed ?? 0);
    return new RvAccumulator(shape, pairs, options);
  });
}
