/**
 * ImageNet ILSVRC2012 (CLS-LOC). Images: `train/<wnid>/*.JPEG` and `val/`, under the root or under
 * `ILSVRC/Data/CLS-LOC/` (the Kaggle release). The validation images (split 'test') are read as
 * - class folders `val/<wnid>/*` (after the usual valprep re-arrangement), or
 * - a flat `val/` labelled by `LOC_val_solution.csv` (`ImageId,PredictionString`, the string holding
 *   `<wnid> xmin ymin xmax ymax` per object: these give `bbox`, the box enclosing all objects), or
 * - a flat `val/` labelled by the devkit: `ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt`
 *   (line n: the ILSVRC2012_ID of `ILSVRC2012_val_<n, 8 digits>.JPEG`) with `.../data/meta.mat`.
 * Classes are the WordNet ids in code-point order (torchvision's order), as `classIds`; `classes` are the
 * names from `LOC_synset_mapping.txt` (`n01440764 tench, Tinca tinca`), else from the devkit's meta.mat,
 * else the ids themselves.
 */
import path from 'node:path';
import type { DatasetItem } from '../dataset';
import { classFolderItems, scanClassFolders } from './class-folders';
import {
  boxFromOneBasedInclusive,
  byCodePoint,
  DatasetInputError,
  enclosingBox,
  firstFile,
  imageFiles,
  isDirectory,
  type LoadOptions,
  type LoadResult,
  listFiles,
  listSubdirectories,
  Problems,
  readIndexLines,
  relativePath,
  requireDirectory,
  type Where,
} from './common';
import { MatAccess, readMatFile } from './mat';

interface Synset {
  wnid: string;
  name: string;
  /** The devkit's ILSVRC2012_ID, where known. */
  id?: number;
}

interface ValLabel {
  wnid: string;
  where: Where;
  bbox?: DatasetItem['bbox'];
}

const WNID = /^n\d{8}$/;

export async function loadImageNet(root: string, options: LoadOptions = {}): Promise<LoadResult> {
  const dir = path.resolve(root);
  const problems = new Problems(dir, options.skipInvalid ?? false);
  const kaggle = path.join(dir, 'ILSVRC', 'Data', 'CLS-LOC');
  const base = (await isDirectory(kaggle)) ? kaggle : dir;
  const trainDir = await requireDirectory(path.join(base, 'train'), 'ImageNet train/');
  const valDir = await requireDirectory(path.join(base, 'val'), 'ImageNet val/');
  const devkitData = path.join(dir, 'ILSVRC2012_devkit_t12', 'data');
  const metaFile = await firstFile([path.join(devkitData, 'meta.mat')]);

  const train = await scanClassFolders(trainDir, problems);
  const mappingFile = await firstFile([path.join(dir, 'LOC_synset_mapping.txt')]);
  const synsets = mappingFile
    ? await readSynsetMapping(mappingFile, problems)
    : metaFile
      ? await readMetaSynsets(metaFile)
      : [...train.keys()].map((wnid) => ({ wnid, name: wnid }));
  synsets.sort((a, b) => byCodePoint(a.wnid, b.wnid));
  const labelOf = new Map(synsets.map((s, label) => [s.wnid, label]));

  const items = classFolderItems(dir, trainDir, 'train', train, labelOf, problems);
  if ((await listSubdirectories(valDir)).length > 0) {
    items.push(
      ...classFolderItems(dir, valDir, 'test', await scanClassFolders(valDir, problems), labelOf, problems),
    );
  } else {
    const solution = await firstFile([path.join(dir, 'LOC_val_solution.csv')]);
    const groundTruth = await firstFile([path.join(devkitData, 'ILSVRC2012_validation_ground_truth.txt')]);
    let labels: Map<string, ValLabel>;
    if (solution) labels = await readValSolution(solution, problems);
    else if (groundTruth) {
      if (!metaFile)
        throw new DatasetInputError(path.join(devkitData, 'meta.mat'), 'missing devkit meta.mat');
      labels = await readValGroundTruth(groundTruth, await readMetaSynsets(metaFile), problems);
    } else {
      throw new DatasetInputError(
        valDir,
        'flat val/ needs LOC_val_solution.csv or ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt',
      );
    }
    items.push(...(await flatValItems(dir, valDir, labels, labelOf, problems)));
  }
  return problems.result({
    name: 'imagenet-1k',
    root: dir,
    classes: synsets.map((s) => s.name),
    classIds: synsets.map((s) => s.wnid),
    items,
  });
}

async function readSynsetMapping(file: string, problems: Problems): Promise<Synset[]> {
  const synsets = new Map<string, Synset>();
  for (const { line, text } of await readIndexLines(file)) {
    const match = /^(\S+)\s+(.+)$/.exec(text);
    if (!match || !WNID.test(match[1]!)) {
      problems.report({ file, line }, "malformed line, expected '<wnid> <class name>'");
    } else if (synsets.has(match[1]!)) {
      problems.report({ file, line }, `synset ${match[1]} repeats`);
    } else synsets.set(match[1]!, { wnid: match[1]!, name: match[2]! });
  }
  return [...synsets.values()];
}

