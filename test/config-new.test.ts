import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { detectDatasetLayout } from '../core/data/loaders/detect';
import { runCli } from './support/cli';
import {
  writeCarsDevkit,
  writeClassFolders,
  writeCub,
  writeDogs,
  writeImage,
  writeImageNet,
} from './support/dataset-trees';
import { convStackModel } from './support/onnx-graph';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'config-new-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A small CUB-200-2011 tree under `root`/CUB_200_2011 (train and test images of two classes). */
async function writeSmallCub(root: string): Promise<void> {
  await writeCub(
    path.join(root, 'CUB_200_2011'),
    ['001.Black_footed_Albatross', '002.Laysan_Albatross'],
    [
      { classId: 1, file: 'a1.jpg', train: true, box: [1, 1, 5, 5] },
      { classId: 1, file: 'a2.jpg', train: false, box: [1, 1, 5, 5] },
      { classId: 2, file: 'b1.jpg', train: true, box: [1, 1, 5, 5] },
      { classId: 2, file: 'b2.jpg', train: false, box: [1, 1, 5, 5] },
    ],
  );
}

test('each official layout and class-folder tree is told by what its folder holds', async () => {
  const roots = {
    cub: path.join(dir, 'cub-parent'),
    cars: path.join(dir, 'cars'),
    dogs: path.join(dir, 'dogs'),
    imagenet: path.join(dir, 'imagenet'),
    split: path.join(dir, 'split'),
    unsplit: path.join(dir, 'unsplit'),
  };
  await writeSmallCub(roots.cub);
  await writeCarsDevkit(
    roots.cars,
    ['A', 'B'],
    [{ fname: '00001.jpg', classNo: 1, box: [1, 1, 5, 5] }],
    [{ fname: '00001.jpg', classNo: 2, box: [1, 1, 5, 5] }],
  );
  const breeds = [{ wnid: 'n02085620', name: 'Chihuahua' }];
  await writeDogs(
    roots.dogs,
    breeds,
    [{ breed: 1, id: 'n02085620_1', boxes: [[1, 1, 5, 5]] }],
    [{ breed: 1, id: 'n02085620_2', boxes: [[1, 1, 5, 5]] }],
  );
  await writeImageNet(roots.imagenet, [{ wnid: 'n01440764', name: 'tench', ilsvrcId: 1 }], 1, [], {
    val: 'folders',
  });
  await writeClassFolders(roots.split, { train: { ant: ['1.jpg'] }, val: { ant: ['2.jpg'] } });
  await writeClassFolders(roots.unsplit, { '.': { ant: ['1.jpg'], bee: ['2.jpg'] } });
  const found = Object.fromEntries(
    await Promise.all(
      Object.entries(roots).map(async ([name, root]) => [name, await detectDatasetLayout(root)] as const),
    ),
  );
  assert.deepEqual(found, {
    cub: { kind: 'cub' },
    cars: { kind: 'stanford-cars' },
    dogs: { kind: 'stanford-dogs' },
    imagenet: { kind: 'imagenet' },
    split: { kind: 'class-folders' },
    unsplit: { kind: 'class-folders', unsplit: true },
  });
  const empty = path.join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(detectDatasetLayout(empty), (error: Error) => {
    assert.ok(error.message.startsWith(`${empty}: no dataset layout recognised: looked for CUB-200-2011's`));
    assert.ok(error.message.includes("ImageNet's train/n01440764/ (WordNet id) folders"), error.message);
    return true;
  });
});

test('config new writes a sweep of every dataset with every backbone that validates and plans', async () => {
  const cub = path.join(dir, 'new-cub');
  await writeSmallCub(cub);
  const birds = path.join(dir, 'My Birds');
  for (const name of ['finch', 'wren'])
    for (let i = 0; i < 3; i++) await writeImage(path.join(birds, name, `${i}.jpg`), 40, 30, i);
  const models = path.join(dir, 'models');
  await mkdir(models, { recursive: true });
  const { model } = convStackModel({
    side: 224,
    stages: [{ channels: 8, stride: 32 }],
    seed: 1,
    output: 'nchw',
  });
  const onnx = path.join(models, 'Conv_Net.onnx');
  await writeFile(onnx, model);
  await writeFile(path.join(models, 'Conv_Net.json'), JSON.stringify({ arch: 'conv', preset: 'resnet50' }));

  const out = path.join(dir, 'mine.json');
  const args = ['config', 'new', '--dataset', cub, birds, '--backbone', onnx, 'nsfwjs-mobilenet-v2'];
  const written = await runCli([...args, '--test-fraction', '0.34', '--out', out]);
  assert.equal(written.code, 0, written.stderr);
  assert.match(
    written.stderr,
    new RegExp(`^wrote ${out}: 4 configurations; next, \`infodisent plan ${out}\``, 'm'),
  );
  const sweep = JSON.parse(await readFile(out, 'utf8'));
  assert.equal(sweep.name, 'mine');
  assert.equal(
    sweep.$schema,
    path.relative(dir, path.join(process.cwd(), 'experiments', 'schema', 'sweep.schema.json')),
  );
  assert.deepEqual(
    sweep.configurations.map((c: { name: string }) => c.name),
    ['cub-conv-net', 'cub-nsfwjs-mobilenet-v2', 'my-birds-conv-net', 'my-birds-nsfwjs-mobilenet-v2'],
  );
  assert.deepEqual(sweep.configurations[0].backbone, { name: 'conv-net', file: onnx, preset: 'resnet50' });
  assert.deepEqual(sweep.configurations[2].dataset, {
    kind: 'class-folders',
    name: 'my-birds',
    root: birds,
    testFraction: 0.34,
  });
  const paper = JSON.parse(await readFile(path.join(process.cwd(), 'experiments', 'paper.json'), 'utf8'));
  assert.deepEqual(sweep.configurations[3].heads, paper.configurations[0].heads);

  const validated = await runCli(['config', 'validate', out]);
  assert.equal(validated.code, 0, validated.stderr);
  const plan = await runCli(['plan', out, '--json'], { INFODISENT_HOME: path.join(dir, 'home') });
  assert.equal(plan.code, 0, plan.stderr);
  const planned = JSON.parse(plan.stdout);
  assert.deepEqual(
    planned.planned.map((c: { dataset: { train: number; test: number } }) => [
      c.dataset.train,
      c.dataset.test,
    ]),
    [
      [2, 2],
      [2, 2],
      [4, 2],
      [4, 2],
    ],
  );

  const again = await runCli([...args, '--out', out]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /mine\.json exists: give --force to replace it/);
  await writeFile(path.join(models, 'Conv_Net.json'), '{"arch": ');
  const truncated = await runCli([...args]);
  assert.equal(truncated.code, 2);
  assert.match(truncated.stderr, /Conv_Net\.json: not valid JSON/);
  await rm(path.join(models, 'Conv_Net.json'));
  const unknown = await runCli([...args]);
  assert.equal(unknown.code, 2);
  assert.match(
    unknown.stderr,
    /Conv_Net\.onnx: no Conv_Net\.json beside it \(infra\/export_backbones\.py writes one\).*give --preset/,
  );
  const preset = await runCli([...args, '--preset', 'resnet34']);
  assert.equal(preset.code, 0, preset.stderr);
  assert.equal(JSON.parse(preset.stdout).configurations[0].backbone.preset, 'resnet34');
});
