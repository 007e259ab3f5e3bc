import * as tf from '@tensorflow/tfjs';
import { type FeatureSet, iterateBatches } from '../features/feature-set';
import { checkSetFitsHead, FeatureInputError } from '../features/feature-validation';
import { SeededRandom } from '../util/random';
import { Adam, type ParameterGroup } from './adam';
import { evaluateHead } from './evaluate';
import type { Head } from './head';
import { decodeTensors, encodeTensors } from './tensor-io';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  seed: number;
  /** Learning rate and weight decay for each of the head's trainable parameters. */
  groups: Record<string, ParameterGroup>;
  schedule: 'constant' | 'cosine';
  /** Fraction of the training items held out for validation and early stopping (0: none). */
  validationFraction: number;
  /** Epochs without a better validation accuracy before stopping (0: never stop early). */
  patience: number;
  /** Save a checkpoint every this many steps (0: never). */
  checkpointEvery: number;
  /**
   * Read the step losses back every this many steps (and at each checkpoint and epoch end), all in one
   * transfer: every read-back stalls an asynchronous backend's queue. Default 20.
   */
  lossReadEvery?: number;
}

const DEFAULT_LOSS_READ_EVERY = 20;

export interface TrainProgress {
  epoch: number;
  step: number;
  totalSteps: number;
  /** Mean batch loss of the steps whose losses were read back at this step; null where none were. */
  loss: number | null;
}

export interface EpochRecord {
  epoch: number;
  meanLoss: number;
  validationAccuracy: number | null;
}

export interface TrainResult {
  steps: number;
  epochsRun: number;
  stoppedEarly: boolean;
  resumedFromStep: number | null;
  history: EpochRecord[];
  bestEpoch: number | null;
  /** Wall seconds of training, the runs before a resume included; absent in results from before it was kept. */
  seconds?: number;
}

/** Where checkpoints go: the caller binds it to an artifact store key. */
export interface CheckpointSink {
  /** Where the checkpoint lives, for errors. */
  readonly name: string;
  load(): Promise<Buffer | undefined>;
  save(data: Buffer): Promise<void>;
}

interface CheckpointMeta {
  step: number;
  epoch: number;
  batchInEpoch: number;
  history: EpochRecord[];
  epochLossSum: number;
  epochBatches: number;
  bestAccuracy: number;
  bestEpoch: number | null;
  staleEpochs: number;
  /** Wall seconds trained up to this checkpoint (absent in checkpoints from before it was kept). */
  seconds?: number;
}

/**
 * One training step of a head: loss and gradients, Adam, the head's constraints (projection, fold).
 * `step` is 1-based. Returns the batch's loss, still on the device: the caller reads it when it needs
 * it (StepLosses) and disposes it.
 */
export async function optimiserStep(
  head: Head,
  adam: Adam,
  batch: { maps: Float32Array; labels: Int32Array },
  groups: Record<string, ParameterGroup>,
  step: number,
  learningRateScale = 1,
): Promise<tf.Scalar> {
  const { loss, gradients } = await head.lossAndGradients(batch.maps, batch.labels);
  head.setTrainable(adam.update(head.trainable(), gradients, groups, learningRateScale, head.nonNegative));
  tf.dispose(Object.values(gradients));
  await head.afterStep(step);
  return loss;
}

/** Step losses left on the device until they are needed, then read back together in one transfer. */
class StepLosses {
  private losses: tf.Scalar[] = [];
  private firstStep = 0;

  add(step: number, loss: tf.Scalar): void {
    if (this.losses.length === 0) this.firstStep = step;
    this.losses.push(loss);
  }

  /** The losses added since the last read, in step order; a non-finite one means training diverged. */
  async read(): Promise<number[]> {
    if (this.losses.length === 0) return [];
    const stacked = tf.stack(this.losses);
    const values = Array.from(await stacked.data());
    tf.dispose([stacked, ...this.losses]);
    this.losses = [];
    const bad = values.findIndex((loss) => !Number.isFinite(loss));
    if (bad >= 0)
      throw new Error(`training diverged: loss is ${values[bad]} at step ${this.firstStep + bad}`);
    return values;
  }