/** The 1000 leaf synsets of the devkit's meta.mat, as torchvision's ImageNet dataset reads them. */
async function readMetaSynsets(file: string): Promise<Synset[]> {
  const access = new MatAccess(file);
  const elements = access.structs(access.variable(await readMatFile(file), 'synsets'), 'synsets');
  const leaves: Synset[] = [];
  elements.forEach((element, i) => {
    const where = `synsets(${i + 1})`;
    const number = (field: string) => access.number(access.field(element, field, where), `${where}.${field}`);
    const string = (field: string) => access.string(access.field(element, field, where), `${where}.${field}`);
    if (number('num_children') === 0) {
      leaves.push({ wnid: string('WNID'), name: string('words'), id: number('ILSVRC2012_ID') });
    }
  });
  return leaves;
}

async function readValSolution(file: string, problems: Problems): Promise<Map<string, ValLabel>> {
  const lines = await readIndexLines(file);
  if (lines[0]?.text.replace(/\s/g, '') !== 'ImageId,PredictionString') {
    throw new DatasetInputError(file, "expected the header 'ImageId,PredictionString'", lines[0]?.line ?? 1);
  }
  const labels = new Map<string, ValLabel>();
  for (const { line, text } of lines.slice(1)) {
    const where = { file, line };
    const [imageId, prediction, ...extra] = text.split(',');
    const tokens = prediction?.trim().split(/\s+/) ?? [];
    const groups: string[][] = [];
    for (let i = 0; i + 5 <= tokens.length; i += 5) groups.push(tokens.slice(i, i + 5));
    const boxes = groups.map(([, ...coords]) => coords.map(Number) as [number, number, number, number]);
    if (
      !imageId ||
      extra.length > 0 ||
      groups.length === 0 ||
      tokens.length !== groups.length * 5 ||
      !groups.every((g) => WNID.test(g[0]!) && g[0] === groups[0]![0]) ||
      !boxes.every((b) => b.every(Number.isFinite))
    ) {
      problems.report(
        where,
        "malformed line, expected '<ImageId>,<wnid> <xmin> <ymin> <xmax> <ymax> ...' (one wnid)",
      );
      continue;
    }
    const imageFile = `${imageId}.JPEG`;
    if (labels.has(imageFile)) {
      problems.report(where, `image ${imageId} repeats`);
      continue;
    }
    const bbox = enclosingBox(boxes.map(([x0, y0, x1, y1]) => boxFromOneBasedInclusive(x0, y0, x1, y1)));
    labels.set(imageFile, { wnid: groups[0]![0]!, where, ...(bbox ? { bbox } : {}) });
  }
  return labels;
}

async function readValGroundTruth(
  file: string,
  synsets: Synset[],
  problems: Problems,
): Promise<Map<string, ValLabel>> {
  const wnidOfId = new Map(synsets.map((s) => [s.id, s.wnid]));
  const labels = new Map<string, ValLabel>();
  for (const { line, text } of await readIndexLines(file)) {
    const wnid = /^\d+$/.test(text) ? wnidOfId.get(Number(text)) : undefined;
    if (!wnid) {
      problems.report(
        { file, line },
        `expected an ILSVRC2012_ID of meta.mat's leaf synsets, found '${text}'`,
      );
      continue;
    }
    labels.set(`ILSVRC2012_val_${String(line).padStart(8, '0')}.JPEG`, { wnid, where: { file, line } });
  }
  return labels;
}

async function flatValItems(
  root: string,
  valDir: string,
  labels: Map<string, ValLabel>,
  labelOf: Map<string, number>,
  problems: Problems,
): Promise<DatasetItem[]> {
  const valRel = relativePath(root, valDir);
  const files = imageFiles(valDir, await listFiles(valDir), problems);
  const present = new Set(files);
  for (const [file, { where }] of labels) {
    if (!present.has(file))
      problems.report(where, `listed image ${valRel}/${file} does not exist`, path.join(valDir, file));
  }
  const items: DatasetItem[] = [];
  for (const file of files) {
    const entry = labels.get(file);
    const label = entry && labelOf.get(entry.wnid);
    if (!entry) {
      problems.report({ file: path.join(valDir, file) }, 'validation image has no label');
    } else if (label === undefined) {
      problems.report(entry.where, `synset ${entry.wnid} is not among the classes`, path.join(valDir, file));
    } else {
      items.push({
        path: `${valRel}/${file}`,
        label,
        split: 'test',
        ...(entry.bbox ? { bbox: entry.bbox } : {}),
      });
    }
  }
  return items;
}
