#!/usr/bin/env node
/**
 * ResNet-50 (or any exported backbone) feature extraction on a GPU through onnxruntime-node's WebGPU
 * provider, for the GPU machine (see shared/gpu/README.md). onnxruntime bundles Dawn, so only it and
 * sharp (which decodes) need packing; the models are exported there, as they exceed what travels:
 *
 *   here:  npx tsc -p . && node ../shared/gpu/pack.mjs onnxruntime-node sharp   (carry dist and .gpu)
 *   there: source .gpu/unpack.sh
 *          python3 infra/export_backbones.py resnet50 --weights none --out /tmp/m
 *          python3 infra/export_backbones.py resnet50 --weights none --fp16 --out /tmp/m
 *          .gpu/bin/node dist/bench/gpu-extract.js /tmp/m/resnet50.onnx /tmp/m/resnet50-fp16.onnx \
 *            [--batch 64] [--images 1024] [--workers 12] [--repeats 20] [--provider webgpu] [--out FILE]
 *
 * For each model: images/s of the backbone alone on one repeated batch, and of the whole extraction
 * with decoding and preprocessing (core/data/preprocess.ts) in worker threads overlapped with
 * inference; and the max abs difference of its features from the CPU provider running the first
 * model (pass the float32 one first). With `--torch` (default when python3 imports torch and
 * torchvision), PyTorch on the same GPU times the same architecture at the same batch in the same run
 * (reference/extract_reference.py, task 'gpu'). Prints a table last; writes all figures to --out
 * (default gpu-extract.json).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadOnnxBackbone, type OnnxBackbone, type OnnxProvider } from '../core/backbones/onnx-backbone';
import { PRESETS, type PresetName } from '../core/data/preprocess';
import { PreprocessPool } from '../core/data/preprocess-pool';
import { repoRoot } from '../infra/paths';
import { machineDescription } from './machine';

interface Options {
  models: string[];
  batch: number;
  images: number;
  workers: number;
  repeats: number;
  provider: OnnxProvider;
  torch: boolean;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    models: [],
    batch: 64,
    images: 1024,
    workers: Math.max(1, os.cpus().length - 4),
    repeats: 20,
    provider: 'webgpu',
    torch: spawnSync('python3', ['-c', 'import torch, torchvision']).status === 0,
    out: 'gpu-extract.json',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--batch') options.batch = Number(value());
    else if (arg === '--images') options.images = Number(value());
    else if (arg === '--workers') options.workers = Number(value());
    else if (arg === '--repeats') options.repeats = Number(value());
    else if (arg === '--provider') options.provider = value() as OnnxProvider;
    else if (arg === '--out') options.out = value();
    else if (arg === '--torch') options.torch = true;
    else if (arg === '--no-torch') options.torch = false;
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else options.models.push(path.resolve(arg));
  }
  if (options.models.length === 0)
    throw new Error('usage: gpu-extract.js MODEL.onnx [MODEL-fp16.onnx ...] [options]');
  return options;
}

/** The export sidecar (infra/export_backbones.py) of a model: its preset and architecture. */
function sidecarOf(file: string): { preset: PresetName; arch?: string } {
  const sidecar = file.replace(/\.onnx$/, '.json');
  if (!existsSync(sidecar)) return { preset: 'resnet50', arch: 'resnet50' };
  const json = JSON.parse(readFileSync(sidecar, 'utf8')) as { preset: PresetName; arch: string };
  return { preset: json.preset, arch: json.arch };
}

/** 500 x 375 JPEGs (CUB-like), cycled to make up the image count. */
async function writeImages(dir: string, count: number): Promise<string[]> {
  const width = 500;
  const height = 375;
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const pixels = Buffer.alloc(width * height * 3);
    for (let p = 0; p < pixels.length; p++) pixels[p] = (p * (i + 7) + ((p / 1500) | 0) * 13) & 255;
    const file = path.join(dir, `image-${i}.jpg`);
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
    files.push(file);
  }
  return files;
}

/** Decode and preprocess in `workers` threads, two batches ahead, while the backbone runs in this thread. */
async function overlappedExtraction(
  backbone: OnnxBackbone,
  files: string[],
  options: Options,
  preset: PresetName,
): Promise<{ seconds: number; modelSeconds: number; images: number }> {
  const pool = PreprocessPool.start(options.workers);
  const batches: string[][] = [];
  for (let i = 0; i < options.images; i += options.batch)
    batches.push(
      Array.from(
        { length: Math.min(options.batch, options.images - i) },
        (_, k) => files[(i + k) % files.length]!,
      ),
    );
  const ready = batches.slice(0, 2).map((batch) => pool.prepare(batch, preset));
  const start = performance.now();
  let modelSeconds = 0;
  let images = 0;
  try {
    for (let id = 0; id < batches.length; id++) {
      const data = await ready[id]!;
      if (id + 2 < batches.length) ready.push(pool.prepare(batches[id + 2]!, preset));
      const t = performance.now();
      await backbone.extract(data, batches[id]!.length);
      modelSeconds += (performance.now() - t) / 1000;
      images += batches[id]!.length;
    }
  } finally {
    await pool.close();
  }
  return { seconds: (performance.now() - start) / 1000, modelSeconds, images };
}

