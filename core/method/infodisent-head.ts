import * as tf from '@tensorflow/tfjs';
import { type FeatureShape, pixelsOf } from '../features/feature-set';
import { SeededRandom } from '../util/random';
import { shareForward, shareGradient } from './batch-share';
import { BatchShareThread } from './batch-share-thread';
import { classLogitsWebgpu, classWeightGradientWebgpu } from './class-layer-webgpu';
import { crossEntropyClassMajor } from './cross-entropy';
import {
  disposeTape,
  expmSkew,
  expmSkewBackward,
  expmSkewValue,
  planExpm,
  planExpmValue,
  type SkewNorm,
  skewNorm,
  skewPart,
} from './expm';
import { batchCount, type Head, type LossAndGradients } from './head';
import { matMul } from './matmul';
import { extremeRowsGradientWebgpu, sparsePoolWebgpu } from './pooling-webgpu';
import {
  defaultRotationGradientPath,
  denseRotationGradient,
  type ExtremeGradients,
  type RotationGradientPath,
  sparseRotationGradient,
} from './rotation-gradient';

export interface InfoDisentHeadOptions {
  seed: number;
  /**
   * Dynamic trivialisation: every `foldEvery` steps the rotation is folded into a base matrix,
   * U = expm(A - A^T) B, then B <- U and A <- 0, which keeps ||A|| small and the expm cheap.
   * 0 never folds: U = expm(A - A^T) exactly as SPEC section 1 writes it.
   */
  foldEvery: number;
  /** Initial weights are uniform in [0, initScale / sqrt(C)). */
  initScale?: number;
  /** How dL/dU is computed: by default from the backend (defaultRotationGradientPath); tests force one. */
  rotationGradient?: RotationGradientPath;
  /**
   * On wasm with the sparse gradient, whether a step splits the batch's images with a second thread
   * (batch-share-thread.ts). Default: where the machine has a second core.
   */
  splitBatch?: boolean;
}

/** One batch in the layouts the head needs: X^T [C, nHW] for the forward, X [nHW, C] for dU. */
interface BatchLayout {
  n: number;
  /** X as it came, for the sparse dU. */
  maps: Float32Array;
  x: tf.Tensor2D;
  xT: tf.Tensor2D;
}

/** What the forward pass keeps for the backward pass. */
interface Forward {
  /** Z^T = U X^T, [C, nHW]. */
  zT: tf.Tensor2D;
  /** Sparse pooling output p, [C, n]. */
  pooled: tf.Tensor2D;
  logitsT: tf.Tensor2D;
  /**
   * Index of the highest and lowest pixel per channel and image, [C, n], and whether each branch
   * survived (max > 0, min < 0); only where asked for.
   */
  extremes?: { argmax: tf.Tensor2D; argmin: tf.Tensor2D; positive: tf.Tensor2D; negative: tf.Tensor2D };
}

/**
 * SPEC section 1: U = expm(A - A^T) rotates every pixel's C-vector, sparse pooling keeps the highest
 * positive and lowest negative pixel per channel, and a non-negative linear layer scores classes.
 * Non-negativity is kept by projection: W <- max(W, 0) as part of every optimiser step (`nonNegative`).
 * The CPU path's products are plain matmuls in layouts chosen so that no transpose flag is needed (wasm
 * leaves its fast path for one); the webgpu path reads transposes in place.
 */
export class InfoDisentHead implements Head {
  readonly kind = 'infodisent' as const;
  readonly nonNegative = ['weight'];
  private generator: tf.Tensor2D;
  private base: tf.Tensor2D;
  /** B^T, made when first needed after a fold (folding every step never needs it): see baseTransposed. */
  private baseT: tf.Tensor2D | undefined;
  private weight: tf.Tensor2D;
  private bias: tf.Tensor2D;
  /** A is known to be 0 (start, or just folded): U is the base, with no norm to read back. */
  private generatorIsZero = true;

