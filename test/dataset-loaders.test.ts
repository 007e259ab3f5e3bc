import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type DatasetManifest, itemsOfSplit } from '../core/data/dataset';
import {
  DatasetInputError,
  loadClassFolders,
  loadCub,
  loadDataset,
  loadImageNet,
  loadStanfordCars,
  loadStanfordDogs,
  MatAccess,
  parseMat,
} from '../core/data/loaders';
import { featureCacheKey } from '../core/features/feature-store';
import {
  type CarImage,
  CUB_PARTS,
  type CubImage,
  encodeMat,
  KEY_BACKBONE,
  mat,
  writeCarsAnnos,
  writeCarsDevkit,
  writeClassFolders,
  writeCub,
  writeDogs,
  writeImage,
  writeImageNet,
} from './support/dataset-trees';
import { runPythonReference } from './support/python';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'loaders-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let counter = 0;
const freshDir = () => path.join(tmp, `tree-${counter++}`);

function splitSizes(manifest: DatasetManifest): [number, number] {
  return [itemsOfSplit(manifest, 'train').length, itemsOfSplit(manifest, 'test').length];
}

/** Asserts that `promise` rejects with a DatasetInputError whose message has every fragment. */
async function rejectsWith(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DatasetInputError, String(error));
    for (const fragment of fragments)
      assert.ok(error.message.includes(fragment), `'${error.message}' lacks '${fragment}'`);
    return true;
  });
}

describe('MAT-file reader', () => {
  const vars = {
    annotations: mat.struct([
      { fname: mat.char('00001.jpg'), class: mat.numeric('uint8', [14], 'uint8', [1, 1]) },
      { fname: mat.char('00002.jpg'), class: mat.numeric('uint8', [196], 'uint8', [1, 1]) },
    ]),
    names: mat.cell(
      [mat.char('AM General Hummer SUV 2000'), mat.char('Ram C/V Cargo Van Minivan 2012')],
      [1, 2],
    ),
    labels: mat.numeric('double', [1, 2, 120, 7], 'uint8'),
    weights: mat.numeric('single', [0.5, -1.25], 'single', [1, 2]),
  };

  for (const [label, options] of [
    ['plain', {}],
    ['zlib-compressed', { compress: true }],
    ['big-endian', { bigEndian: true }],
  ] as const) {
    test(`reads structs, cells, chars and numbers (${label})`, () => {
      const parsed = parseMat(encodeMat(vars, options), 'x.mat');
      const access = new MatAccess('x.mat');
      const annotations = access.structs(access.variable(parsed, 'annotations'), 'annotations');
      assert.deepEqual(
        annotations.map((a) => [access.string(a.get('fname')!, 'f'), access.number(a.get('class')!, 'c')]),
        [
          ['00001.jpg', 14],
          ['00002.jpg', 196],
        ],
      );
      assert.deepEqual(access.strings(access.variable(parsed, 'names'), 'names'), [
        'AM General Hummer SUV 2000',
        'Ram C/V Cargo Van Minivan 2012',
      ]);
      assert.deepEqual(access.numbers(access.variable(parsed, 'labels'), 'labels'), [1, 2, 120, 7]);
      assert.deepEqual(access.numbers(access.variable(parsed, 'weights'), 'weights'), [0.5, -1.25]);
    });
  }

  test('rejects HDF5 (-v7.3), foreign and truncated files, naming the file', () => {
    const v73 = Buffer.alloc(128, ' ');
    v73.write('MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00', 0, 'latin1');
    v73.writeUInt16LE(0x0200, 124);
    v73.write('IM', 126, 'latin1');
    assert.throws(() => parseMat(v73, 'v73.mat'), /v73\.mat: MATLAB -v7\.3 \(HDF5\)/);
    assert.throws(
      () => parseMat(Buffer.from('not a mat file at all'), 'foreign.mat'),
      /foreign\.mat: not a MAT-file/,
    );
    const whole = encodeMat(vars);
    assert.throws(
      () => parseMat(whole.subarray(0, whole.length - 40), 'cut.mat'),
      /cut\.mat: invalid MAT-file/,
    );
    const access = new MatAccess('x.mat');
    assert.throws(
      () => access.strings(access.variable(parseMat(whole, 'x.mat'), 'labels'), 'labels'),
      /x\.mat: labels:/,
    );
  });
});

