import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { FeatureManifest } from '../core/features/feature-store';
import { StoredFeatureSet } from '../core/features/feature-store';
import { Adam } from '../core/method/adam';
import { InfoDisentHead } from '../core/method/infodisent-head';
import { optimiserStep, trainHead } from '../core/method/train';
import { countDispatches } from '../core/method/webgpu-program';
import { putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { applyTfFlags, type BackendChoice, selectBackend } from '../core/tf/backend';
import { sha256 } from '../core/util/hash';
import { machineDescription } from '../core/util/machine';
import { SeededRandom } from '../core/util/random';
import { agreementWithWasm, HEAD_GROUPS } from '../test/support/backend-agreement';
import { gaussian } from '../test/support/numeric';
import { runPythonReference } from '../test/support/python';
import type { BenchRow } from './rows';

export interface BenchHeadOptions {
  backend?: BackendChoice;
  channels?: number[];
  batch?: number;
  classes?: number;
  steps?: number;
  /** Device for the PyTorch reference: 'cpu' here, 'cuda' on a GPU machine. */
  torchDevice?: 'cpu' | 'cuda';
  /** tfjs flags set once the backend is chosen, e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 64. */
  flags?: Record<string, number | boolean>;
}

/**
 * Wall time of one full training step (expm, forward, backward, Adam, projection, fold): the median of
 * steps each closed by a read-back, and the mean of as many steps back to back with one read-back at the
 * end, which is how training runs (an asynchronous backend then overlaps one step's encoding with the
 * device's work on the one before).
 */
async function tfjsStepMs(
  channels: number,
  batch: number,
  classes: number,
  steps: number,
  foldEvery: number,
) {
  const shape = { height: 7, width: 7, channels };
  const random = new SeededRandom(channels);
  const maps = gaussian(random, batch * 49 * channels);
  const labels = Int32Array.from({ length: batch }, () => random.int(0, classes - 1));
  const head = new InfoDisentHead(shape, classes, { seed: 1, foldEvery });
  const adam = new Adam();
  const times: number[] = [];
  for (let step = 1; step <= steps + 1; step++) {
    const start = performance.now();
    (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, step)).dispose();
    // a read-back closes the step on asynchronous backends (webgpu)
    await head.classWeights().data();
    if (step > 1) times.push(performance.now() - start);
  }
  const start = performance.now();
  for (let step = steps + 2; step <= 2 * steps + 1; step++)
    (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, step)).dispose();
  await head.classWeights().data();
  const pipelined = (performance.now() - start) / steps;
  const dispatches =
    tf.getBackend() === 'webgpu'
      ? await countDispatches(async () => {
          (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, 2 * steps + 2)).dispose();
        })
      : undefined;
  head.dispose();
  adam.dispose();
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, pipelined, dispatches };
}

