/**
 * Stanford Cars, in whichever of its three common layouts `root` holds:
 * - the devkit release: `cars_train/`, `cars_test/`, `devkit/cars_meta.mat` (`class_names`),
 *   `devkit/cars_train_annos.mat` and `cars_test_annos_withlabels.mat` (at the root or in devkit/), whose
 *   `annotations` structs have bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname;
 * - the single-file release: `car_ims/` and `cars_annos.mat` (`annotations` with relative_im_path, the
 *   bbox fields, class and test; `class_names`);
 * - the class-folder repackaging `train/<class name>/*`, `test/<class name>/*` (no boxes; classes in
 *   code-point order, as ImageFolder orders them).
 * In the .mat layouts labels follow `class_names`; boxes are MATLAB's 1-based inclusive pixel bounds,
 * converted to the manifest's 0-based end-exclusive ones.
 */
import path from 'node:path';
import type { DatasetItem, Split } from '../dataset';
import { loadClassFolders } from './class-folders';
import {
  boxFromOneBasedInclusive,
  DatasetInputError,
  firstFile,
  isDirectory,
  isFile,
  type LoadOptions,
  type LoadResult,
  listFiles,
  Problems,
  requireDirectory,
  requireFile,
} from './common';
import { MatAccess, type MatValue, readMatFile } from './mat';

const NAME = 'stanford-cars';

export async function loadStanfordCars(root: string, options: LoadOptions = {}): Promise<LoadResult> {
  const dir = path.resolve(root);
  const problems = new Problems(dir, options.skipInvalid ?? false);
  const devkit = path.join(dir, 'devkit');

  if (await isFile(path.join(devkit, 'cars_meta.mat'))) {
    const classes = await readClassNames(path.join(devkit, 'cars_meta.mat'));
    const testAnnos = await firstFile([
      path.join(dir, 'cars_test_annos_withlabels.mat'),
      path.join(devkit, 'cars_test_annos_withlabels.mat'),
    ]);
    if (!testAnnos) {
      throw new DatasetInputError(
        path.join(dir, 'cars_test_annos_withlabels.mat'),
        'missing test labels (devkit/cars_test_annos.mat has none)',
      );
    }
    const items = [
      ...(await readAnnotations(
        dir,
        path.join(devkit, 'cars_train_annos.mat'),
        classes.length,
        problems,
        'cars_train',
      )),
      ...(await readAnnotations(dir, testAnnos, classes.length, problems, 'cars_test')),
    ];
    return problems.result({ name: NAME, root: dir, classes, items });
  }
  if (await isFile(path.join(dir, 'cars_annos.mat'))) {
    const annos = path.join(dir, 'cars_annos.mat');
    const classes = await readClassNames(annos);
    const items = await readAnnotations(dir, annos, classes.length, problems, undefined);
    return problems.result({ name: NAME, root: dir, classes, items });
  }
  if (await isDirectory(path.join(dir, 'train'))) return loadClassFolders(dir, { ...options, name: NAME });
  throw new DatasetInputError(
    dir,
    'not a Stanford Cars folder: expected devkit/cars_meta.mat, cars_annos.mat or train/<class>/ folders',
  );
}

async function readClassNames(file: string): Promise<string[]> {
  const access = new MatAccess(file);
  return access.strings(access.variable(await readMatFile(file), 'class_names'), 'class_names');
}

/**
 * Items of an `annotations` struct array. With `imageFolder` (devkit layout) every item is in that folder
 * and of its split; without it (cars_annos.mat) each names its path and split.
 */
async function readAnnotations(
  root: string,
  file: string,
  classCount: number,
  problems: Problems,
  imageFolder: 'cars_train' | 'cars_test' | undefined,
): Promise<DatasetItem[]> {
  const access = new MatAccess(file);
  await requireFile(file, 'Stanford Cars annotations');
  const annotations = access.structs(access.variable(await readMatFile(file), 'annotations'), 'annotations');
  const folder = imageFolder ?? 'car_ims';
  await requireDirectory(path.join(root, folder), `${folder}/`);
  const existing = new Set((await listFiles(path.join(root, folder))).map((f) => `${folder}/${f}`));

  const items: DatasetItem[] = [];
  annotations.forEach((element, i) => {
    const where = `annotations(${i + 1})`;
    const get = (field: string): MatValue => access.field(element, field, where);
    const parsed = problems.attempt(() => {
      const imagePath = imageFolder
        ? `${imageFolder}/${access.string(get('fname'), `${where}.fname`)}`
        : access.string(get('relative_im_path'), `${where}.relative_im_path`);
      const split: Split = imageFolder
        ? imageFolder === 'cars_train'
          ? 'train'
          : 'test'
        : access.number(get('test'), `${where}.test`) === 1
          ? 'test'
          : 'train';
      const label = access.number(get('class'), `${where}.class`) - 1;
      if (!Number.isInteger(label) || label < 0 || label >= classCount) {
        throw new DatasetInputError(
          file,
          `${where}.class: ${label + 1} is not a class number 1..${classCount}`,
        );
      }
      const [x1, y1, x2, y2] = ['bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2'].map((f) =>
        access.number(get(f), `${where}.${f}`),
      ) as [number, number, number, number];
      return { path: imagePath, label, split, bbox: boxFromOneBasedInclusive(x1, y1, x2, y2) };
    });
    if (!parsed) return;
    if (!existing.has(parsed.path)) {
      problems.report(
        { file },
        `${where}: listed image ${parsed.path} does not exist`,
        path.join(root, parsed.path),
      );
      return;
    }
    items.push(parsed);
  });
  return items;
}