  constructor(
    readonly shape: FeatureShape,
    readonly classCount: number,
    private readonly options: InfoDisentHeadOptions,
  ) {
    const c = shape.channels;
    const random = new SeededRandom(options.seed);
    const scale = (options.initScale ?? 1) / Math.sqrt(c);
    const weights = Float32Array.from({ length: classCount * c }, () => random.uniform(0, scale));
    this.generator = tf.zeros([c, c]);
    this.base = tf.eye(c) as tf.Tensor2D;
    this.weight = tf.tensor2d(weights, [classCount, c]);
    this.bias = tf.zeros([classCount, 1]);
  }

  trainable(): Record<string, tf.Tensor> {
    return { rotation: this.generator, weight: this.weight, bias: this.bias };
  }

  setTrainable(parameters: Record<string, tf.Tensor>): void {
    const { rotation, weight, bias } = parameters as Record<string, tf.Tensor2D>;
    tf.dispose([this.generator, this.weight, this.bias]);
    this.generator = rotation!;
    this.generatorIsZero = false;
    this.weight = weight!;
    this.bias = bias!;
  }

  state(): Record<string, tf.Tensor> {
    return { ...this.trainable(), base: this.base, baseT: this.baseTransposed() };
  }

  restore(state: Record<string, tf.Tensor>): void {
    tf.dispose([this.generator, this.base, this.baseT, this.weight, this.bias]);
    const get = (name: string): tf.Tensor2D => {
      const tensor = state[name];
      if (!tensor) throw new Error(`InfoDisent head state has no '${name}' tensor`);
      return tensor as tf.Tensor2D;
    };
    this.generator = get('rotation');
    this.generatorIsZero = false;
    this.base = get('base');
    this.baseT = get('baseT');
    this.weight = get('weight');
    this.bias = get('bias');
  }

  /** B^T, kept until the next fold; tf.keep, as it may first be asked for inside a tidy. */
  private baseTransposed(): tf.Tensor2D {
    this.baseT ??= tf.keep(tf.transpose(this.base));
    return this.baseT;
  }

  /** The current orthogonal map U, [C, C]. The caller disposes it. */
  async rotation(): Promise<tf.Tensor2D> {
    if (this.generatorIsZero) return tf.clone(this.base);
    const { value } = await this.expandRotation((s, norm) => ({
      value: expmSkewValue(s, planExpmValue(norm.bound, norm.square !== undefined), norm.square),
    }));
    return value;
  }

  /** Non-negative class weights W+, [K, C]. The caller must not dispose them. */
  classWeights(): tf.Tensor2D {
    return this.weight;
  }

  /**
   * U = expm(S) B for S = A - A^T, with whatever else `expm` returns (expmSkew: its tape for the backward
   * pass), and whether U is the base itself (S = 0, E = I). Callers handle A = 0 (just folded) themselves.
   */
  private async expandRotation<R extends { value: tf.Tensor2D }>(
    expm: (s: tf.Tensor2D, norm: SkewNorm) => R,
  ): Promise<R & { isBase: boolean }> {
    const s = skewPart(this.generator);
    const norm = await skewNorm(s);
    const expanded = expm(s, norm);
    tf.dispose([s, ...(norm.square ? [norm.square] : [])]);
    const e = expanded.value;
    // S = 0 (A symmetric): U is the base itself, skip the product.
    const isBase = norm.bound === 0;
    const value = isBase ? tf.clone(this.base) : tf.tidy(() => matMul(e, this.base));
    e.dispose();
    return { ...expanded, value, isBase };
  }

  /** X [nHW, C] of `n` maps [n, H, W, C]. */
  private mapsMatrix(maps: Float32Array, n: number): tf.Tensor2D {
    return tf.tensor2d(maps, [n * pixelsOf(this.shape), this.shape.channels]);
  }

  private layout(maps: Float32Array): BatchLayout {
    const n = batchCount(maps, this.shape);
    const x = this.mapsMatrix(maps, n);
    return { n, maps, x, xT: tf.tidy(() => tf.transpose(x) as tf.Tensor2D) };
  }