/** Peak RSS while training one epoch from a stored feature set of `items` items (shards of `batch`). */
async function trainingPeakRss(items: number, batch: number, channels: number): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-bench-'));
  try {
    const store = new LocalArtifactStore(dir);
    const shape = { height: 7, width: 7, channels };
    const random = new SeededRandom(items);
    const shards: FeatureManifest['shards'] = [];
    for (let start = 0, index = 0; start < items; start += batch, index++) {
      const data = gaussian(random, batch * 49 * channels);
      const key = `features/bench/shard-${index}.f32`;
      const bytes = Buffer.from(data.buffer);
      await store.put(key, bytes);
      shards.push({ key, count: batch, sha256: sha256(bytes) });
    }
    const manifest: FeatureManifest = {
      version: 1,
      key: 'features/bench',
      dataset: 'random',
      split: 'train',
      backbone: 'random',
      backboneFingerprint: 'random',
      shape,
      classCount: 10,
      count: items,
      labels: Array.from({ length: items }, (_, i) => i % 10),
      items: Array.from({ length: items }, (_, i) => `item-${i}`),
      shards,
      dtype: 'float32',
    };
    await putJson(store, 'features/bench/manifest.json', manifest);
    const set = await StoredFeatureSet.open(store, 'features/bench');
    const head = new InfoDisentHead(shape, 10, { seed: 1, foldEvery: 1 });
    let peak = process.memoryUsage().rss;
    await trainHead(
      head,
      set,
      {
        epochs: 1,
        batchSize: batch,
        seed: 1,
        groups: HEAD_GROUPS,
        schedule: 'constant',
        validationFraction: 0,
        patience: 0,
        checkpointEvery: 0,
      },
      {
        onProgress: () => {
          peak = Math.max(peak, process.memoryUsage().rss);
        },
      },
    );
    head.dispose();
    return peak;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchHead(options: BenchHeadOptions = {}): Promise<BenchRow[]> {
  const backend = await selectBackend(options.backend ?? 'auto');
  applyTfFlags(options.flags ?? {}, '--tf-flags');
  // The rows name the flags with the backend.
  const label = [
    backend,
    ...Object.entries(options.flags ?? {}).map(([name, value]) => `${name}=${value}`),
  ].join(' ');
  const channels = options.channels ?? [512, 768, 1024, 2048];
  const batch = options.batch ?? 64;
  const classes = options.classes ?? 200;
  const steps = options.steps ?? 3;
  const torchDevice = options.torchDevice ?? (backend === 'webgpu' ? 'cuda' : 'cpu');
  const machine = machineDescription();
  let torchRows:
    | { channels: number; step_ms: number; pipelined_step_ms: number; torch: string; threads: number }[]
    | null = null;
  let torchProblem = '';
  try {
    torchRows = runPythonReference('bench_head_torch.py', {
      channels,
      batch,
      height: 7,
      width: 7,
      classes,
      steps,
      warmup: 1,
      device: torchDevice,
      threads: null,
    });
  } catch (error) {
    torchProblem = `PyTorch reference unavailable: ${(error as Error).message.split('\n')[0]}`;
  }
  const rows: BenchRow[] = [];
  // Memory first: the process's RSS high-water mark (and wasm's heap, which never shrinks) would
  // otherwise carry the largest step benchmark's peak.
  const memoryRows: BenchRow[] = [];
  const memoryChannels = 512;
  for (const multiple of [4, 16]) {
    const peak = await trainingPeakRss(multiple * batch, batch, memoryChannels);
    memoryRows.push({
      case: `train 1 epoch from ${multiple * batch} stored items (${multiple}x the batch), C=${memoryChannels}`,
      metric: 'peak RSS',
      unit: 'MiB',
      value: peak / 2 ** 20,
      reference: 'target: under 2048 MiB whatever the feature-set size',
      reference_value: 2048,
      ratio: peak / 2 ** 20 / 2048,
      backend: label,
      machine,
    });
  }
  for (const c of channels) {
    const torch = torchRows?.find((row) => row.channels === c);
    const reference = torch
      ? `PyTorch ${torch.torch} ${torchDevice} (${torch.threads} threads), matrix_exp + autograd + AdamW`
      : torchProblem;
    for (const [mode, foldEvery] of [
      ['folded rotation (default)', 1],
      ['exact expm(A - A^T) each step', 0],
    ] as const) {
      const { median, pipelined, dispatches } = await tfjsStepMs(c, batch, classes, steps, foldEvery);
      if (dispatches !== undefined)
        rows.push({
          case: `C=${c} B=${batch} 7x7 K=${classes}, ${mode}`,
          metric: 'webgpu dispatches a step',
          unit: 'count',
          value: dispatches,
          reference:
            'none: a count (on an H200 a step took ~0.25 ms a dispatch at C <= 1024, bench/NOTES.md)',
          reference_value: null,
          ratio: null,
          backend: label,
          machine,
        });
      for (const [metric, value, referenceValue] of [
        ['step time', median, torch?.step_ms],
        ['step time, steps back to back', pipelined, torch?.pipelined_step_ms],
      ] as const) {
        rows.push({
          case: `C=${c} B=${batch} 7x7 K=${classes}, ${mode}`,
          metric,
          unit: 'ms',
          value,
          reference,
          reference_value: referenceValue ?? null,
          ratio: referenceValue ? value / referenceValue : null,
          backend: label,
          machine,
        });
      }
    }
  }
  if (backend !== 'wasm') {
    const relative = await agreementWithWasm(backend);
    rows.push({
      case: 'weights, U and logits of the batch after 3 steps (C=256, B=32, K=20) vs the wasm backend',
      metric: 'max relative difference',
      unit: '',
      value: relative,
      reference: 'wasm backend, same inputs and seed; float32 on both',
      reference_value: null,
      ratio: null,
      backend: label,
      machine,
    });
  }
  return [...rows, ...memoryRows];
}
