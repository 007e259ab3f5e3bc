/**
 * Any class-per-folder tree, as torchvision's ImageFolder reads it: `<root>/train/<class>/**` and
 * `<root>/test/<class>/**` (or `val/`), or, with `testFraction`, `<root>/<class>/**` split here. Classes are
 * the (train) folders in code-point order; images are the files ImageFolder takes by extension, found
 * recursively; other files are ignored.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { DatasetItem, Split } from '../dataset';
import {
  byCodePoint,
  DatasetInputError,
  imageFiles,
  isDirectory,
  type LoadOptions,
  type LoadResult,
  listFiles,
  listSubdirectories,
  Problems,
  relativePath,
  requireDirectory,
} from './common';

export interface ClassFolderOptions extends LoadOptions {
  /** Manifest name; defaults to the root folder's name. */
  name?: string;
  /** Folder of the test split; defaults to `test`, else `val`. */
  testFolder?: string;
  /**
   * For a tree of class folders with no train/test folders: the share of each class's images held out for
   * test (see splitClass).
   */
  testFraction?: number;
}

export async function loadClassFolders(root: string, options: ClassFolderOptions = {}): Promise<LoadResult> {
  const dir = path.resolve(root);
  const problems = new Problems(dir, options.skipInvalid ?? false);
  const hasTrain = await isDirectory(path.join(dir, 'train'));
  if (options.testFraction !== undefined) {
    if (hasTrain) {
      throw new DatasetInputError(
        path.join(dir, 'train'),
        'the tree has its own train/ split: testFraction is for class folders without one; leave it out',
      );
    }
    return splitClassFolders(dir, options.testFraction, problems, options.name);
  }
  if (!hasTrain) throw await missingTrainError(dir);
  const trainDir = path.join(dir, 'train');
  const testDir = await findTestFolder(dir, options.testFolder);

  const train = nonEmptyClasses(trainDir, await scanClassFolders(trainDir, problems), problems);
  const labelOf = new Map([...train.keys()].map((name, label) => [name, label]));
  const items = [
    ...classFolderItems(dir, trainDir, 'train', train, labelOf, problems),
    ...classFolderItems(dir, testDir, 'test', await scanClassFolders(testDir, problems), labelOf, problems),
  ];
  return problems.result({
    name: options.name ?? path.basename(dir),
    root: dir,
    classes: [...train.keys()],
    items,
  });
}

/** `<root>/<class>/**`, each class's images split into train and test by splitClass. */
async function splitClassFolders(
  dir: string,
  testFraction: number,
  problems: Problems,
  name = path.basename(dir),
): Promise<LoadResult> {
  const folders = nonEmptyClasses(dir, await scanClassFolders(dir, problems), problems);
  const classes = [...folders.keys()];
  const splits = classes.map((className) => splitClass(className, folders.get(className)!, testFraction));
  const items = (['train', 'test'] as const).flatMap((split) =>
    splits.flatMap((byName, label) =>
      byName[split].map((image): DatasetItem => ({ path: `${classes[label]}/${image}`, label, split })),
    ),
  );
  return problems.result({ name, root: dir, classes, items });
}

/**
 * Holds out round(n x testFraction) of a class's n images for test (at most n - 1, so that every class
 * trains): those whose sha256 of `<class>/<image>` is smallest. The split depends on nothing but the
 * file names: it is the same on every worker and for every seed, and adding or removing an image moves
 * at most one other between the splits.
 */
function splitClass(className: string, images: string[], testFraction: number): Record<Split, string[]> {
  const rank = (image: string) => createHash('sha256').update(`${className}/${image}`).digest('hex');
  const ranked = images.map((image) => ({ image, rank: rank(image) }));
  ranked.sort((a, b) => byCodePoint(a.rank, b.rank));
  const testCount = Math.min(images.length - 1, Math.round(images.length * testFraction));
  const test = new Set(ranked.slice(0, testCount).map(({ image }) => image));
  return {
    train: images.filter((image) => !test.has(image)),
    test: images.filter((image) => test.has(image)),
  };
}

/** Images (relative to their class folder) of each class folder of `splitDir`, folders in code-point order. */
export async function scanClassFolders(splitDir: string, problems: Problems): Promise<Map<string, string[]>> {
  const classes = new Map<string, string[]>();
  for (const name of await listSubdirectories(splitDir)) {
    const classDir = path.join(splitDir, name);
    classes.set(name, imageFiles(classDir, await listFiles(classDir), problems));
  }
  return classes;
}

/** The class folders that hold images; an empty one is a problem, and none at all an error. */
function nonEmptyClasses(
  splitDir: string,
  folders: Map<string, string[]>,
  problems: Problems,
): Map<string, string[]> {
  for (const [className, images] of folders) {
    if (images.length > 0) continue;
    problems.report({ file: path.join(splitDir, className) }, 'class folder holds no images');
    folders.delete(className);
  }
  if (folders.size === 0) throw new DatasetInputError(splitDir, 'no class folder with images');
  return folders;
}

/** Manifest items of scanned class folders; a folder whose class `labelOf` lacks is a problem. */
export function classFolderItems(
  root: string,
  splitDir: string,
  split: Split,
  folders: Map<string, string[]>,
  labelOf: Map<string, number>,
  problems: Problems,
): DatasetItem[] {
  const splitRel = relativePath(root, splitDir);
  const items: DatasetItem[] = [];
  for (const [className, images] of folders) {
    const label = labelOf.get(className);
    if (label === undefined) {
      const known = split === 'train' ? 'the dataset' : 'the train';
      problems.report(
        { file: path.join(splitDir, className) },
        `class folder '${className}' is not among ${known} classes`,
      );
      continue;
    }
    for (const image of images) items.push({ path: `${splitRel}/${className}/${image}`, label, split });
  }
  return items;
}

/** No train/ folder: a tree of class folders is told of testFraction, anything else of the layout. */
async function missingTrainError(dir: string): Promise<DatasetInputError> {
  const folders = await listSubdirectories(dir).catch(() => []);
  if (folders.length > 0 && !folders.some((name) => name === 'test' || name === 'val')) {
    const shown = folders
      .slice(0, 3)
      .map((name) => `${name}/`)
      .join(', ');
    return new DatasetInputError(
      path.join(dir, 'train'),
      `missing train/ folder: the root holds class folders (${shown}${folders.length > 3 ? ', …' : ''}) with no train/test split; set the dataset's testFraction (e.g. 0.2) to hold out that share of each class for test`,
    );
  }
  return new DatasetInputError(path.join(dir, 'train'), 'missing train/ folder');
}

async function findTestFolder(dir: string, requested: string | undefined): Promise<string> {
  if (requested !== undefined) return requireDirectory(path.join(dir, requested), `${requested}/`);
  for (const name of ['test', 'val']) {
    if (await isDirectory(path.join(dir, name))) return path.join(dir, name);
  }
  throw new DatasetInputError(path.join(dir, 'test'), 'missing test/ (or val/) folder');
}