describe('CUB-200-2011', () => {
  const classes = ['001.Black_footed_Albatross', '002.Laysan_Albatross', '003.Sooty_Albatross'];
  const images: CubImage[] = [
    { classId: 1, file: 'Black_Footed_Albatross_0046_18.jpg', train: true, box: [1, 2, 10, 8] },
    { classId: 1, file: 'Black_Footed_Albatross_0009_34.jpg', train: false, box: [0, 0, 16, 12] },
    { classId: 2, file: 'Laysan_Albatross_0002_1027.jpg', train: true, box: [3.5, 1, 4, 5] },
    { classId: 2, file: 'Laysan_Albatross_0003_1033.jpg', train: true, box: [2, 2, 2, 2] },
    { classId: 3, file: 'Sooty_Albatross_0007_796.jpg', train: false, box: [5, 4, 6, 3] },
  ];

  test('reads classes, splits, boxes and the 15 part keypoints', async () => {
    const dir = freshDir();
    await writeCub(path.join(dir, 'CUB_200_2011'), classes, images);
    const { manifest, skipped } = await loadCub(dir);
    assert.equal(manifest.root, path.join(dir, 'CUB_200_2011'));
    assert.deepEqual(manifest.classes, classes);
    assert.deepEqual(splitSizes(manifest), [3, 2]);
    assert.deepEqual(skipped, []);
    const [first, second, third] = manifest.items;
    assert.deepEqual(
      { path: first!.path, label: first!.label, split: first!.split, bbox: first!.bbox },
      {
        path: 'images/001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg',
        label: 0,
        split: 'train',
        bbox: { x0: 1, y0: 2, x1: 11, y1: 10 },
      },
    );
    assert.equal(second!.split, 'test');
    assert.deepEqual(third!.bbox, { x0: 3.5, y0: 1, x1: 7.5, y1: 6 });
    assert.deepEqual(
      manifest.items.map((item) => item.label),
      [0, 0, 1, 1, 2],
    );
    // writeCub places part p of image i at (10i + p, p + 0.5), visible for odd p (1-based).
    const keypoints = third!.keypoints!;
    assert.deepEqual(
      keypoints.map((k) => k.part),
      CUB_PARTS,
    );
    assert.deepEqual(keypoints[6], { part: 'left eye', x: 27, y: 7.5, visible: true });
    assert.deepEqual(keypoints[7], { part: 'left leg', x: 28, y: 8.5, visible: false });
  });

  test('parts are optional', async () => {
    const dir = freshDir();
    await writeCub(dir, classes, images, false);
    const { manifest } = await loadCub(dir);
    assert.equal(manifest.items[0]!.keypoints, undefined);
    assert.deepEqual(splitSizes(manifest), [3, 2]);
  });

  test('a listed image that is missing, or a malformed line, is an error naming file and line', async () => {
    const dir = freshDir();
    await writeCub(dir, classes, images);
    const missing = 'images/002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg';
    await unlink(path.join(dir, missing));
    await rejectsWith(loadCub(dir), `${path.join(dir, 'images.txt')}:3:`, missing);

    const skippingMissing = await loadCub(dir, { skipInvalid: true });
    assert.deepEqual(splitSizes(skippingMissing.manifest), [2, 2]);
    assert.equal(skippingMissing.skipped.length, 1);
    assert.equal(skippingMissing.skipped[0]!.path, missing);
    assert.match(skippingMissing.skipped[0]!.reason, /images\.txt:3: listed image .* does not exist/);

    await writeImage(path.join(dir, missing));
    const split = path.join(dir, 'train_test_split.txt');
    await writeFile(split, (await readFile(split, 'utf8')).replace('\n4 1\n', '\n4 yes\n'));
    await rejectsWith(loadCub(dir), `${split}:4:`, 'malformed line', 'is_training_image');
    const skippingLine = await loadCub(dir, { skipInvalid: true });
    assert.deepEqual(
      skippingLine.skipped.map((s) => s.path),
      ['train_test_split.txt', 'images/002.Laysan_Albatross/Laysan_Albatross_0003_1033.jpg'],
    );
    assert.equal(skippingLine.manifest.items.length, 4);
  });

  test('an unknown class id and a missing index are errors', async () => {
    const dir = freshDir();
    await writeCub(dir, classes, images);
    await appendFile(path.join(dir, 'images.txt'), '6 004.Groove_billed_Ani/Groove_Billed_Ani_0001_1.jpg\n');
    await appendFile(path.join(dir, 'image_class_labels.txt'), '6 4\n');
    await appendFile(path.join(dir, 'train_test_split.txt'), '6 1\n');
    await writeImage(path.join(dir, 'images', '004.Groove_billed_Ani', 'Groove_Billed_Ani_0001_1.jpg'));
    await rejectsWith(
      loadCub(dir),
      `${path.join(dir, 'image_class_labels.txt')}:6:`,
      'class id 4 is not in classes.txt',
    );
    await unlink(path.join(dir, 'classes.txt'));
    await rejectsWith(loadCub(dir, { skipInvalid: true }), path.join(dir, 'classes.txt'), 'missing');
  });
});

