/**
 * CUB-200-2011 in its official layout: `images.txt`, `image_class_labels.txt`, `train_test_split.txt`,
 * `classes.txt`, `images/<class>/<file>`, optionally `bounding_boxes.txt` and `parts/parts.txt` +
 * `parts/part_locs.txt`. Ids are 1-based; labels follow the order of class ids; class names are kept as
 * written (`001.Black_footed_Albatross`). Boxes (`x y width height`, 0-based pixels) become `bbox`; the 15
 * part locations become `keypoints`, invisible ones included with `visible: false`.
 */
import path from 'node:path';
import type { Box, DatasetItem, Keypoint } from '../dataset';
import {
  firstFile,
  isFile,
  type LoadOptions,
  type LoadResult,
  listFiles,
  Problems,
  parseNumbers,
  readIdRows,
  readIdTable,
  requireDirectory,
  requireFile,
} from './common';

/** `root` is the `CUB_200_2011` folder, or a folder that holds it. */
export async function loadCub(root: string, options: LoadOptions = {}): Promise<LoadResult> {
  const base = path.resolve(root);
  const dir = path.dirname(
    (await firstFile([path.join(base, 'images.txt'), path.join(base, 'CUB_200_2011', 'images.txt')])) ??
      path.join(base, 'images.txt'),
  );
  const file = (name: string) => path.join(dir, name);
  const problems = new Problems(dir, options.skipInvalid ?? false);

  await requireFile(file('images.txt'), 'CUB index images.txt');
  await requireFile(file('image_class_labels.txt'), 'CUB index image_class_labels.txt');
  await requireFile(file('train_test_split.txt'), 'CUB index train_test_split.txt');
  await requireFile(file('classes.txt'), 'CUB index classes.txt');
  await requireDirectory(file('images'), 'CUB images/');

  const classRows = await readIdTable(
    file('classes.txt'),
    '<class id> <class name>',
    problems,
    (rest) => rest,
  );
  const classIdsInOrder = [...classRows.keys()].sort((a, b) => a - b);
  const labelOfClassId = new Map(classIdsInOrder.map((id, label) => [id, label]));
  const classes = classIdsInOrder.map((id) => classRows.get(id)!.value);

  const images = await readIdTable(file('images.txt'), '<image id> <image path>', problems, (rest) => rest);
  const labels = await readIdTable(
    file('image_class_labels.txt'),
    '<image id> <class id>',
    problems,
    (rest) => (/^\d+$/.test(rest) ? Number(rest) : undefined),
  );
  const splits = await readIdTable(
    file('train_test_split.txt'),
    '<image id> <is_training_image 0|1>',
    problems,
    (rest) => (rest === '1' ? ('train' as const) : rest === '0' ? ('test' as const) : undefined),
  );
  const boxes = (await isFile(file('bounding_boxes.txt')))
    ? await readIdTable(file('bounding_boxes.txt'), '<image id> <x> <y> <width> <height>', problems, parseBox)
    : undefined;
  const keypoints = await readKeypoints(dir, problems);

  // Secondary indexes must only name images that images.txt lists.
  for (const [name, table] of [
    ['image_class_labels.txt', labels],
    ['train_test_split.txt', splits],
    ['bounding_boxes.txt', boxes],
  ] as const) {
    for (const row of table?.values() ?? []) {
      if (!images.has(row.id))
        problems.report({ file: file(name), line: row.line }, `image id ${row.id} is not in images.txt`);
    }
  }

  const existing = new Set(await listFiles(file('images')));
  const items: DatasetItem[] = [];
  for (const id of [...images.keys()].sort((a, b) => a - b)) {
    const image = images.get(id)!;
    const where = { file: file('images.txt'), line: image.line };
    const imagePath = path.join(dir, 'images', image.value);
    if (!existing.has(image.value)) {
      problems.report(where, `listed image images/${image.value} does not exist`, imagePath);
      continue;
    }
    const label = labels.get(id);
    const split = splits.get(id);
    if (!label || !split) {
      const missingFrom = !label ? 'image_class_labels.txt' : 'train_test_split.txt';
      problems.report(where, `image id ${id} has no line in ${missingFrom}`, imagePath);
      continue;
    }
    const labelIndex = labelOfClassId.get(label.value);
    if (labelIndex === undefined) {
      problems.report(
        { file: file('image_class_labels.txt'), line: label.line },
        `class id ${label.value} is not in classes.txt`,
        imagePath,
      );
      continue;
    }
    const item: DatasetItem = { path: `images/${image.value}`, label: labelIndex, split: split.value };
    const bbox = boxes?.get(id)?.value;
    if (bbox) item.bbox = bbox;
    const points = keypoints?.get(id);
    if (points) item.keypoints = points;
    items.push(item);
  }
  return problems.result({ name: 'cub-200-2011', root: dir, classes, items });
}

function parseBox(rest: string): Box | undefined {
  const values = parseNumbers(rest, 4);
  if (!values) return undefined;
  const [x, y, width, height] = values as [number, number, number, number];
  return width >= 0 && height >= 0 ? { x0: x, y0: y, x1: x + width, y1: y + height } : undefined;
}

/** Keypoints per image id from parts/parts.txt and parts/part_locs.txt, or undefined without parts/. */
async function readKeypoints(dir: string, problems: Problems): Promise<Map<number, Keypoint[]> | undefined> {
  const partsFile = path.join(dir, 'parts', 'parts.txt');
  const locsFile = path.join(dir, 'parts', 'part_locs.txt');
  if (!(await isFile(partsFile))) return undefined;
  await requireFile(locsFile, 'CUB part locations (parts/parts.txt is present)');

  const partNames = await readIdTable(partsFile, '<part id> <part name>', problems, (rest) => rest);
  const rows = await readIdRows(locsFile, '<image id> <part id> <x> <y> <visible 0|1>', problems, (rest) => {
    const values = parseNumbers(rest, 4);
    if (!values) return undefined;
    const [partId, x, y, visible] = values as [number, number, number, number];
    return Number.isInteger(partId) && (visible === 0 || visible === 1)
      ? { partId, x, y, visible }
      : undefined;
  });
  const perImage = new Map<number, (Keypoint & { partId: number })[]>();
  for (const { id, value, line } of rows) {
    const part = partNames.get(value.partId);
    if (!part) {
      problems.report({ file: locsFile, line }, `part id ${value.partId} is not in parts/parts.txt`);
      continue;
    }
    const list = perImage.get(id) ?? [];
    list.push({
      partId: value.partId,
      part: part.value,
      x: value.x,
      y: value.y,
      visible: value.visible === 1,
    });
    perImage.set(id, list);
  }
  return new Map(
    [...perImage].map(([id, list]) => [
      id,
      list.sort((a, b) => a.partId - b.partId).map(({ part, x, y, visible }) => ({ part, x, y, visible })),
    ]),
  );
}
