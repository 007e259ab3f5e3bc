import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadSweepFile, parseSweep } from '../core/config/experiment';
import { repoRoot } from '../infra/paths';
import { minimalSweepDocument } from './support/sweep-documents';

const experiments = path.join(repoRoot(), 'experiments');

test('every sweep in experiments/ validates', async () => {
  const files = readdirSync(experiments).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4);
  for (const file of files) await loadSweepFile(path.join(experiments, file));
});

test("the paper sweep holds SPEC section 3's 14 configurations", async () => {
  const sweep = await loadSweepFile(path.join(experiments, 'paper.json'));
  const pairs = sweep.configurations.map((c) => `${c.dataset.kind} x ${c.backbone.name}`).sort();
  assert.deepEqual(pairs, [
    'cub x convnext-tiny',
    'cub x densenet121',
    'cub x resnet34',
    'cub x resnet50',
    'imagenet x convnext-large',
    'imagenet x densenet121',
    'imagenet x resnet34',
    'imagenet x resnet50',
    'imagenet x swinv2-s',
    'imagenet x vit-b16',
    'stanford-cars x convnext-tiny',
    'stanford-cars x densenet121',
    'stanford-cars x resnet34',
    'stanford-cars x resnet50',
  ]);
  for (const configuration of sweep.configurations) assert.ok(configuration.backbone.file?.endsWith('.onnx'));
});

test('invalid sweeps name the failing field', () => {
  const base = minimalSweepDocument();
  assert.equal(parseSweep(base).configurations[0]!.heads.infodisent.foldEvery, 1);
  const broken = (mutate: (c: Record<string, unknown>) => void) => {
    const copy = structuredClone(base);
    mutate(copy.configurations[0] as unknown as Record<string, unknown>);
    return () => parseSweep(copy, 'broken.json');
  };
  const cases: [(c: Record<string, unknown>) => void, RegExp][] = [
    [
      (c) => (c['backbone'] = { name: 'resnet-9000' }),
      /configurations\[0\]\.backbone\.name: unknown backbone 'resnet-9000'/,
    ],
    [(c) => (c['backbone'] = { name: 'r50', file: '/m/r50.onnx' }), /configurations\[0\]\.backbone\.preset/],
    [(c) => (c['epochs'] = 3), /configurations\[0\]: .*'epochs'/],
    [(c) => (c['dataset'] = { kind: 'cub' }), /configurations\[0\]\.dataset\.root/],
    [(c) => (c['dataset'] = { kind: 'coco', root: '/x' }), /configurations\[0\]\.dataset\.kind/],
  ];
  for (const [mutate, pattern] of cases)
    assert.throws(
      broken(mutate),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
});