describe('Stanford Cars', () => {
  const classNames = ['AM General Hummer SUV 2000', 'Acura RL Sedan 2012', 'Ram C/V Cargo Van Minivan 2012'];
  const train: CarImage[] = [
    { fname: '00001.jpg', classNo: 1, box: [2, 3, 18, 12] },
    { fname: '00002.jpg', classNo: 3, box: [1, 1, 20, 14] },
    { fname: '00003.jpg', classNo: 2, box: [5, 2, 9, 7] },
  ];
  const test_: CarImage[] = [
    { fname: '00001.jpg', classNo: 2, box: [1, 4, 10, 20] },
    { fname: '00002.jpg', classNo: 3, box: [2, 2, 12, 16] },
  ];

  for (const compress of [false, true]) {
    test(`reads the devkit layout (${compress ? 'compressed' : 'uncompressed'} .mat)`, async () => {
      const dir = freshDir();
      await writeCarsDevkit(dir, classNames, train, test_, { compress });
      const { manifest, skipped } = await loadStanfordCars(dir);
      assert.deepEqual(skipped, []);
      assert.equal(manifest.name, 'stanford-cars');
      assert.deepEqual(manifest.classes, classNames);
      assert.deepEqual(splitSizes(manifest), [3, 2]);
      assert.deepEqual(manifest.items[1], {
        path: 'cars_train/00002.jpg',
        label: 2,
        split: 'train',
        // MATLAB's 1-based inclusive [1..20] x [1..14] is [0, 20) x [0, 14).
        bbox: { x0: 0, y0: 0, x1: 20, y1: 14 },
      });
      assert.equal(manifest.items[3]!.path, 'cars_test/00001.jpg');
      assert.equal(manifest.items[3]!.label, 1);
    });
  }

  test('devkit: a missing image, a bad class number and missing test labels', async () => {
    const dir = freshDir();
    await writeCarsDevkit(dir, classNames, train, [
      ...test_,
      { fname: '00003.jpg', classNo: 9, box: [1, 1, 2, 2] },
    ]);
    await rejectsWith(loadStanfordCars(dir), 'cars_test_annos_withlabels.mat', 'annotations(3).class: 9');
    await unlink(path.join(dir, 'cars_train', '00003.jpg'));
    const { manifest, skipped } = await loadStanfordCars(dir, { skipInvalid: true });
    assert.deepEqual(splitSizes(manifest), [2, 2]);
    assert.deepEqual(
      skipped.map((s) => s.path),
      ['cars_train/00003.jpg', 'cars_test_annos_withlabels.mat'],
    );
    assert.match(
      skipped[0]!.reason,
      /cars_train_annos\.mat: annotations\(3\): listed image cars_train\/00003\.jpg/,
    );
    await unlink(path.join(dir, 'cars_test_annos_withlabels.mat'));
    await rejectsWith(loadStanfordCars(dir), 'cars_test_annos_withlabels.mat', 'missing test labels');
  });

  test('reads the single-file layout (car_ims/ + cars_annos.mat)', async () => {
    const dir = freshDir();
    await writeCarsAnnos(dir, classNames, [
      { fname: '000001.jpg', classNo: 1, box: [1, 1, 5, 5], test: false },
      { fname: '000002.jpg', classNo: 2, box: [2, 2, 6, 6], test: true },
      { fname: '000003.jpg', classNo: 3, box: [3, 3, 7, 7], test: false },
    ]);
    const { manifest } = await loadStanfordCars(dir);
    assert.deepEqual(splitSizes(manifest), [2, 1]);
    assert.deepEqual(manifest.items[1], {
      path: 'car_ims/000002.jpg',
      label: 1,
      split: 'test',
      bbox: { x0: 1, y0: 1, x1: 6, y1: 6 },
    });
  });

  test('reads the class-folder repackaging', async () => {
    const dir = freshDir();
    await writeClassFolders(dir, {
      train: { 'Acura RL Sedan 2012': ['a.jpg', 'b.jpg'], 'AM General Hummer SUV 2000': ['c.jpg'] },
      test: { 'Acura RL Sedan 2012': ['d.jpg'] },
    });
    const { manifest } = await loadStanfordCars(dir);
    assert.equal(manifest.name, 'stanford-cars');
    // Code-point order, as ImageFolder sorts: 'AM' < 'Ac'.
    assert.deepEqual(manifest.classes, ['AM General Hummer SUV 2000', 'Acura RL Sedan 2012']);
    assert.deepEqual(splitSizes(manifest), [3, 1]);
    await rejectsWith(loadStanfordCars(tmp), 'not a Stanford Cars folder');
  });
});

