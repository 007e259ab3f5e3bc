#!/usr/bin/env node
/**
 * Backbone feature extraction on a GPU through onnxruntime-node's WebGPU provider, for the GPU machine
 * (see shared/gpu/README.md and bench/gpu-session.sh, which runs this there with the head bench). The
 * models are exported there, as they exceed what travels:
 *
 *   python3 infra/export_backbones.py resnet50 --weights none --out /tmp/m
 *   python3 infra/export_backbones.py resnet50 --weights none --fp16 --out /tmp/m
 *   .gpu/bin/node dist/bench/gpu-extract.js /tmp/m/resnet50.onnx /tmp/m/resnet50-fp16.onnx \
 *     [--batch 64,128] [--images 1024] [--repeats 20] [--layouts NHWC,NCHW] [--validation basic,disabled]
 *     [--provider webgpu] [--processes 3] [--out FILE]
 *   .gpu/bin/node dist/bench/gpu-extract.js MODEL.onnx ... --sessions 1,2,4 [--batch 64] [--start-at MS]
 *
 * For each model and provider setting (the layout its convolutions run in, Dawn's validation): images/s
 * of the backbone alone on one repeated batch at each batch size, and the max abs difference of its
 * features from the CPU provider running the first model (pass the float32 one first). Then, with the
 * provider's default settings, the whole extraction as the extraction stage runs it (extractFeatures with
 * the backbone in its own thread: decode and preprocess on every core but two, the next batch prepared
 * and computed while the current one is stored, shards written to a local store), the same with an
 * instant backbone (the host side's ceiling), and again in `--processes` processes (features.processes).
 * With `--sessions N,...`, only this instead: N sessions of each model, each in its own thread as the
 * extraction stage opens one, running batches at once; whether the device has room for more than one
 * run() at a time (one run uploads, computes and reads back in turn). One process's WebGPU sessions
 * cannot run at once (below), so on a GPU start several processes with `--sessions 1 --start-at MS`.
 * With `--torch` (default when python3 imports torch and torchvision), PyTorch on the same GPU times the
 * same architecture in the same run (reference/extract_reference.py, task 'gpu'). Prints a table last;
 * writes all figures to --out (default gpu-extract.json).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Backbone } from '../core/backbones/backbone';
import { openBackboneInThread } from '../core/backbones/backbone-thread';
import {
  loadOnnxBackbone,
  type OnnxProvider,
  type OnnxWebGpuSettings,
} from '../core/backbones/onnx-backbone';
import { PRESETS, type PresetName } from '../core/data/preprocess';
import { machineDescription } from '../core/util/machine';
import { plural } from '../core/util/plural';
import { sizeLibuvPool } from '../infra/libuv-pool';
import { repoRoot } from '../infra/paths';
import { instantResNet50Maps, timeExtraction, timeProcessExtraction, writeImages } from './extract';

interface Options {
  models: string[];
  batches: number[];
  images: number;
  repeats: number;
  provider: OnnxProvider;
  settings: OnnxWebGpuSettings[];
  torch: boolean;
  /** Process counts to time the whole extraction in (extractFeaturesInProcesses) after one process's. */
  processes: number[];
  /** Concurrent sessions to time instead of the settings sweep; empty: the sweep. */
  sessions: number[];
  /** With --sessions: the time (ms since the epoch) to start at once the sessions are warm, so that
   * several processes started together run their batches at the same time. */
  startAt?: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const list = (value: string) => value.split(',').filter(Boolean);
  let layouts = ['NHWC', 'NCHW'] as NonNullable<OnnxWebGpuSettings['preferredLayout']>[];
  let validation = ['basic', 'disabled'] as NonNullable<OnnxWebGpuSettings['validationMode']>[];
  const options: Omit<Options, 'settings'> = {
    models: [],
    batches: [64, 128],
    images: 1024,
    repeats: 20,
    provider: 'webgpu',
    torch: spawnSync('python3', ['-c', 'import torch, torchvision']).status === 0,
    sessions: [],
    processes: [3],
    out: 'gpu-extract.json',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--batch') options.batches = list(value()).map(Number);
    else if (arg === '--images') options.images = Number(value());
    else if (arg === '--repeats') options.repeats = Number(value());
    else if (arg === '--provider') options.provider = value() as OnnxProvider;
    else if (arg === '--layouts') layouts = list(value()) as typeof layouts;
    else if (arg === '--validation') validation = list(value()) as typeof validation;
    else if (arg === '--out') options.out = value();
    else if (arg === '--sessions') options.sessions = list(value()).map(Number);
    else if (arg === '--start-at') options.startAt = Number(value());
    else if (arg === '--processes') options.processes = list(value()).map(Number);
    else if (arg === '--torch') options.torch = true;
    else if (arg === '--no-torch') options.torch = false;
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else options.models.push(path.resolve(arg));
  }
  if (options.models.length === 0)
    throw new Error('usage: gpu-extract.js MODEL.onnx [MODEL-fp16.onnx ...] [options]');
  const settings = layouts.flatMap((preferredLayout) =>
    validation.map((validationMode) => ({ preferredLayout, validationMode })),
  );
  return { ...options, settings: options.provider === 'webgpu' ? settings : [{}] };
}