  /** Z^T = U X^T, viewed as [C, n, HW] for the pooling: it then reduces the innermost axis. */
  private forward(batch: BatchLayout, rotation: tf.Tensor2D, withExtremes: boolean): Forward {
    const c = this.shape.channels;
    const hw = pixelsOf(this.shape);
    return tf.tidy(() => {
      const zT = matMul(rotation, batch.xT);
      const byImage = zT.reshape([c, batch.n, hw]) as tf.Tensor3D;
      const maxima = tf.max(byImage, 2) as tf.Tensor2D;
      const minima = tf.min(byImage, 2) as tf.Tensor2D;
      const pooled = tf.add(tf.relu(maxima), tf.minimum(minima, 0)) as tf.Tensor2D;
      const logitsT = this.classLogits(pooled);
      const extremes = withExtremes
        ? {
            argmax: tf.argMax(byImage, 2) as tf.Tensor2D,
            argmin: tf.argMin(byImage, 2) as tf.Tensor2D,
            positive: tf.greater(maxima, 0).toFloat() as tf.Tensor2D,
            negative: tf.less(minima, 0).toFloat() as tf.Tensor2D,
          }
        : undefined;
      return { zT, pooled, logitsT, extremes } as unknown as tf.TensorContainer;
    }) as unknown as Forward;
  }

  /**
   * The forward pass on webgpu, from the maps X [nHW, C] as they came: Z = X U^T [nHW, C], the packed sparse
   * pooling [3, C, n] (pooled values and surviving extremes, pooling-webgpu.ts) and the logits W p + b
   * [K, n], in three dispatches.
   */
  private fusedForward(x: tf.Tensor2D, n: number, rotation: tf.Tensor2D) {
    const z = matMul(x, rotation, false, true);
    const pooling = sparsePoolWebgpu(z, n, pixelsOf(this.shape));
    return { z, pooling, logitsT: classLogitsWebgpu(this.weight, pooling, this.bias) };
  }

  async logits(maps: Float32Array): Promise<tf.Tensor2D> {
    const rotation = await this.rotation();
    if (tf.getBackend() === 'webgpu') {
      const n = batchCount(maps, this.shape);
      const logits = tf.tidy(
        () => tf.transpose(this.fusedForward(this.mapsMatrix(maps, n), n, rotation).logitsT) as tf.Tensor2D,
      );
      rotation.dispose();
      return logits;
    }
    const batch = this.layout(maps);
    const forward = this.forward(batch, rotation, false);
    const logits = tf.tidy(() => tf.transpose(forward.logitsT) as tf.Tensor2D);
    tf.dispose([batch.x, batch.xT, rotation, forward as unknown as tf.TensorContainer]);
    return logits;
  }

  /** Sparse pooling of a batch: p [n, C] and the flat pixel index of each channel's max and min. */
  async pool(maps: Float32Array): Promise<{ pooled: tf.Tensor2D; argmax: tf.Tensor2D; argmin: tf.Tensor2D }> {
    const batch = this.layout(maps);
    const rotation = await this.rotation();
    const forward = this.forward(batch, rotation, true);
    const out = tf.tidy(() => ({
      pooled: tf.transpose(forward.pooled) as tf.Tensor2D,
      argmax: tf.transpose(forward.extremes!.argmax) as tf.Tensor2D,
      argmin: tf.transpose(forward.extremes!.argmin) as tf.Tensor2D,
    }));
    tf.dispose([batch.x, batch.xT, rotation, forward as unknown as tf.TensorContainer]);
    return out;
  }