describe('Stanford Dogs', () => {
  const breeds = [
    { wnid: 'n02085620', name: 'Chihuahua' },
    { wnid: 'n02085782', name: 'Japanese_spaniel' },
    { wnid: 'n02086910', name: 'Shih-Tzu' },
  ];

  async function writeTree(dir: string): Promise<void> {
    await writeDogs(
      dir,
      breeds,
      [
        { breed: 1, id: 'n02085620_5927', boxes: [[25, 10, 276, 498]] },
        { breed: 2, id: 'n02085782_2', boxes: [[3, 4, 9, 7]] },
        {
          breed: 3,
          id: 'n02086910_10',
          boxes: [
            [1, 5, 4, 6],
            [6, 2, 9, 7],
          ],
        },
        { breed: 1, id: 'n02085620_7', boxes: [[2, 2, 8, 6]] },
      ],
      [
        { breed: 2, id: 'n02085782_17', boxes: [[1, 1, 9, 7]] },
        { breed: 3, id: 'n02086910_33', boxes: [[0, 1, 5, 5]] },
      ],
    );
  }

  test('reads breeds, splits and the enclosing box of all dogs', async () => {
    const dir = freshDir();
    await writeTree(dir);
    const { manifest, skipped } = await loadDataset('stanford-dogs', dir);
    assert.deepEqual(skipped, []);
    assert.deepEqual(manifest.classes, ['Chihuahua', 'Japanese_spaniel', 'Shih-Tzu']);
    assert.deepEqual(manifest.classIds, ['n02085620', 'n02085782', 'n02086910']);
    assert.deepEqual(splitSizes(manifest), [4, 2]);
    const { bytes: _bytes, ...first } = manifest.items[0]!;
    assert.deepEqual(first, {
      path: 'Images/n02085620-Chihuahua/n02085620_5927.jpg',
      label: 0,
      split: 'train',
      bbox: { x0: 24, y0: 9, x1: 276, y1: 498 },
    });
    assert.deepEqual(manifest.items[2]!.bbox, { x0: 0, y0: 1, x1: 9, y1: 7 });
    assert.deepEqual(manifest.items[5]!.bbox, { x0: 0, y0: 0, x1: 5, y1: 5 });
  });

  test('a missing or malformed annotation and a missing image are errors naming the file', async () => {
    const dir = freshDir();
    await writeTree(dir);
    const annotation = path.join(dir, 'Annotation', 'n02085782-Japanese_spaniel', 'n02085782_2');
    await writeFile(annotation, '<annotation><object><name>Japanese_spaniel</name></object></annotation>');
    await rejectsWith(loadStanfordDogs(dir), annotation, 'not a PASCAL VOC annotation', 'bndbox');
    await unlink(annotation);
    await rejectsWith(loadStanfordDogs(dir), annotation, 'missing annotation file');
    const skipping = await loadStanfordDogs(dir, { skipInvalid: true });
    // The image stays, without a box; the annotation is recorded as skipped.
    assert.equal(skipping.manifest.items.length, 6);
    assert.equal(skipping.manifest.items[1]!.bbox, undefined);
    assert.deepEqual(
      skipping.skipped.map((s) => s.path),
      ['Annotation/n02085782-Japanese_spaniel/n02085782_2'],
    );

    await unlink(path.join(dir, 'Images', 'n02086910-Shih-Tzu', 'n02086910_33.jpg'));
    await rejectsWith(
      loadStanfordDogs(dir, {}),
      path.join(dir, 'test_list.mat'),
      'entry 2: listed image Images/n02086910-Shih-Tzu/n02086910_33.jpg does not exist',
    );
  });
});

