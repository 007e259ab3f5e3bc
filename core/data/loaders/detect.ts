/**
 * Which loader reads a dataset folder, told by what each official layout has at its top (the files its
 * loader reads first): for `infodisent config new`, which writes a sweep from the folders a researcher has.
 */
import path from 'node:path';
import { DatasetInputError, isDirectory, isFile, listSubdirectories } from './common';
import type { DatasetFormat } from './index';

export interface DatasetLayout {
  kind: DatasetFormat;
  /** Class folders straight under the root: the tree has no split of its own (ClassFolderOptions.testFraction). */
  unsplit?: boolean;
}

const WNID = /^n\d{8}$/;

const some = async (checks: Promise<boolean>[]) => (await Promise.all(checks)).some(Boolean);
const every = async (checks: Promise<boolean>[]) => (await Promise.all(checks)).every(Boolean);

/** In the order they are tried: the official layouts, then class-folder trees (which Stanford Cars' repackaging is). */
const LAYOUTS: { layout: DatasetLayout; expects: string; holds: (dir: string) => Promise<boolean> }[] = [
  {
    layout: { kind: 'cub' },
    expects: "CUB-200-2011's images.txt, image_class_labels.txt and train_test_split.txt",
    // The CUB_200_2011 folder, or one that holds it (as loadCub takes either).
    holds: (dir) =>
      some(
        [dir, path.join(dir, 'CUB_200_2011')].map((base) =>
          every(
            ['images.txt', 'image_class_labels.txt', 'train_test_split.txt'].map((f) =>
              isFile(path.join(base, f)),
            ),
          ),
        ),
      ),
  },
  {
    layout: { kind: 'stanford-dogs' },
    expects: "Stanford Dogs' Images/ and train_list.mat",
    holds: async (dir) =>
      (await isDirectory(path.join(dir, 'Images'))) &&
      some(['train_list.mat', 'lists/train_list.mat'].map((f) => isFile(path.join(dir, f)))),
  },
  {
    layout: { kind: 'stanford-cars' },
    expects: "Stanford Cars' devkit/cars_meta.mat or cars_annos.mat",
    holds: (dir) => some(['devkit/cars_meta.mat', 'cars_annos.mat'].map((f) => isFile(path.join(dir, f)))),
  },
  {
    layout: { kind: 'imagenet' },
    expects: "ImageNet's train/n01440764/ (WordNet id) folders",
    holds: async (dir) => {
      if (await isDirectory(path.join(dir, 'ILSVRC', 'Data', 'CLS-LOC', 'train'))) return true;
      const train = path.join(dir, 'train');
      const folders = (await isDirectory(train)) ? await listSubdirectories(train) : [];
      return folders.length > 0 && folders.every((name) => WNID.test(name));
    },
  },
  {
    layout: { kind: 'class-folders' },
    expects: 'train/ and test/ (or val/) class folders',
    holds: async (dir) =>
      (await isDirectory(path.join(dir, 'train'))) &&
      some(['test', 'val'].map((name) => isDirectory(path.join(dir, name)))),
  },
  {
    layout: { kind: 'class-folders', unsplit: true },
    expects: 'class folders',
    holds: async (dir) => (await listSubdirectories(dir)).length > 1,
  },
];

/** The layout of the dataset folder `root`; a DatasetInputError naming what was looked for when none fits. */
export async function detectDatasetLayout(root: string): Promise<DatasetLayout> {
  const dir = path.resolve(root);
  if (!(await isDirectory(dir))) throw new DatasetInputError(dir, 'missing dataset root folder');
  for (const { layout, holds } of LAYOUTS) if (await holds(dir)) return layout;
  throw new DatasetInputError(
    dir,
    `no dataset layout recognised: looked for ${LAYOUTS.map(({ expects }) => expects).join('; ')}`,
  );
}