/** The export sidecar (infra/export_backbones.py) of a model: its preset and architecture. */
function sidecarOf(file: string): { preset: PresetName; arch?: string } {
  const sidecar = file.replace(/\.onnx$/, '.json');
  if (!existsSync(sidecar)) return { preset: 'resnet50', arch: 'resnet50' };
  const json = JSON.parse(readFileSync(sidecar, 'utf8')) as { preset: PresetName; arch: string };
  return { preset: json.preset, arch: json.arch };
}

/** The provider's settings, and the session entries INFODISENT_ORT_CONFIG adds to every session. */
const describeSettings = (settings: OnnxWebGpuSettings) =>
  [...Object.values(settings), process.env['INFODISENT_ORT_CONFIG'] ?? ''].filter(Boolean).join(' ') ||
  'provider defaults';

interface TorchTiming {
  arch: string;
  dtype: string;
  batch: number;
  images_per_second: number;
  device: string;
}

/**
 * Images/s of `count` sessions of `model` at once, each in a thread of its own, each running `repeats`
 * batches of `batch` images back to back.
 */
async function concurrentRate(
  model: string,
  provider: OnnxProvider,
  count: number,
  batch: number,
  repeats: number,
  startAt?: number,
): Promise<number> {
  const { preset } = sidecarOf(model);
  // One process's sessions share onnxruntime's one WebGPU device, whose command encoding is not
  // thread-safe: two running at once fail ("Command encoding already finished"), and two set up at once
  // crash. So sessions beyond one are for the CPU provider; on a GPU, time processes (--start-at).
  const backbones: Backbone[] = [];
  for (let i = 0; i < count; i++)
    backbones.push(
      await openBackboneInThread({ name: `${path.basename(model)}#${i}`, file: model, preset, provider }),
    );
  try {
    const side = backbones[0]!.inputSize;
    // What extraction sends: the crops' pixels where the backbone takes them.
    const pixels = Uint8Array.from({ length: batch * side * side * 3 }, (_, i) => (i * 7) % 256);
    const images = new Float32Array(batch * side * side * 3).map((_, i) => Math.sin(i * 0.001) * 2);
    const run = (b: Backbone) =>
      b.extractPixels ? b.extractPixels(pixels, batch) : b.extract(images, batch);
    for (const b of backbones) await run(b); // shaders for this batch's shapes
    if (startAt !== undefined) await new Promise((done) => setTimeout(done, startAt - Date.now()));
    const start = performance.now();
    await Promise.all(
      backbones.map(async (b) => {
        for (let r = 0; r < repeats; r++) await run(b);
      }),
    );
    return (count * repeats * batch) / ((performance.now() - start) / 1000);
  } finally {
    for (const b of backbones) b.dispose();
  }
}

async function timeSessions(options: Options, results: Record<string, unknown>[], table: string[][]) {
  for (const model of options.models)
    for (const batch of options.batches)
      for (const count of options.sessions) {
        const rate = await concurrentRate(
          model,
          options.provider,
          count,
          batch,
          options.repeats,
          options.startAt,
        );
        const measure = `backbone only, ${plural(count, 'session')} at once, batch ${batch}`;
        results.push({
          model: path.basename(model),
          provider: options.provider,
          batch,
          sessions: count,
          measure,
          imagesPerSecond: rate,
        });
        table.push([
          options.provider,
          path.basename(model),
          describeSettings({}),
          measure,
          rate.toFixed(0),
          '-',
        ]);
      }
}