describe('ImageNet ILSVRC2012', () => {
  const synsets = [
    // Listed out of order, and with devkit ids that are not in wnid order, as in the real devkit.
    { wnid: 'n01443537', name: 'goldfish, Carassius auratus', ilsvrcId: 449 },
    { wnid: 'n01440764', name: 'tench, Tinca tinca', ilsvrcId: 1 },
    { wnid: 'n02012849', name: 'crane', ilsvrcId: 131 },
  ];
  const val = [
    { wnid: 'n02012849', boxes: [[10, 20, 30, 40] as [number, number, number, number]] },
    {
      wnid: 'n01440764',
      boxes: [
        [1, 2, 3, 4],
        [0, 5, 7, 9],
      ] as [number, number, number, number][],
    },
    { wnid: 'n01443537', boxes: [[5, 5, 6, 6] as [number, number, number, number]] },
  ];
  const sortedIds = ['n01440764', 'n01443537', 'n02012849'];

  test('reads train/<wnid>, a flat val/ with LOC_val_solution.csv and the synset names (Kaggle layout)', async () => {
    const dir = freshDir();
    await writeImageNet(dir, synsets, 2, val, { val: 'loc-csv', kaggle: true });
    const { manifest, skipped } = await loadImageNet(dir);
    assert.deepEqual(skipped, []);
    assert.deepEqual(manifest.classIds, sortedIds);
    assert.deepEqual(manifest.classes, ['tench, Tinca tinca', 'goldfish, Carassius auratus', 'crane']);
    assert.deepEqual(splitSizes(manifest), [6, 3]);
    assert.equal(manifest.items[0]!.path, 'ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_1.JPEG');
    assert.deepEqual(manifest.items[7], {
      path: 'ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000002.JPEG',
      label: 0,
      split: 'test',
      bbox: { x0: 0, y0: 1, x1: 7, y1: 9 },
    });
  });

  test('reads a flat val/ labelled by the devkit ground truth and meta.mat', async () => {
    const dir = freshDir();
    await writeImageNet(dir, synsets, 1, val, { val: 'devkit' });
    const { manifest } = await loadImageNet(dir);
    assert.deepEqual(manifest.classIds, sortedIds);
    // Names come from meta.mat's words; its non-leaf synset is not a class.
    assert.deepEqual(manifest.classes, ['tench, Tinca tinca', 'goldfish, Carassius auratus', 'crane']);
    assert.deepEqual(
      itemsOfSplit(manifest, 'test').map((item) => [item.path, item.label]),
      [
        ['val/ILSVRC2012_val_00000001.JPEG', 2],
        ['val/ILSVRC2012_val_00000002.JPEG', 0],
        ['val/ILSVRC2012_val_00000003.JPEG', 1],
      ],
    );
  });

  test('reads val/<wnid>/ class folders; an unknown wnid folder is an error', async () => {
    const dir = freshDir();
    await writeImageNet(dir, synsets, 1, val, { val: 'folders' });
    const { manifest } = await loadImageNet(dir);
    assert.deepEqual(splitSizes(manifest), [3, 3]);
    assert.deepEqual(
      itemsOfSplit(manifest, 'test').map((item) => item.label),
      [0, 1, 2],
    );
    await writeImage(path.join(dir, 'val', 'n09999999', 'x.JPEG'));
    await rejectsWith(
      loadImageNet(dir),
      path.join(dir, 'val', 'n09999999'),
      "'n09999999' is not among the train classes",
    );
    const skipping = await loadImageNet(dir, { skipInvalid: true });
    assert.deepEqual(
      skipping.skipped.map((s) => s.path),
      ['val/n09999999'],
    );
  });

  test('a malformed solution line and an unlabelled or missing val image are errors', async () => {
    const dir = freshDir();
    await writeImageNet(dir, synsets, 1, val, { val: 'loc-csv' });
    const solution = path.join(dir, 'LOC_val_solution.csv');
    await appendFile(solution, 'ILSVRC2012_val_00000009,n01440764 1 2 3\n');
    await rejectsWith(loadImageNet(dir), `${solution}:5:`, 'malformed line');
    await writeFile(solution, (await readFile(solution, 'utf8')).replace(/\n[^\n]*00000009[^\n]*/, ''));
    await writeImage(path.join(dir, 'val', 'ILSVRC2012_val_00000004.JPEG'));
    await rejectsWith(loadImageNet(dir), 'ILSVRC2012_val_00000004.JPEG', 'validation image has no label');
    await unlink(path.join(dir, 'val', 'ILSVRC2012_val_00000004.JPEG'));
    await unlink(path.join(dir, 'val', 'ILSVRC2012_val_00000001.JPEG'));
    await rejectsWith(loadImageNet(dir), `${solution}:2:`, 'val/ILSVRC2012_val_00000001.JPEG does not exist');
  });
});