  /** Class scores W p + b, [K, n], of pooled features p [C, n]. */
  private classLogits(pooled: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(this.weight, pooled), this.bias) as tf.Tensor2D);
  }

  /** Gradients of the class layer's weight and bias, and dL/dp [C, n], from dL/dlogits [K, n]. */
  private classGradients(pooled: tf.Tensor2D, gradLogitsT: tf.Tensor2D) {
    return tf.tidy(() => ({
      weight: matMul(gradLogitsT, pooled, false, true),
      bias: tf.sum(gradLogitsT, 1, true) as tf.Tensor2D,
      pooled: matMul(this.weight, gradLogitsT, true),
    }));
  }

  async lossAndGradients(maps: Float32Array, labels: Int32Array): Promise<LossAndGradients> {
    // Right after a fold A = 0, so E = I: U is the base and dL/dS = dL/dE, with no expm to differentiate.
    const expanded = this.generatorIsZero
      ? undefined
      : await this.expandRotation((s, norm) => expmSkew(s, planExpm(norm.bound)));
    const rotation = expanded?.value ?? this.base;
    const isBase = expanded?.isBase ?? true;
    const { loss, weight, bias, gradE } = this.splitsBatch(maps)
      ? await this.splitStep(maps, labels, rotation, isBase)
      : this.wholeStep(maps, labels, rotation, isBase);
    const gradA = tf.tidy(() => skewPart(expanded ? expmSkewBackward(expanded.tape, gradE) : gradE));
    gradE.dispose();
    if (expanded) {
      rotation.dispose();
      disposeTape(expanded.tape);
    }
    return { loss, gradients: { rotation: gradA, weight, bias } };
  }

  /** Loss, class-layer gradients and dL/dE of the batch in this thread. */
  private wholeStep(maps: Float32Array, labels: Int32Array, rotation: tf.Tensor2D, isBase: boolean) {
    if (tf.getBackend() === 'webgpu') return this.fusedStep(maps, labels, rotation, isBase);
    const batch = this.layout(maps);
    const forward = this.forward(batch, rotation, true);
    const { loss, gradLogitsT } = crossEntropyClassMajor(forward.logitsT, labels);
    const grads = this.classGradients(forward.pooled, gradLogitsT);
    const extremes = forward.extremes!;
    const gradE = tf.tidy(() =>
      this.expmGradient(
        // Only the surviving pixels carry gradient: the argmax where positive, the argmin where negative.
        {
          argmax: extremes.argmax,
          argmin: extremes.argmin,
          gradMax: tf.mul(grads.pooled, extremes.positive) as tf.Tensor2D,
          gradMin: tf.mul(grads.pooled, extremes.negative) as tf.Tensor2D,
        },
        batch,
        forward.zT,
        isBase,
      ),
    );
    tf.dispose([batch.x, batch.xT, gradLogitsT, grads.pooled, forward as unknown as tf.TensorContainer]);
    return { loss, weight: grads.weight, bias: grads.bias, gradE };
  }

  /**
   * The step on webgpu, where it is bound by its number of dispatches: the fused forward (three), the
   * cross-entropy (two), dL/dW and dL/db (two), and dL/dE in one sparse kernel over the extremes' rows, which
   * also computes dL/dp (pooling-webgpu.ts). Right after a fold (U = B) the rows are Z's, X B^T, and give
   * dL/dE at once; else X's give dL/dU, and dL/dE = dL/dU B^T with B read transposed in place.
   */
  private fusedStep(maps: Float32Array, labels: Int32Array, rotation: tf.Tensor2D, isBase: boolean) {
    const n = batchCount(maps, this.shape);
    const hw = pixelsOf(this.shape);
    return tf.tidy(() => {
      const x = this.mapsMatrix(maps, n);
      const { z, pooling, logitsT } = this.fusedForward(x, n, rotation);
      const { loss, gradLogitsT } = crossEntropyClassMajor(logitsT, labels);
      const rows = extremeRowsGradientWebgpu(pooling, this.weight, gradLogitsT, isBase ? z : x, hw);
      return {
        loss,
        weight: classWeightGradientWebgpu(gradLogitsT, pooling),
        bias: tf.sum(gradLogitsT, 1, true) as tf.Tensor2D,
        gradE: isBase ? rows : matMul(rows, this.base, false, true),
      };
    });
  }

  private splitsBatch(maps: Float32Array): boolean {
    const sparse = (this.options.rotationGradient ?? defaultRotationGradientPath()) === 'sparse';
    return (
      (this.options.splitBatch ?? BatchShareThread.available()) &&
      sparse &&
      tf.getBackend() === 'wasm' &&
      batchCount(maps, this.shape) > 1
    );
  }

  /**
   * A step with the batch's images split between this thread and a BatchShareThread: each computes its
   * share's Z^T = U X^T, pooling and gradient row sum (batch-share.ts); the loss, the class weights'
   * gradients and dL/dp are computed here for the whole batch. The row sums add up to dL/dE at the base
   * (rows of Z = X U^T, since then dL/dE = dL/dU U^T), else to dL/dU (rows of X).
   */
  private async splitStep(maps: Float32Array, labels: Int32Array, rotation: tf.Tensor2D, atBase: boolean) {
    const c = this.shape.channels;
    const n = batchCount(maps, this.shape);
    const mine = Math.ceil(n / 2);
    const split = mine * pixelsOf(this.shape) * c;
    const thread = BatchShareThread.shared();
    const theirs = thread.forward(rotation.dataSync<'float32'>(), maps.slice(split), this.shape, atBase);
    const local = shareForward(rotation, maps.subarray(0, split), this.shape, atBase);
    const remote = await theirs;
    // [C, n] from the two shares' [C, mine] and [C, n - mine], image order kept.
    const joined = new Float32Array(c * n);
    for (let channel = 0; channel < c; channel++) {
      joined.set(local.pooled.subarray(channel * mine, (channel + 1) * mine), channel * n);
      joined.set(remote.subarray(channel * (n - mine), (channel + 1) * (n - mine)), channel * n + mine);
    }
    const pooled = tf.tensor2d(joined, [c, n]);
    const logitsT = this.classLogits(pooled);
    const { loss, gradLogitsT } = crossEntropyClassMajor(logitsT, labels);
    const grads = this.classGradients(pooled, gradLogitsT);
    const grad = grads.pooled.dataSync() as Float32Array;
    tf.dispose([pooled, logitsT, gradLogitsT, grads.pooled]);
    const gradMine = new Float32Array(c * mine);
    const gradTheirs = new Float32Array(c * (n - mine));
    for (let channel = 0; channel < c; channel++) {
      gradMine.set(grad.subarray(channel * n, channel * n + mine), channel * mine);
      gradTheirs.set(grad.subarray(channel * n + mine, (channel + 1) * n), channel * (n - mine));
    }
    const remoteSums = thread.gradient(gradTheirs);
    const sums = shareGradient(local, gradMine, c);
    const other = await remoteSums;
    for (let i = 0; i < sums.length; i++) sums[i]! += other[i]!;
    const rowSum = tf.tensor2d(Float32Array.from(sums), [c, c]);
    // At the base the rows summed were Z's, which gives dL/dE; else X's, dL/dU, and dL/dE = dL/dU B^T.
    const gradE = atBase ? rowSum : tf.tidy(() => matMul(rowSum, this.baseTransposed()));
    if (!atBase) rowSum.dispose();
    return { loss, weight: grads.weight, bias: grads.bias, gradE };
  }

  /** dL/dE for U = E B, E = expm(S), from the gradient at the pooled extremes. */
  private expmGradient(
    extremes: ExtremeGradients,
    batch: BatchLayout,
    zT: tf.Tensor2D,
    isBase: boolean,
  ): tf.Tensor2D {
    const path = this.options.rotationGradient ?? defaultRotationGradientPath();
    if (path === 'dense') return matMul(denseRotationGradient(extremes, batch.x), this.baseTransposed());
    // Right after a fold E = I and U = B, so dL/dE = dL/dU B^T = dL/dU U^T: the sparse sum over the rows
    // of Z = X U^T, which the forward pass already computed, in place of a [C, C] matmul.
    if (isBase) return sparseRotationGradient(extremes, tf.transpose(zT).dataSync<'float32'>());
    return matMul(sparseRotationGradient(extremes, batch.maps), this.baseTransposed());
  }

  async afterStep(step: number): Promise<void> {
    if (this.options.foldEvery > 0 && step % this.options.foldEvery === 0) await this.fold();
  }

  /** B <- expm(A - A^T) B, A <- 0: the same U, re-expressed around a new base. */
  private async fold(): Promise<void> {
    const rotation = await this.rotation();
    tf.dispose([this.base, this.baseT, this.generator]);
    this.base = rotation;
    this.baseT = undefined;
    this.generator = tf.zeros([this.shape.channels, this.shape.channels]);
    this.generatorIsZero = true;
  }

  dispose(): void {
    tf.dispose([this.generator, this.base, this.baseT, this.weight, this.bias]);
  }
}