  dispose(): void {
    tf.dispose(this.losses);
    this.losses = [];
  }
}

/** Seeded choice of held-out items, so a resumed run holds out the same ones. */
export function validationMask(count: number, fraction: number, seed: number): Uint8Array {
  const mask = new Uint8Array(count);
  const held = Math.round(count * fraction);
  for (const index of new SeededRandom(seed ^ 0x5eed).shuffle([...Array(count).keys()]).slice(0, held))
    mask[index] = 1;
  return mask;
}

function learningRateScale(schedule: TrainOptions['schedule'], step: number, totalSteps: number): number {
  if (schedule === 'constant') return 1;
  return 0.5 * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps));
}

function cloneState(state: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(state).map(([name, tensor]) => [name, tf.clone(tensor)]));
}

/**
 * Trains a head with Adam on minibatches streamed from a feature set. The batch order depends only on
 * the seed and the epoch, and a checkpoint holds the head, the optimiser and the position in the epoch,
 * so a run resumed from any checkpoint ends with the same weights as an uninterrupted one.
 */
export async function trainHead(
  head: Head,
  set: FeatureSet,
  options: TrainOptions,
  hooks: { onProgress?: (progress: TrainProgress) => void | Promise<void>; checkpoint?: CheckpointSink } = {},
): Promise<TrainResult> {
  checkSetFitsHead(set, head);
  const count = set.labels.length;
  if (count === 0) throw new FeatureInputError(set.name, {}, 'items', 0, 'means an empty training split');
  const held =
    options.validationFraction > 0 ? validationMask(count, options.validationFraction, options.seed) : null;
  const heldCount = held ? held.reduce((a, b) => a + b, 0) : 0;
  const emptySplit = heldCount === count ? 'training' : held && heldCount === 0 ? 'validation' : null;
  if (emptySplit)
    throw new FeatureInputError(
      set.name,
      {},
      'validationFraction',
      options.validationFraction,
      `holds out ${heldCount} of the ${count} items: the ${emptySplit} split is empty`,
    );
  const trainCount = count - heldCount;
  const stepsPerEpoch = Math.ceil(trainCount / options.batchSize);
  const totalSteps = stepsPerEpoch * options.epochs;
  const adam = new Adam();

  let meta: CheckpointMeta = {
    step: 0,
    epoch: 0,
    batchInEpoch: 0,
    history: [],
    epochLossSum: 0,
    epochBatches: 0,
    bestAccuracy: Number.NEGATIVE_INFINITY,
    bestEpoch: null,
    staleEpochs: 0,
  };
  let best: Record<string, tf.Tensor> | null = null;
  let resumedFromStep: number | null = null;
  const saved = await hooks.checkpoint?.load();
  if (saved) {
    const { tensors, meta: savedMeta } = decodeTensors(saved, hooks.checkpoint!.name);
    meta = savedMeta as CheckpointMeta;
    // JSON has no -Infinity: a checkpoint taken before the first validation stores bestAccuracy as null.
    meta.bestAccuracy ??= Number.NEGATIVE_INFINITY;
    const pick = (prefix: string) =>
      Object.fromEntries(
        Object.entries(tensors)
          .filter(([name]) => name.startsWith(prefix))
          .map(([name, tensor]) => [name.slice(prefix.length), tensor]),
      );
    head.restore(pick('head.'));
    adam.restore(meta.step, tensors);
    const bestTensors = pick('best.');
    best = Object.keys(bestTensors).length > 0 ? bestTensors : null;
    resumedFromStep = meta.step;
  }

  // Seconds trained by earlier runs, from the checkpoint, and by this one since it started.
  const earlierSeconds = meta.seconds ?? 0;
  const started = performance.now();
  const secondsSoFar = () => earlierSeconds + (performance.now() - started) / 1000;
  const saveCheckpoint = async () => {
    if (!hooks.checkpoint) return;
    meta.seconds = secondsSoFar();
    const tensors: Record<string, tf.Tensor> = {};
    for (const [name, tensor] of Object.entries(head.state())) tensors[`head.${name}`] = tensor;
    for (const [name, tensor] of Object.entries(best ?? {})) tensors[`best.${name}`] = tensor;
    const moments = adam.checkpointTensors();
    Object.assign(tensors, moments);
    try {
      await hooks.checkpoint.save(await encodeTensors(tensors, meta));
    } finally {
      tf.dispose(Object.values(moments));
    }
  };

  const lossReadEvery = options.lossReadEvery ?? DEFAULT_LOSS_READ_EVERY;
  const losses = new StepLosses();
  let stoppedEarly = false;
  try {
    for (; meta.epoch < options.epochs; meta.epoch++) {
      let batchIndex = 0;
      const include = held ? (index: number) => held[index] === 0 : undefined;
      const batches = iterateBatches(set, options.batchSize, {
        seed: options.seed * 1000 + meta.epoch,
        ...(include ? { include } : {}),
      });
      for await (const batch of batches) {
        if (batchIndex++ < meta.batchInEpoch) continue;
        const scale = learningRateScale(options.schedule, meta.step, totalSteps);
        losses.add(
          meta.step + 1,
          await optimiserStep(head, adam, batch, options.groups, meta.step + 1, scale),
        );
        meta.step += 1;
        meta.batchInEpoch = batchIndex;
        meta.epochBatches += 1;
        const checkpointDue = options.checkpointEvery > 0 && meta.step % options.checkpointEvery === 0;
        // The epoch's mean loss and a checkpoint's running sum need every loss so far: read them then.
        let loss: number | null = null;
        if (checkpointDue || batchIndex === stepsPerEpoch || meta.step % lossReadEvery === 0) {
          const read = await losses.read();
          // Summed one by one in step order, as float64: the same sum however the reads are grouped.
          for (const value of read) meta.epochLossSum += value;
          loss = read.reduce((a, b) => a + b, 0) / read.length;
        }
        await hooks.onProgress?.({ epoch: meta.epoch, step: meta.step, totalSteps, loss });
        if (checkpointDue) await saveCheckpoint();
      }
      let validationAccuracy: number | null = null;
      if (held) {
        validationAccuracy = (
          await evaluateHead(head, set, { batchSize: options.batchSize, include: (i) => held[i] === 1 })
        ).top1;
      }
      meta.history.push({
        epoch: meta.epoch,
        meanLoss: meta.epochLossSum / Math.max(1, meta.epochBatches),
        validationAccuracy,
      });
      meta.batchInEpoch = 0;
      meta.epochLossSum = 0;
      meta.epochBatches = 0;
      if (validationAccuracy !== null) {
        if (validationAccuracy > meta.bestAccuracy) {
          meta.bestAccuracy = validationAccuracy;
          meta.bestEpoch = meta.epoch;
          meta.staleEpochs = 0;
          tf.dispose(Object.values(best ?? {}));
          best = cloneState(head.state());
        } else if (options.patience > 0 && ++meta.staleEpochs >= options.patience) {
          stoppedEarly = true;
          meta.epoch++;
          break;
        }
      }
    }
    if (best) head.restore(cloneState(best));
    return {
      steps: meta.step,
      epochsRun: meta.history.length,
      stoppedEarly,
      resumedFromStep,
      history: meta.history,
      bestEpoch: meta.bestEpoch,
      seconds: secondsSoFar(),
    };
  } finally {
    losses.dispose();
    tf.dispose(Object.values(best ?? {}));
    adam.dispose();
  }
}
