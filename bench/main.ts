#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import type { BackendChoice } from '../core/tf/backend';
import { sizeLibuvPool } from '../infra/libuv-pool';
import { repoRoot } from '../infra/paths';
import type { BenchRow } from './rows';

sizeLibuvPool();

const numbers = (value: string) => value.split(',').map(Number);

function printTable(rows: BenchRow[]): void {
  const format = (v: number | null) =>
    v === null ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
  const lines = rows.map((row) => [
    row.case,
    row.metric,
    `${format(row.value)} ${row.unit}`,
    row.reference_value === null ? '—' : `${format(row.reference_value)} ${row.unit}`,
    row.ratio === null ? '—' : `${row.ratio.toFixed(2)}x`,
    row.backend,
  ]);
  const header = ['case', 'metric', 'value', 'reference', 'ratio', 'backend'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const render = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${render(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const line of lines) process.stdout.write(`${render(line)}\n`);
  const references = [...new Set(rows.map((row) => row.reference))];
  process.stdout.write(
    `\nreference: ${references.join('\n           ')}\nmachine: ${rows[0]?.machine ?? ''}\n`,
  );
}

async function save(name: string, rows: BenchRow[], outDir?: string): Promise<void> {
  const dir = outDir ?? path.join(repoRoot(), 'bench-results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, `${JSON.stringify(rows, null, 2)}\n`);
  printTable(rows);
  process.stdout.write(`written: ${file}\n`);
}

// Each bench is loaded when it runs, so one needs only its own packages: the head bench on a GPU machine
// runs without Temporal's or onnxruntime's packages (bench/gpu-pack.sh packs what it needs).
const program = new Command()
  .name('bench')
  .description('benchmarks: each prints a table and writes bench-results/NAME.json');
program.option('--out <dir>', 'folder for NAME.json (default bench-results/)');

program
  .command('head')
  .description('InfoDisent training step at several channel counts, next to PyTorch; peak training memory')
  .option('--backend <name>', 'tfjs backend: auto, webgpu, tensorflow, wasm, cpu', 'auto')
  .option('--channels <list>', 'channel counts', '512,768,1024,2048')
  .option('--steps <n>', 'timed steps per case (median reported)', '3')
  .option('--torch-device <device>', 'PyTorch reference device (default: cuda with webgpu, else cpu)')
  .option('--tf-flags <list>', 'tfjs flags NAME=VALUE,..., e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64')
  .action(
    async (options: {
      backend: string;
      channels: string;
      steps: string;
      torchDevice?: 'cpu' | 'cuda';
      tfFlags?: string;
    }) => {
      const { benchHead } = await import('./head.js');
      const { parseTfFlags } = await import('../core/tf/backend.js');
      const flags = parseTfFlags(options.tfFlags ?? '', '--tf-flags');
      const rows = await benchHead({
        backend: options.backend as BackendChoice,
        channels: numbers(options.channels),
        steps: Number(options.steps),
        flags,
        ...(options.torchDevice ? { torchDevice: options.torchDevice } : {}),
      });
      await save('head', rows, program.opts<{ out?: string }>().out);
    },
  );

program
  .command('matmul')
  .description(
    "the head step's large matrix products: tf.matMul and, on webgpu, the tiled kernel, next to PyTorch",
  )
  .option('--backend <name>', 'tfjs backend: auto, webgpu, tensorflow, wasm, cpu', 'auto')
  .option('--channels <list>', 'channel counts', '512,1024,2048')
  .option('--reps <n>', 'products timed back to back per case', '10')
  .action(async (options: { backend: string; channels: string; reps: string }) => {
    const { benchMatMul } = await import('./matmul.js');
    const rows = await benchMatMul({
      backend: options.backend as BackendChoice,
      channels: numbers(options.channels),
      reps: Number(options.reps),
    });
    await save('matmul', rows, program.opts<{ out?: string }>().out);
  });

program
  .command('extract')
  .description(
    "decode + preprocess + backbone throughput on the CPU (MobileNetV2, an ONNX model), next to PyTorch; the host side's ceiling next to a DataLoader",
  )
  .option(
    '--onnx <file>',
    'ONNX backbone to time (default: $INFODISENT_ONNX_RESNET50, else a small generated model)',
  )
  .option('--rounds <n>', 'alternating rounds of the Node side and the reference; each keeps its best', '3')
  .option('--threads <n>', 'onnxruntime and PyTorch threads (default: the number of cores)')
  .option(
    '--host-images <n>',
    "images through the host side's ceiling (an instant backbone with ResNet-50's maps)",
    '512',
  )
  .action(async (options: { onnx?: string; rounds: string; threads?: string; hostImages: string }) => {
    const { benchExtract } = await import('./extract.js');
    const rows = await benchExtract({
      rounds: Number(options.rounds),
      hostImages: Number(options.hostImages),
      ...(options.threads ? { threads: Number(options.threads) } : {}),
      ...(options.onnx ? { onnxFile: options.onnx } : {}),
    });
    await save('extract', rows, program.opts<{ out?: string }>().out);
  });

program
  .command('sweep')
  .description('a sweep through Temporal against the same stages called directly: orchestration overhead')
  .argument('[sweep-file]', 'sweep configuration', path.join(repoRoot(), 'experiments', 'smoke.json'))
  .action(async (file: string) => {
    const { benchSweep } = await import('./sweep.js');
    await save('sweep', await benchSweep(file), program.opts<{ out?: string }>().out);
  });

program
  .command('analyze')
  .description(
    'RV coefficient and 95%-channel ablation over generated ImageNet-size features: time and peak memory',
  )
  .option('--scale <fraction>', 'fraction of the 50,000 images', '1')
  .action(async (options: { scale: string }) => {
    const { benchAnalyze } = await import('./analyze.js');
    await save(
      'analyze',
      await benchAnalyze({ scale: Number(options.scale) }),
      program.opts<{ out?: string }>().out,
    );
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