interface TorchTiming {
  arch: string;
  dtype: string;
  batch: number;
  images_per_second: number;
  device: string;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gpu-extract-'));
  const results: Record<string, unknown>[] = [];
  const table: string[][] = [];
  try {
    const files = await writeImages(dir, Math.min(options.images, 256));
    const first = sidecarOf(options.models[0]!);
    const side = PRESETS[first.preset].cropSize;
    const probe = new Float32Array(options.batch * side * side * 3);
    for (let i = 0; i < probe.length; i++) probe[i] = Math.sin(i * 0.001) * 2;
    const cpu = await loadOnnxBackbone({ file: options.models[0]!, preset: first.preset, provider: 'cpu' });
    const cpuStart = performance.now();
    const expected = await cpu.extract(probe, options.batch);
    const cpuSeconds = (performance.now() - cpuStart) / 1000;
    cpu.dispose();
    let range = 0;
    for (const v of expected) range = Math.max(range, Math.abs(v));
    table.push([
      'cpu provider',
      path.basename(options.models[0]!),
      'backbone, 1 batch',
      (options.batch / cpuSeconds).toFixed(0),
      '-',
    ]);

    for (const model of options.models) {
      const { preset } = sidecarOf(model);
      const backbone = await loadOnnxBackbone({ file: model, preset, provider: options.provider });
      const warm = performance.now();
      const features = await backbone.extract(probe, options.batch);
      const warmSeconds = (performance.now() - warm) / 1000;
      let diff = 0;
      for (let i = 0; i < features.length; i++) diff = Math.max(diff, Math.abs(features[i]! - expected[i]!));
      const t = performance.now();
      for (let r = 0; r < options.repeats; r++) await backbone.extract(probe, options.batch);
      const modelOnly = (options.repeats * options.batch) / ((performance.now() - t) / 1000);
      const overlapped = await overlappedExtraction(backbone, files, options, preset);
      backbone.dispose();
      const row = {
        model: path.basename(model),
        provider: backbone.provider,
        providerFailures: backbone.providerFailures,
        batch: options.batch,
        firstBatchSeconds: warmSeconds,
        backboneImagesPerSecond: modelOnly,
        extractionImagesPerSecond: overlapped.images / overlapped.seconds,
        extractionBackboneShare: overlapped.modelSeconds / overlapped.seconds,
        decodeWorkers: options.workers,
        maxAbsDiffFromCpuFp32: diff,
        featureRange: range,
      };
      results.push(row);
      table.push(
        [
          row.provider,
          row.model,
          'backbone only',
          modelOnly.toFixed(0),
          `${diff.toPrecision(2)} / ${range.toPrecision(3)}`,
        ],
        [
          row.provider,
          row.model,
          `decode+preprocess (${options.workers} workers) overlapped`,
          row.extractionImagesPerSecond.toFixed(0),
          '-',
        ],
      );
    }

    if (options.torch && first.arch) {
      const script = path.join(repoRoot(), 'reference', 'extract_reference.py');
      const input = JSON.stringify({
        task: 'gpu',
        arch: first.arch,
        batch: options.batch,
        side,
        repeats: options.repeats,
      });
      const torch = JSON.parse(
        execFileSync('python3', [script], { input, encoding: 'utf8' }),
      ) as TorchTiming[];
      for (const timing of torch) {
        results.push({ reference: 'pytorch', ...timing });
        table.push([
          `torch ${timing.device}`,
          `${timing.arch} ${timing.dtype}`,
          'backbone only',
          timing.images_per_second.toFixed(0),
          '-',
        ]);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await writeFile(options.out, `${JSON.stringify({ machine: machineDescription(), results }, null, 2)}\n`);
  const header = ['runtime', 'model', 'measure', 'images/s', 'max abs diff / range vs cpu fp32'];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  for (const line of [header, ...table])
    process.stdout.write(`${line.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
  process.stdout.write(
    `machine: ${machineDescription()}; batch ${options.batch}; figures in ${options.out}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
