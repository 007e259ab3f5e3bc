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
  // SPEC section 3's published top-1 figures (CUB and Cars) and Table 8's two RV examples travel with it.
  const reported = Object.fromEntries(sweep.configurations.map((c) => [c.name, c.reported]));
  assert.deepEqual(reported['cub-resnet50']?.baseline, { top1: 83.2, rv: 7.8 });
  assert.deepEqual(reported['cub-resnet50']?.infodisent, { top1: 83.0, rv: 4.9 });
  assert.deepEqual(reported['cars-convnext-tiny']?.infodisent, { top1: 90.2 });
  assert.deepEqual(reported['imagenet-convnext-large']?.baseline, { rv: 3.0 });
  const withTop1 = sweep.configurations.filter((c) => c.reported?.infodisent?.top1 !== undefined);
  assert.equal(withTop1.length, 8);
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
    [(c) => (c['reported'] = { baseline: { top1: 80 } }), /configurations\[0\]\.reported\.source/],
    [
      (c) => (c['reported'] = { source: 'x', infodisent: { top1: 83.5e2 } }),
      /configurations\[0\]\.reported\.infodisent\.top1/,
    ],
    [(c) => (c['reported'] = { source: 'x', baseline: { acc: 80 } }), /reported\.baseline: .*'acc'/],
  ];
  for (const [mutate, pattern] of cases)
    assert.throws(
      broken(mutate),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
});