describe('class-per-folder trees', () => {
  test('reads train/ and test/ (or val/) folders with jpg, jpeg, png, webp and tiff images', async () => {
    const dir = freshDir();
    await writeClassFolders(dir, {
      train: { zebra: ['1.jpg', '2.PNG', '7.tif'], ant: ['3.webp', 'sub/4.jpeg'] },
      val: { ant: ['5.jpg'], zebra: ['6.png', '8.TIFF'] },
    });
    await writeFile(path.join(dir, 'train', 'ant', 'notes.txt'), 'not an image');
    const { manifest } = await loadClassFolders(dir, { name: 'zoo' });
    assert.equal(manifest.name, 'zoo');
    assert.deepEqual(manifest.classes, ['ant', 'zebra']);
    assert.deepEqual(
      manifest.items.map((item) => [item.path, item.label, item.split]),
      [
        ['train/ant/3.webp', 0, 'train'],
        ['train/ant/sub/4.jpeg', 0, 'train'],
        ['train/zebra/1.jpg', 1, 'train'],
        ['train/zebra/2.PNG', 1, 'train'],
        ['train/zebra/7.tif', 1, 'train'],
        ['val/ant/5.jpg', 0, 'test'],
        ['val/zebra/6.png', 1, 'test'],
        ['val/zebra/8.TIFF', 1, 'test'],
      ],
    );
  });

  test('an image torchvision would read but sharp cannot (BMP, PPM, PGM) is an error, or skipped on request', async () => {
    const dir = freshDir();
    await writeClassFolders(dir, { train: { ant: ['1.jpg'] }, test: { ant: ['2.jpg'] } });
    // Only the extension matters to the loader: ImageFolder takes files by extension too.
    const bitmap = path.join(dir, 'train', 'ant', 'scan.BMP');
    await writeFile(bitmap, 'BM');
    await rejectsWith(
      loadClassFolders(dir),
      bitmap,
      "unsupported image format '.bmp'",
      "(the dataset's skipInvalid would leave it out)",
    );
    const { manifest, skipped } = await loadClassFolders(dir, { skipInvalid: true });
    assert.deepEqual(splitSizes(manifest), [1, 1]);
    assert.deepEqual(
      skipped.map((s) => s.path),
      ['train/ant/scan.BMP'],
    );
  });

  test('class folders without a split: testFraction holds out that share of each class by file-name hash', async () => {
    const dir = freshDir();
    const names = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, i) => `${prefix}${i}.jpg`);
    await writeClassFolders(dir, { '.': { ant: names('a', 10), bee: names('b', 3), cat: ['c0.png'] } });
    await rejectsWith(
      loadDataset('class-folders', dir),
      path.join(dir, 'train'),
      "the root holds class folders (ant/, bee/, cat/) with no train/test split; set the dataset's testFraction",
    );
    const load = async () => (await loadDataset('class-folders', dir, { testFraction: 0.2 })).manifest;
    const first = await load();
    assert.deepEqual(first.classes, ['ant', 'bee', 'cat']);
    const testOf = (manifest: DatasetManifest, label: number) =>
      itemsOfSplit(manifest, 'test')
        .filter((item) => item.label === label)
        .map((item) => item.path);
    // round(10 x 0.2) = 2, round(3 x 0.2) = 1, and a one-image class keeps it for training.
    assert.deepEqual(
      [0, 1, 2].map((label) => testOf(first, label).length),
      [2, 1, 0],
    );
    assert.equal(first.items.length, 14);
    assert.equal(new Set(first.items.map((item) => item.path)).size, 14);
    assert.ok(first.items.every((item) => item.path.startsWith(`${first.classes[item.label]}/`)));
    assert.deepEqual(await load(), first, 'the same split on every read');
    // The rule written again in Python (reference/split_reference.py), as a PyTorch script would split the tree.
    const reference = runPythonReference<{ classes: string[]; test: string[] }>('split_reference.py', {
      root: dir,
      testFraction: 0.2,
    });
    assert.deepEqual(reference.classes, first.classes);
    assert.deepEqual(
      reference.test,
      itemsOfSplit(first, 'test')
        .map((item) => item.path)
        .sort(),
    );

    // A new image moves at most one other between the splits.
    await writeImage(path.join(dir, 'ant', 'a10.jpg'));
    const grown = await load();
    const before = new Set(testOf(first, 0));
    const after = testOf(grown, 0).filter((file) => file !== 'ant/a10.jpg');
    assert.ok(after.filter((file) => !before.has(file)).length === 0);
    assert.ok(before.size - after.length <= 1);

    await writeClassFolders(dir, { train: { ant: ['1.jpg'] } });
    await rejectsWith(
      loadDataset('class-folders', dir, { testFraction: 0.2 }),
      'testFraction is for class folders without one',
    );
    await rejectsWith(loadDataset('class-folders', path.join(dir, 'nowhere')), 'missing dataset root folder');
  });

  test("the features' cache key tells trees with the same file names apart, follows a replaced image, not the tree's place", async () => {
    const tree = {
      train: { ant: ['1.png', '2.png'], bee: ['3.png'] },
      test: { ant: ['4.png'], bee: ['5.png'] },
    };
    const [original, copy, other] = [freshDir(), freshDir(), freshDir()];
    await writeClassFolders(original, tree);
    await cp(original, copy, { recursive: true });
    await writeClassFolders(other, tree);
    await writeImage(path.join(other, 'train', 'ant', '1.png'), 9, 9, 40);
    const key = async (dir: string, split: 'train' | 'test') =>
      featureCacheKey((await loadDataset('class-folders', dir)).manifest, split, KEY_BACKBONE);

    const { manifest } = await loadDataset('class-folders', original);
    for (const item of manifest.items) {
      assert.equal(item.bytes, (await readFile(path.join(original, item.path))).length, item.path);
    }
    assert.equal(await key(copy, 'train'), await key(original, 'train'));
    assert.notEqual(await key(other, 'train'), await key(original, 'train'));
    // Only the split whose image changed is extracted anew.
    assert.equal(await key(other, 'test'), await key(original, 'test'));
  });

  test('a test class that is not a train class is an error, or skipped on request', async () => {
    const dir = freshDir();
    await writeClassFolders(dir, {
      train: { ant: ['1.jpg'] },
      test: { ant: ['2.jpg'], bee: ['3.jpg', '4.jpg'] },
    });
    await rejectsWith(
      loadClassFolders(dir),
      path.join(dir, 'test', 'bee'),
      "'bee' is not among the train classes",
    );
    const { manifest, skipped } = await loadClassFolders(dir, { skipInvalid: true });
    assert.deepEqual(splitSizes(manifest), [1, 1]);
    assert.deepEqual(skipped, [
      {
        path: 'test/bee',
        reason: `${path.join(dir, 'test', 'bee')}: class folder 'bee' is not among the train classes`,
      },
    ]);
    await rejectsWith(loadClassFolders(path.join(dir, 'train')), 'missing train/ folder');
  });
});
