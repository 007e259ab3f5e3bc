import os from 'node:os';
import {
  type FeatureBatch,
  HeadAblation,
  type LinearHead,
  RvAccumulator,
  type RvResult,
  sampleChannelPairs,
} from '../core/analysis';
import { runPythonReference } from '../test/support/python';
import type { BenchRow } from './rows';

export interface BenchAnalyzeOptions {
  /** Fraction of the 50,000 ImageNet validation images to stream (C = 2048 and 7x7 are kept). Default 1. */
  scale?: number;
  /** Sampled channel pairs for the RV coefficient. Default 1000. */
  pairs?: number;
  /** Images the NumPy reference is timed on (it holds them all in memory). Default 500. */
  referenceImages?: number;
  seed?: number;
}

const IMAGES = 50_000;
const CHANNELS = 2048;
const SIDE = 7;
const CLASSES = 1000;
const BATCH = 64;

/** Seeded xorshift32 in [0, 1), for the weights and per-image draws. */
function uniformStream(seed: number): () => number {
  let state = seed | 0 || 0x2545f491;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/**
 * One image's maps into `data` at `offset`: the blob times each channel's response plus uniform
 * noise, ReLU'd. The noise is xorshift32 inlined in a plain function (generator locals and a
 * closure call per value made generation slower than the analyses); returns the new state.
 */
function fillImage(
  data: Float32Array,
  offset: number,
  blob: Float64Array,
  response: Float32Array,
  state: number,
): number {
  for (let a = 0; a < blob.length; a++) {
    const row = offset + a * response.length;
    const bump = blob[a]!;
    for (let c = 0; c < response.length; c++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      const v = bump * response[c]! + 0.5 * ((state >>> 0) / 2 ** 32 - 0.5);
      data[row + c] = Math.max(0, v);
    }
  }
  return state;
}

/**
 * ReLU maps with one Gaussian blob per image at a random place; each channel answers the blob with
 * its own fixed weight in [-1, 1] plus uniform noise, so like-signed channels correlate (the same
 * recipe as `generated` in reference/analysis_reference.py). Only one batch exists at a time.
 */
function* syntheticFeatures(images: number, seed: number): Generator<FeatureBatch & { labels: Int32Array }> {
  const next = uniformStream(seed);
  const response = Float32Array.from({ length: CHANNELS }, () => 2 * next() - 1);
  const blob = new Float64Array(SIDE * SIDE);
  let state = Math.imul(seed, 0x9e3779b1) || 1;
  for (let start = 0; start < images; start += BATCH) {
    const n = Math.min(BATCH, images - start);
    const data = new Float32Array(n * SIDE * SIDE * CHANNELS);
    const labels = Int32Array.from({ length: n }, () => Math.floor(next() * CLASSES));
    for (let i = 0; i < n; i++) {
      const cy = next() * SIDE;
      const cx = next() * SIDE;
      for (let a = 0; a < SIDE * SIDE; a++) {
        blob[a] = Math.exp(-((Math.floor(a / SIDE) - cy) ** 2 + ((a % SIDE) - cx) ** 2) / 2);
      }
      state = fillImage(data, i * SIDE * SIDE * CHANNELS, blob, response, state);
    }
    yield { data, shape: [n, SIDE, SIDE, CHANNELS], labels };
  }
}

interface ReferenceTiming {
  images: number;
  rv_seconds: number;
  ablation_seconds: number;
}

/** Accumulated wall and CPU seconds of the calls it times. */
class Stopwatch {
  wall = 0;
  cpu = 0;

  time<T>(work: () => T): T {
    const wallStart = performance.now();
    const cpuStart = process.cpuUsage();
    const out = work();
    const cpu = process.cpuUsage(cpuStart);
    this.cpu += (cpu.user + cpu.system) / 1e6;
    this.wall += (performance.now() - wallStart) / 1000;
    return out;
  }
}

/**
 * The paper's analyses at ImageNet validation size (50,000 x 2,048 x 7x7, features generated on
 * the fly, never all in memory): RV over sampled channel pairs and the 95%-channel ablation for
 * both heads, with wall and CPU time, peak memory, and the dense NumPy reference timed on a slice.
 */
export async function benchAnalyze(options: BenchAnalyzeOptions = {}): Promise<BenchRow[]> {
  const scale = options.scale ?? 1;
  const images = Math.max(2, Math.round(IMAGES * scale));
  const pairCount = options.pairs ?? 1000;
  const seed = options.seed ?? 1;
  const shape = { height: SIDE, width: SIDE, channels: CHANNELS };
  const weights = uniformStream(seed + 1);
  const heads: LinearHead[] = [
    {
      kind: 'infodisent',
      classes: CLASSES,
      weights: Float32Array.from({ length: CLASSES * CHANNELS }, () => weights()),
    },
    {
      kind: 'baseline',
      classes: CLASSES,
      weights: Float32Array.from({ length: CLASSES * CHANNELS }, () => 2 * weights() - 1),
    },
  ];

  const base = process.memoryUsage();
  const peak = { rss: base.rss, arrayBuffers: base.arrayBuffers };
  const rv = new RvAccumulator(shape, sampleChannelPairs(CHANNELS, pairCount, seed));
  const ablations = heads.map((head) => new HeadAblation(head, CHANNELS));
  const clocks = {
    rv: new Stopwatch(),
    ablation: new Stopwatch(),
    generation: new Stopwatch(),
    all: new Stopwatch(),
  };
  const rvResult: RvResult = clocks.all.time(() => {
    const source = syntheticFeatures(images, seed);
    for (;;) {
      const step = clocks.generation.time(() => source.next());
      if (step.done) break;
      clocks.rv.time(() => rv.add(step.value));
      clocks.ablation.time(() => {
        for (const ablation of ablations) ablation.addBatch(step.value);
      });
      const memory = process.memoryUsage();
      peak.rss = Math.max(peak.rss, memory.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, memory.arrayBuffers);
    }
    return clocks.rv.time(() => rv.result());
  });
  const [infodisent, baseline] = ablations.map((ablation) => ablation.result());

  const referenceImages = Math.min(images, options.referenceImages ?? 500);
  const reference = runPythonReference<ReferenceTiming>('analysis_reference.py', {
    task: 'bench',
    images: referenceImages,
    height: SIDE,
    width: SIDE,
    channels: CHANNELS,
    pairs: pairCount,
    classes: CLASSES,
    seed,
    fraction: 0.95,
  });

  const cpus = os.cpus();
  const machine = `${cpus[0]?.model ?? 'unknown CPU'} x${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load ${os.loadavg()[0]!.toFixed(1)} at end, node ${process.version}`;
  const backend = 'node, pure TS float64, one thread';
  const label = `imagenet-val ${images}x${CHANNELS}x${SIDE}x${SIDE}`;
  const numpy = `NumPy dense float64 (reference/analysis_reference.py) on ${reference.images} generated images, same machine`;
  const row = (
    name: string,
    metric: string,
    unit: string,
    value: number,
    referenceText: string,
    referenceValue: number | null = null,
  ): BenchRow => ({
    case: `${label} ${name}`,
    metric,
    unit,
    value,
    reference: referenceText,
    reference_value: referenceValue,
    ratio: referenceValue ? value / referenceValue : null,
    backend,
    machine,
  });
  const mib = (bytes: number) => bytes / 2 ** 20;
  const noReference = 'none: no other implementation streams this size here';
  const synthetic = 'synthetic features and weights: no paper figure applies';
  return [
    row(
      `rv ${pairCount} sampled pairs`,
      'throughput',
      'images/s',
      images / clocks.rv.wall,
      numpy,
      reference.images / reference.rv_seconds,
    ),
    row(`rv ${pairCount} sampled pairs`, 'wall_time', 's', clocks.rv.wall, noReference),
    row(`rv ${pairCount} sampled pairs`, 'cpu_time', 's', clocks.rv.cpu, noReference),
    row(
      `rv ${pairCount} sampled pairs`,
      'rv_mean_x100',
      'RV x100 (Table 8 scale)',
      rvResult.table8x100.mean,
      synthetic,
    ),
    row(
      `rv ${pairCount} sampled pairs`,
      'rv_ci95_half_width_x100',
      'RV x100 (Table 8 scale)',
      (rvResult.table8x100.ci95[1] - rvResult.table8x100.ci95[0]) / 2,
      'normal approximation over the sampled pairs',
    ),
    row(
      'ablation 95% both heads',
      'throughput',
      'images/s',
      images / clocks.ablation.wall,
      numpy,
      reference.images / reference.ablation_seconds,
    ),
    row('ablation 95% both heads', 'wall_time', 's', clocks.ablation.wall, noReference),
    row('ablation 95% both heads', 'cpu_time', 's', clocks.ablation.cpu, noReference),
    row(
      'ablation 95% infodisent',
      'mean_channels_needed',
      'channels',
      infodisent!.channelsNeeded.mean,
      synthetic,
    ),
    row(
      'ablation 95% baseline',
      'mean_channels_needed',
      'channels',
      baseline!.channelsNeeded.mean,
      synthetic,
    ),
    row(
      'feature generation',
      'wall_time',
      's',
      clocks.generation.wall,
      'not an analysis: features made on the fly',
    ),
    row('all', 'wall_time', 's', clocks.all.wall, noReference),
    row('all', 'cpu_time', 's', clocks.all.cpu, noReference),
    row(
      'all',
      'peak_rss',
      'MiB',
      mib(peak.rss),
      'analytic RV state bound (RvAccumulator.bytesNeeded); RSS adds node, weights and one batch',
      mib(RvAccumulator.bytesNeeded(shape, pairCount)),
    ),
    row('all', 'peak_array_buffers', 'MiB', mib(peak.arrayBuffers), 'sampled after every batch of 64 images'),
  ];
}
