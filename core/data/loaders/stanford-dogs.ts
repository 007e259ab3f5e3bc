/**
 * Stanford Dogs in its official layout: `Images/<wnid>-<breed>/<image>.jpg`, the split lists
 * `train_list.mat` and `test_list.mat` (at the root or in `lists/`; variables `file_list`,
 * `annotation_list` and 1-based `labels`), and optionally `Annotation/<wnid>-<breed>/<image id>` (PASCAL VOC
 * XML). Class k is the breed its images carry label k in the lists; `classes` are the breed names
 * (`Chihuahua`), `classIds` the WordNet ids. `bbox` is the box enclosing every annotated dog of the image,
 * converted from VOC's 1-based inclusive bounds. Text lists are not supported: the dataset ships none.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { z } from 'zod';
import type { Box, DatasetItem, Split } from '../dataset';
import {
  boxFromOneBasedInclusive,
  DatasetInputError,
  enclosingBox,
  firstFile,
  isDirectory,
  type LoadOptions,
  type LoadResult,
  listFiles,
  mapLimit,
  Problems,
  requireDirectory,
} from './common';
import { MatAccess, readMatFile } from './mat';

interface ListEntry {
  image: string;
  annotation: string;
  label: number;
  split: Split;
  listFile: string;
  index: number;
}

export async function loadStanfordDogs(root: string, options: LoadOptions = {}): Promise<LoadResult> {
  const dir = path.resolve(root);
  const problems = new Problems(dir, options.skipInvalid ?? false);
  const imagesDir = await requireDirectory(path.join(dir, 'Images'), 'Stanford Dogs Images/');
  const entries = [...(await readList(dir, 'train', problems)), ...(await readList(dir, 'test', problems))];

  // Each label must name one breed folder, and each folder carry one label.
  const folderOfLabel = new Map<number, string>();
  const labelOfFolder = new Map<string, number>();
  const consistent = entries.filter((entry) => {
    const folder = entry.image.split('/')[0]!;
    const known = folderOfLabel.get(entry.label) ?? folder;
    const knownLabel = labelOfFolder.get(folder) ?? entry.label;
    if (known !== folder || knownLabel !== entry.label) {
      problems.report(
        { file: entry.listFile },
        `entry ${entry.index}: label ${entry.label} of ${entry.image} conflicts with earlier entries (label ${knownLabel}, folder ${known})`,
        path.join(imagesDir, entry.image),
      );
      return false;
    }
    folderOfLabel.set(entry.label, folder);
    labelOfFolder.set(folder, entry.label);
    return true;
  });
  const classCount = Math.max(0, ...folderOfLabel.keys());
  const folders: string[] = [];
  for (let label = 1; label <= classCount; label++) {
    const folder = folderOfLabel.get(label);
    if (!folder)
      throw new DatasetInputError(dir, `label ${label} has no image in train_list.mat or test_list.mat`);
    folders.push(folder);
  }

  const existing = new Set(await listFiles(imagesDir));
  const listed = consistent.filter((entry) => {
    if (existing.has(entry.image)) return true;
    problems.report(
      { file: entry.listFile },
      `entry ${entry.index}: listed image Images/${entry.image} does not exist`,
      path.join(imagesDir, entry.image),
    );
    return false;
  });

  const annotationDir = path.join(dir, 'Annotation');
  const withBoxes = await isDirectory(annotationDir);
  // Read concurrently, report in list order.
  const boxes = await mapLimit(listed, 32, (entry) =>
    withBoxes
      ? readVocBox(path.join(annotationDir, entry.annotation)).catch((error: unknown) => {
          if (error instanceof DatasetInputError) return error;
          throw error;
        })
      : Promise.resolve(undefined),
  );
  const items = listed.map((entry, i): DatasetItem => {
    const item: DatasetItem = { path: `Images/${entry.image}`, label: entry.label - 1, split: entry.split };
    const bbox = boxes[i];
    if (bbox instanceof DatasetInputError) problems.record(bbox);
    else if (bbox) item.bbox = bbox;
    return item;
  });
  return problems.result({
    name: 'stanford-dogs',
    root: dir,
    classes: folders.map((folder) => folder.slice(folder.indexOf('-') + 1)),
    classIds: folders.map((folder) => folder.split('-')[0]!),
    items,
  });
}

async function readList(dir: string, split: Split, problems: Problems): Promise<ListEntry[]> {
  const name = `${split}_list.mat`;
  const file = await firstFile([path.join(dir, name), path.join(dir, 'lists', name)]);
  if (!file) throw new DatasetInputError(path.join(dir, name), `missing Stanford Dogs split list ${name}`);
  const access = new MatAccess(file);
  const vars = await readMatFile(file);
  const images = access.strings(access.variable(vars, 'file_list'), 'file_list');
  const annotations = access.strings(access.variable(vars, 'annotation_list'), 'annotation_list');
  const labels = access.numbers(access.variable(vars, 'labels'), 'labels');
  if (annotations.length !== images.length || labels.length !== images.length) {
    throw new DatasetInputError(
      file,
      `file_list, annotation_list and labels differ in length (${images.length}, ${annotations.length}, ${labels.length})`,
    );
  }
  const entries: ListEntry[] = [];
  images.forEach((image, i) => {
    const label = labels[i]!;
    const annotation = annotations[i]!;
    if (
      !Number.isInteger(label) ||
      label < 1 ||
      !/^[^/]+\/[^/]+$/.test(image) ||
      !/^[^/]+\/[^/]+$/.test(annotation)
    ) {
      problems.report({ file }, `entry ${i + 1}: expected '<breed folder>/<file>' paths and a label >= 1`);
      return;
    }
    entries.push({ image, annotation, label, split, listFile: file, index: i + 1 });
  });
  return entries;
}

const vocNumber = z.number().finite();
const vocSchema = z.object({
  annotation: z.object({
    object: z
      .array(
        z.object({
          bndbox: z.object({ xmin: vocNumber, ymin: vocNumber, xmax: vocNumber, ymax: vocNumber }),
        }),
      )
      .min(1),
  }),
});

const vocParser = new XMLParser({ isArray: (_name, jpath) => String(jpath) === 'annotation.object' });

/** The box enclosing all objects of a PASCAL VOC annotation file. */
export async function readVocBox(file: string): Promise<Box> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new DatasetInputError(file, error.code === 'ENOENT' ? 'missing annotation file' : error.message);
  });
  let parsed: unknown;
  try {
    parsed = vocParser.parse(text);
  } catch (error) {
    throw new DatasetInputError(file, `malformed XML: ${(error as Error).message}`);
  }
  const voc = vocSchema.safeParse(parsed);
  if (!voc.success) {
    const issue = voc.error.issues[0]!;
    throw new DatasetInputError(
      file,
      `not a PASCAL VOC annotation: ${issue.path.join('.')}: ${issue.message}`,
    );
  }
  return enclosingBox(
    voc.data.annotation.object.map(({ bndbox: b }) =>
      boxFromOneBasedInclusive(b.xmin, b.ymin, b.xmax, b.ymax),
    ),
  )!;
}
