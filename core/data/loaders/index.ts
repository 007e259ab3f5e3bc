/**
 * Loaders of the benchmark datasets in their official layouts. Each resolves to `{ manifest, skipped }`:
 * a bad input (a listed file that is missing, an unknown class folder, a malformed index line) throws a
 * DatasetInputError naming the file and line, unless `skipInvalid` is set, in which case it is left out
 * and listed in `skipped`.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { forEachLimited } from '../../util/for-each-limited';
import { type ClassFolderOptions, loadClassFolders } from './class-folders';
import { DatasetInputError, type LoadResult, requireDirectory } from './common';
import { loadCub } from './cub';
import { loadImageNet } from './imagenet';
import { loadStanfordCars } from './stanford-cars';
import { loadStanfordDogs } from './stanford-dogs';

export { type ClassFolderOptions, loadClassFolders } from './class-folders';
export { DatasetInputError, type LoadResult, type SkippedInput } from './common';
export { loadCub } from './cub';
export { loadImageNet } from './imagenet';
export { MatAccess, parseMat } from './mat';
export { loadStanfordCars } from './stanford-cars';
export { loadStanfordDogs } from './stanford-dogs';

export const DATASET_FORMATS = [
  'cub',
  'stanford-cars',
  'stanford-dogs',
  'imagenet',
  'class-folders',
] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

/**
 * The dataset under `root` in `format`'s layout, each item with its file's size; a root that is not a folder is
 * named as such.
 */
export async function loadDataset(
  format: DatasetFormat,
  root: string,
  options: ClassFolderOptions = {},
): Promise<LoadResult> {
  await requireDirectory(path.resolve(root), 'dataset root');
  const loaded = await loadLayout(format, root, options);
  await recordFileSizes(loaded);
  return loaded;
}

function loadLayout(format: DatasetFormat, root: string, options: ClassFolderOptions): Promise<LoadResult> {
  switch (format) {
    case 'cub':
      return loadCub(root, options);
    case 'stanford-cars':
      return loadStanfordCars(root, options);
    case 'stanford-dogs':
      return loadStanfordDogs(root, options);
    case 'imagenet':
      return loadImageNet(root, options);
    case 'class-folders':
      return loadClassFolders(root, options);
  }
}

/** Enough stat calls in flight to hide a network file system's latency. */
const STAT_CONCURRENCY = 64;

/**
 * Sets each item's `bytes`. File names alone do not tell two trees apart, nor an image replaced under its
 * name; sizes do, at the cost of a stat per file (a content hash would read the whole dataset each run), and
 * unlike modification times they survive a copy to another worker.
 */
async function recordFileSizes({ manifest }: LoadResult): Promise<void> {
  await forEachLimited(manifest.items, STAT_CONCURRENCY, async (item) => {
    const file = path.join(manifest.root, item.path);
    try {
      item.bytes = (await stat(file)).size;
    } catch (error) {
      throw new DatasetInputError(file, `cannot read the image (${(error as Error).message})`);
    }
  });
}