async function main(): Promise<void> {
  sizeLibuvPool();
  const options = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gpu-extract-'));
  const results: Record<string, unknown>[] = [];
  const table: string[][] = [];
  try {
    if (options.sessions.length > 0) await timeSessions(options, results, table);
    else await sweepSettings(options, dir, results, table);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await writeFile(options.out, `${JSON.stringify({ machine: machineDescription(), results }, null, 2)}\n`);
  printTable(table, options.out);
}

/**
 * Each model under each provider setting (backbone only, every batch size, features against the CPU's),
 * the whole extraction with the provider's defaults, then PyTorch on the same card.
 */
async function sweepSettings(
  options: Options,
  dir: string,
  results: Record<string, unknown>[],
  table: string[][],
): Promise<void> {
  const first = sidecarOf(options.models[0]!);
  const side = PRESETS[first.preset].cropSize;
  const largest = Math.max(...options.batches);
  const probe = new Float32Array(largest * side * side * 3);
  for (let i = 0; i < probe.length; i++) probe[i] = Math.sin(i * 0.001) * 2;
  const pixels = Uint8Array.from(probe, (v) => Math.round((v + 2) * 63));
  const check = options.batches[0]!;
  const cpu = await loadOnnxBackbone({ file: options.models[0]!, preset: first.preset, provider: 'cpu' });
  const expected = await cpu.extract(probe.subarray(0, check * side * side * 3), check);
  cpu.dispose();
  let range = 0;
  for (const v of expected) range = Math.max(range, Math.abs(v));

  for (const model of options.models) {
    const { preset } = sidecarOf(model);
    for (const [index, webgpu] of options.settings.entries()) {
      const backbone = await loadOnnxBackbone({ file: model, preset, provider: options.provider, webgpu });
      const features = await backbone.extract(probe.subarray(0, check * side * side * 3), check);
      let diff = 0;
      for (let i = 0; i < features.length; i++) diff = Math.max(diff, Math.abs(features[i]! - expected[i]!));
      const setting = describeSettings(webgpu);
      for (const batch of options.batches) {
        // The float input (normalised values) and the pixel input (uint8 crops, extraction's path).
        const values = batch * side * side * 3;
        const inputs = [
          { input: 'normalised float32', run: () => backbone.extract(probe.subarray(0, values), batch) },
          { input: 'uint8 pixels', run: () => backbone.extractPixels!(pixels.subarray(0, values), batch) },
        ];
        for (const { input, run } of inputs) {
          await run(); // shaders for this batch's shapes
          const t = performance.now();
          for (let r = 0; r < options.repeats; r++) await run();
          const rate = (options.repeats * batch) / ((performance.now() - t) / 1000);
          results.push({
            model: path.basename(model),
            provider: backbone.provider,
            providerFailures: backbone.providerFailures,
            webgpu,
            batch,
            input,
            measure: 'backbone only',
            imagesPerSecond: rate,
            maxAbsDiffFromCpuFp32: diff,
            featureRange: range,
          });
          table.push([
            backbone.provider,
            path.basename(model),
            setting,
            `backbone only, ${input}, batch ${batch}`,
            rate.toFixed(0),
            `${diff.toPrecision(2)} / ${range.toPrecision(3)}`,
          ]);
        }
      }
      if (index === 0) {
        const files = await writeImages(dir, Math.min(options.images, 256));
        const cycled = Array.from({ length: options.images }, (_, i) => files[i % files.length]!);
        const batch = backbone.batchSize ?? Math.max(...options.batches);
        const threads = Math.max(1, os.availableParallelism() - 2);
        // As the extraction stage runs it: the backbone in its own thread, with the provider's defaults.
        const threaded = await openBackboneInThread({
          name: path.basename(model),
          file: model,
          preset,
          provider: options.provider,
        });
        const timing = await timeExtraction(threaded, cycled, dir, batch);
        threaded.dispose();
        const rate = timing.images / timing.total!;
        results.push({
          model: path.basename(model),
          provider: backbone.provider,
          batch,
          measure: 'extractFeatures: decode + preprocess + backbone + shards',
          imagesPerSecond: rate,
          preprocessThreads: threads,
        });
        table.push([
          backbone.provider,
          path.basename(model),
          describeSettings({}),
          `extractFeatures (decoding in ${plural(threads, 'thread')}), batch ${batch}`,
          rate.toFixed(0),
          '-',
        ]);
        // The host side alone: what this machine's cores can feed any backbone.
        const ceiling = await timeExtraction(instantResNet50Maps(), cycled, dir, batch);
        const ceilingRate = ceiling.images / ceiling.total!;
        const measure =
          "extractFeatures with an instant backbone of ResNet-50's maps: the host side's ceiling";
        results.push({ model: 'none', provider: 'none', batch, measure, imagesPerSecond: ceilingRate });
        table.push(['none', 'none', '-', measure, ceilingRate.toFixed(0), '-']);
        // The same in several processes (features.processes), each process's start included.
        for (const processes of options.processes) {
          const spec = { name: path.basename(model), file: model, preset, provider: options.provider };
          const seconds = await timeProcessExtraction(spec, cycled, dir, processes);
          const measure = `extractFeaturesInProcesses (${processes} processes, their start included)`;
          const processRate = (options.images / seconds).toFixed(0);
          results.push({
            model: path.basename(model),
            provider: backbone.provider,
            measure,
            processes,
            imagesPerSecond: options.images / seconds,
          });
          table.push([
            backbone.provider,
            path.basename(model),
            describeSettings({}),
            measure,
            processRate,
            '-',
          ]);
        }
      }
      backbone.dispose();
    }
  }

  if (options.torch && first.arch) {
    const script = path.join(repoRoot(), 'reference', 'extract_reference.py');
    const input = JSON.stringify({
      task: 'gpu',
      arch: first.arch,
      batches: options.batches,
      side,
      repeats: options.repeats,
    });
    const torch = JSON.parse(execFileSync('python3', [script], { input, encoding: 'utf8' })) as TorchTiming[];
    for (const timing of torch) {
      results.push({ reference: 'pytorch', ...timing });
      table.push([
        `torch ${timing.device}`,
        `${timing.arch} ${timing.dtype}`,
        '-',
        `backbone only, batch ${timing.batch}`,
        timing.images_per_second.toFixed(0),
        '-',
      ]);
    }
  }
}

function printTable(table: string[][], out: string): void {
  const header = [
    'runtime',
    'model',
    'provider settings',
    'measure',
    'images/s',
    'max abs diff / range vs cpu fp32',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  for (const line of [header, ...table])
    process.stdout.write(`${line.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
  process.stdout.write(`machine: ${machineDescription()}; figures in ${out}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
