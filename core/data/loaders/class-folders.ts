/**
 * Any class-per-folder tree, as torchvision's ImageFolder reads it: `<root>/train/<class>/**` and
 * `<root>/test/<class>/**` (or `val/`). Classes are the train folders in code-point order; images are files
 * ending in .jpg, .jpeg, .png or .webp (any case), found recursively; other files are ignored.
 */
import path from 'node:path';
import type { DatasetItem, Split } from '../dataset';
import {
  DatasetInputError,
  isDirectory,
  isImageFile,
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
}

export async function loadClassFolders(root: string, options: ClassFolderOptions = {}): Promise<LoadResult> {
  const dir = path.resolve(root);
  const problems = new Problems(dir, options.skipInvalid ?? false);
  const trainDir = await requireDirectory(path.join(dir, 'train'), 'train/');
  const testDir = await findTestFolder(dir, options.testFolder);

  const train = await scanClassFolders(trainDir);
  const classes: string[] = [];
  for (const [className, images] of train) {
    if (images.length > 0) classes.push(className);
    else {
      problems.report({ file: path.join(trainDir, className) }, 'class folder holds no images');
      train.delete(className);
    }
  }
  if (classes.length === 0) throw new DatasetInputError(trainDir, 'no class folder with images');
  const labelOf = new Map(classes.map((name, label) => [name, label]));

  const items = [
    ...classFolderItems(dir, trainDir, 'train', train, labelOf, problems),
    ...classFolderItems(dir, testDir, 'test', await scanClassFolders(testDir), labelOf, problems),
  ];
  return problems.result({ name: options.name ?? path.basename(dir), root: dir, classes, items });
}

/** Images (relative to their class folder) of each class folder of `splitDir`, folders in code-point order. */
export async function scanClassFolders(splitDir: string): Promise<Map<string, string[]>> {
  const classes = new Map<string, string[]>();
  for (const name of await listSubdirectories(splitDir)) {
    classes.set(name, (await listFiles(path.join(splitDir, name))).filter(isImageFile));
  }
  return classes;
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

async function findTestFolder(dir: string, requested: string | undefined): Promise<string> {
  if (requested !== undefined) return requireDirectory(path.join(dir, requested), `${requested}/`);
  for (const name of ['test', 'val']) {
    if (await isDirectory(path.join(dir, name))) return path.join(dir, name);
  }
  throw new DatasetInputError(path.join(dir, 'test'), 'missing test/ (or val/) folder');
}
