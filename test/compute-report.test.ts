import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeEntries, computeSentence, computeTable, tableDuration } from '../core/report/compute';
import { tableCsv } from '../core/report/table-formats';
import type { ComputeRecord } from '../core/util/compute-record';
import { outcomeWithCompute, computeRecordOf as record } from './support/outcomes';

const H100 = { name: 'onnxruntime webgpu', hardware: 'NVIDIA H100 80GB HBM3' };
const EPYC = { name: 'tfjs wasm', hardware: 'AMD EPYC x2' };
const H100_TRAINING = { name: 'tfjs webgpu', hardware: 'NVIDIA H100 80GB HBM3' };

const outcome = (
  name: string,
  features: Parameters<typeof outcomeWithCompute>[1]['features'],
  heads: Parameters<typeof outcomeWithCompute>[1]['heads'],
  explain?: ComputeRecord,
) => outcomeWithCompute(name, { features, heads, ...(explain ? { explain } : {}) });

test('the compute table: one row per recorded artifact, a resumed extraction timed at its rate', () => {
  const entries = computeEntries([
    outcome(
      'cub-resnet50',
      { key: 'f1', train: record(H100, 30, 3000), test: record(H100, 0.5, 0) },
      [
        { kind: 'baseline', key: 'h1', steps: 940, compute: record(EPYC, 47, 940) },
        { kind: 'infodisent', key: 'h2', steps: 940 },
      ],
      record(EPYC, 90, 11800),
    ),
  ]);
  const table = computeTable(entries)!;
  assert.deepEqual(
    table.rows.map((row) => [
      row['stage'],
      row['time'],
      row['images_per_s'],
      row['steps_per_s'],
      row['note'],
    ]),
    [
      // 3000 of 6000 images in 30 s: the set's 6000 take 60 s.
      ['extract train', '1m00s', 100, null, 'resumed: timed on 3000 of 6000 images'],
      ['extract test', null, null, null, 'resumed with every shard stored: not timed'],
      ['train baseline', '47s', null, 20, ''],
      ['explain', '1m30s', null, null, ''],
    ],
  );
  assert.equal(table.rows[0]!['seconds'], 60);
  // The machine-readable export keeps the finishing time and the full figures (not the host: exports get published).
  assert.match(
    tableCsv(table),
    /^configuration,stage,time,images_per_s,steps_per_s,runtime,hardware,note,seconds,items,finished\r\n/,
  );
  assert.match(
    tableCsv(table),
    /extract train,1m00s,100,,onnxruntime webgpu,NVIDIA H100 80GB HBM3,resumed: timed on 3000 of 6000 images,60,3000,2026-11-27T12:00:00.000Z/,
  );
  assert.ok(!tableCsv(table).includes('gpu-1'));
  assert.equal(computeTable(computeEntries([outcome('old', { key: 'f0' }, [])])), null);
});

test('the compute sentence counts an artifact that configurations share once, by runtime and hardware', () => {
  // Two seeds of one configuration share its features; each trains its own heads.
  const features = { key: 'f1', train: record(H100, 600, 6000), test: record(H100, 580, 5800) };
  const entries = computeEntries([
    outcome('cub-seed0', features, [
      { kind: 'infodisent', key: 'h0', steps: 100, compute: record(H100_TRAINING, 1800, 100) },
    ]),
    outcome('cub-seed1', features, [
      { kind: 'infodisent', key: 'h1', steps: 100, compute: record(H100_TRAINING, 1800, 100) },
    ]),
    outcome(
      'cars',
      { key: 'f2', train: record(EPYC, 3600, 8144) },
      [{ kind: 'baseline', key: 'h2', steps: 10 }],
      record(EPYC, 600, 16144),
    ),
  ]);
  assert.equal(
    computeSentence(entries),
    'Computing these results took 2h30m: ' +
      'feature extraction 1h20m (20m onnxruntime webgpu on NVIDIA H100 80GB HBM3; 1h00m tfjs wasm on AMD EPYC x2), ' +
      'head training 1h00m (tfjs webgpu on NVIDIA H100 80GB HBM3), ' +
      'explanations and analyses 10m (tfjs wasm on AMD EPYC x2). ' +
      'Not counted: 2 artifacts computed before compute records were kept.',
  );
  assert.equal(computeSentence(computeEntries([outcome('old', { key: 'f0' }, [])])), null);
});

test("the compute table's times are precise to the second under an hour", () => {
  assert.deepEqual(
    [0.04, 4.23, 9.96, 47.4, 59.6, 106.76, 3599.4, 3599.6, 3 * 3600 + 5 * 60 + 10].map(tableDuration),
    ['0s', '4.2s', '10s', '47s', '1m00s', '1m47s', '59m59s', '1h00m', '3h05m'],
  );
  const table = computeTable(
    computeEntries([outcome('smoke', { key: 'f', train: record(H100, 106.76, 6000) }, [])]),
  )!;
  assert.equal(table.rows[0]!['time'], '1m47s');
  assert.equal(table.rows[0]!['seconds'], 106.76);
});
