/**
 * Writers of small dataset trees in the official layouts (real images, text indexes, PASCAL VOC XML and
 * MATLAB Level 5 MAT-files), for the loader tests.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { Backbone } from '../../core/backbones/backbone';

/** Writes a small real image; the format follows the extension (.jpg/.jpeg/.JPEG, .png, .webp, .tif/.tiff). */
/** A backbone as the features' cache key sees it, for tests of what the key follows. */
export const KEY_BACKBONE: Pick<Backbone, 'name' | 'fingerprint' | 'preprocessing' | 'preset'> = {
  name: 'key-test',
  fingerprint: '0',
  preprocessing: { resize: 256, crop: 224, scale: 'imagenet' },
  preset: 'resnet50',
};

export async function writeImage(file: string, width = 12, height = 9, seed = 0): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + seed * 101) % 256;
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  const ext = path.extname(file).toLowerCase();
  const encoded =
    ext === '.png'
      ? image.png()
      : ext === '.webp'
        ? image.webp()
        : ext === '.tif' || ext === '.tiff'
          ? image.tiff({ compression: 'lzw' })
          : image.jpeg();
  await encoded.toFile(file);
}

export async function writeText(file: string, lines: string[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, lines.map((line) => `${line}\n`).join(''));
}

// ---------------------------------------------------------------- MAT-files (Level 5, as MATLAB -v6/-v7)

type NumericClass = 'double' | 'single' | 'uint8' | 'uint16' | 'int32';

export type MatIn =
  | { kind: 'char'; text: string }
  | { kind: 'numeric'; mxClass: NumericClass; storeAs: NumericClass; values: number[]; dims: number[] }
  | { kind: 'cell'; cells: MatIn[]; dims: number[] }
  | { kind: 'struct'; fields: string[]; elements: Record<string, MatIn>[]; dims: number[] };

/** Constructors of MAT values; dims default to a column (N x 1) as the datasets store lists. */
export const mat = {
  char: (text: string): MatIn => ({ kind: 'char', text }),
  /** `storeAs` is the storage type: MATLAB stores e.g. small integer-valued doubles as uint8. */
  numeric: (
    mxClass: NumericClass,
    values: number[],
    storeAs: NumericClass = mxClass,
    dims?: number[],
  ): MatIn => ({
    kind: 'numeric',
    mxClass,
    storeAs,
    values,
    dims: dims ?? [values.length, 1],
  }),
  cell: (cells: MatIn[], dims?: number[]): MatIn => ({
    kind: 'cell',
    cells,
    dims: dims ?? [cells.length, 1],
  }),
  struct: (elements: Record<string, MatIn>[], dims?: number[]): MatIn => ({
    kind: 'struct',
    fields: Object.keys(elements[0] ?? {}),
    elements,
    dims: dims ?? [1, elements.length],
  }),
};

const MI = {
  INT8: 1,
  UINT8: 2,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  MATRIX: 14,
  COMPRESSED: 15,
};
const MX = { CELL: 1, STRUCT: 2, CHAR: 4, double: 6, single: 7, uint8: 9, uint16: 11, int32: 12 } as const;
const STORAGE: Record<NumericClass, [type: number, width: number]> = {
  double: [MI.DOUBLE, 8],
  single: [MI.SINGLE, 4],
  uint8: [MI.UINT8, 1],
  uint16: [MI.UINT16, 2],
  int32: [MI.INT32, 4],
};

class MatWriter {
  constructor(private readonly le: boolean) {}

  typed(type: number, width: number, values: number[]): Buffer {
    const bytes = Buffer.alloc(values.length * width);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    values.forEach((v, i) => {
      const at = i * width;
      if (type === MI.DOUBLE) view.setFloat64(at, v, this.le);
      else if (type === MI.SINGLE) view.setFloat32(at, v, this.le);
      else if (type === MI.UINT8 || type === MI.INT8) view.setUint8(at, v);
      else if (type === MI.UINT16) view.setUint16(at, v, this.le);
      else if (type === MI.INT32) view.setInt32(at, v, this.le);
      else view.setUint32(at, v, this.le);
    });
    return bytes;
  }

  /** A data element; 1 to 4 bytes of data go in the small format, as MATLAB writes them. */
  element(type: number, data: Buffer): Buffer {
    if (data.length > 0 && data.length <= 4) {
      return Buffer.concat([
        this.typed(MI.UINT32, 4, [(data.length << 16) | type]),
        data,
        Buffer.alloc(4 - data.length),
      ]);
    }
    const pad = Buffer.alloc((8 - (data.length % 8)) % 8);
    return Buffer.concat([this.typed(MI.UINT32, 4, [type, data.length]), data, pad]);
  }

  matrix(value: MatIn, name: string): Buffer {
    const header = (mxClass: number, dims: number[]) => [
      this.element(MI.UINT32, this.typed(MI.UINT32, 4, [mxClass, 0])),
      this.element(MI.INT32, this.typed(MI.INT32, 4, dims)),
      this.element(MI.INT8, Buffer.from(name, 'latin1')),
    ];
    let parts: Buffer[];
    switch (value.kind) {
      case 'char': {
        const codes = [...value.text].map((c) => c.charCodeAt(0));
        parts = [
          ...header(MX.CHAR, [1, codes.length]),
          this.element(MI.UINT16, this.typed(MI.UINT16, 2, codes)),
        ];
        break;
      }
      case 'numeric': {
        const [type, width] = STORAGE[value.storeAs];
        parts = [
          ...header(MX[value.mxClass], value.dims),
          this.element(type, this.typed(type, width, value.values)),
        ];
        break;
      }
      case 'cell':
        parts = [...header(MX.CELL, value.dims), ...value.cells.map((cell) => this.matrix(cell, ''))];
        break;
      case 'struct': {
        const length = 32;
        const names = Buffer.alloc(value.fields.length * length);
        value.fields.forEach((field, i) => {
          names.write(field, i * length, 'latin1');
        });
        parts = [
          ...header(MX.STRUCT, value.dims),
          this.element(MI.INT32, this.typed(MI.INT32, 4, [length])),
          this.element(MI.INT8, names),
          ...value.elements.flatMap((element) =>
            value.fields.map((field) => this.matrix(element[field]!, '')),
          ),
        ];
        break;
      }
    }
    const content = Buffer.concat(parts);
    return Buffer.concat([this.typed(MI.UINT32, 4, [MI.MATRIX, content.length]), content]);
  }
}

export interface MatWriteOptions {
  /** Wrap each variable in a zlib-compressed element, as MATLAB's default -v7 does. */
  compress?: boolean;
  bigEndian?: boolean;
}

export function encodeMat(vars: Record<string, MatIn>, options: MatWriteOptions = {}): Buffer {
  const writer = new MatWriter(!options.bigEndian);
  const header = Buffer.alloc(128, ' ');
  header.write('MATLAB 5.0 MAT-file, written by the infodisent tests', 0, 'latin1');
  header.fill(0, 116, 124);
  header.writeUInt16LE(0x0100, 124);
  if (options.bigEndian) header.writeUInt16BE(0x0100, 124);
  header.write(options.bigEndian ? 'MI' : 'IM', 126, 'latin1');
  const bodies = Object.entries(vars).map(([name, value]) => {
    const matrix = writer.matrix(value, name);
    if (!options.compress) return matrix;
    const packed = deflateSync(matrix);
    return Buffer.concat([writer.typed(MI.UINT32, 4, [MI.COMPRESSED, packed.length]), packed]);
  });
  return Buffer.concat([header, ...bodies]);
}

export async function writeMat(
  file: string,
  vars: Record<string, MatIn>,
  options: MatWriteOptions = {},
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, encodeMat(vars, options));
}

// ---------------------------------------------------------------- CUB-200-2011

export const CUB_PARTS = [
  'back',
  'beak',
  'belly',
  'breast',
  'crown',
  'forehead',
  'left eye',
  'left leg',
  'left wing',
  'nape',
  'right eye',
  'right leg',
  'right wing',
  'tail',
  'throat',
];

export interface CubImage {
  /** 1-based class id. */
  classId: number;
  file: string;
  train: boolean;
  box: [x: number, y: number, width: number, height: number];
}

/** Writes CUB_200_2011's files for `classes` (names like 001.Black_footed_Albatross) and `images`. */
export async function writeCub(
  dir: string,
  classes: string[],
  images: CubImage[],
  withParts = true,
): Promise<void> {
  await writeText(
    path.join(dir, 'classes.txt'),
    classes.map((name, i) => `${i + 1} ${name}`),
  );
  const rel = (image: CubImage) => `${classes[image.classId - 1]}/${image.file}`;
  await writeText(
    path.join(dir, 'images.txt'),
    images.map((image, i) => `${i + 1} ${rel(image)}`),
  );
  await writeText(
    path.join(dir, 'image_class_labels.txt'),
    images.map((image, i) => `${i + 1} ${image.classId}`),
  );
  await writeText(
    path.join(dir, 'train_test_split.txt'),
    images.map((image, i) => `${i + 1} ${image.train ? 1 : 0}`),
  );
  await writeText(
    path.join(dir, 'bounding_boxes.txt'),
    images.map((image, i) => `${i + 1} ${image.box.map((v) => v.toFixed(1)).join(' ')}`),
  );
  for (const [i, image] of images.entries())
    await writeImage(path.join(dir, 'images', rel(image)), 16, 12, i);
  if (!withParts) return;
  await writeText(
    path.join(dir, 'parts', 'parts.txt'),
    CUB_PARTS.map((name, i) => `${i + 1} ${name}`),
  );
  // Part p of image i sits at (10i + p, p + 0.5), visible for odd p.
  await writeText(
    path.join(dir, 'parts', 'part_locs.txt'),
    images.flatMap((_, i) =>
      CUB_PARTS.map(
        (_, p) => `${i + 1} ${p + 1} ${(10 * i + p + 1).toFixed(1)} ${(p + 1.5).toFixed(1)} ${(p + 1) % 2}`,
      ),
    ),
  );
}

// ---------------------------------------------------------------- Stanford Cars

export interface CarImage {
  fname: string;
  /** 1-based class number. */
  classNo: number;
  box: [x1: number, y1: number, x2: number, y2: number];
}

function carStruct<T extends CarImage>(images: T[], extra: (image: T) => Record<string, MatIn>): MatIn {
  return mat.struct(
    images.map((image) => ({
      bbox_x1: mat.numeric('uint16', [image.box[0]], 'uint8', [1, 1]),
      bbox_y1: mat.numeric('uint16', [image.box[1]], 'uint8', [1, 1]),
      bbox_x2: mat.numeric('uint16', [image.box[2]], 'uint16', [1, 1]),
      bbox_y2: mat.numeric('uint16', [image.box[3]], 'uint16', [1, 1]),
      class: mat.numeric('uint8', [image.classNo], 'uint8', [1, 1]),
      ...extra(image),
    })),
  );
}

const classNameCell = (names: string[]) => mat.cell(names.map(mat.char), [1, names.length]);

/** The devkit release: cars_train/, cars_test/, devkit/*.mat and cars_test_annos_withlabels.mat. */
export async function writeCarsDevkit(
  dir: string,
  classNames: string[],
  train: CarImage[],
  test: CarImage[],
  options: MatWriteOptions = {},
): Promise<void> {
  const fname = (image: CarImage) => ({ fname: mat.char(image.fname) });
  await writeMat(
    path.join(dir, 'devkit', 'cars_meta.mat'),
    { class_names: classNameCell(classNames) },
    options,
  );
  await writeMat(
    path.join(dir, 'devkit', 'cars_train_annos.mat'),
    { annotations: carStruct(train, fname) },
    options,
  );
  await writeMat(
    path.join(dir, 'cars_test_annos_withlabels.mat'),
    { annotations: carStruct(test, fname) },
    options,
  );
  for (const [i, image] of train.entries())
    await writeImage(path.join(dir, 'cars_train', image.fname), 20, 14, i);
  for (const [i, image] of test.entries())
    await writeImage(path.join(dir, 'cars_test', image.fname), 14, 20, i);
}

/** The single-file release: car_ims/ and cars_annos.mat. */
export async function writeCarsAnnos(
  dir: string,
  classNames: string[],
  images: (CarImage & { test: boolean })[],
): Promise<void> {
  const annotations = carStruct(images, (image) => ({
    relative_im_path: mat.char(`car_ims/${image.fname}`),
    test: mat.numeric('uint8', [image.test ? 1 : 0], 'uint8', [1, 1]),
  }));
  await writeMat(path.join(dir, 'cars_annos.mat'), { annotations, class_names: classNameCell(classNames) });
  for (const [i, image] of images.entries())
    await writeImage(path.join(dir, 'car_ims', image.fname), 10, 10, i);
}

/** `<root>/<split>/<class>/<file>` for each listed file. */
export async function writeClassFolders(
  dir: string,
  splits: Record<string, Record<string, string[]>>,
): Promise<void> {
  let seed = 0;
  for (const [split, classes] of Object.entries(splits)) {
    for (const [className, files] of Object.entries(classes)) {
      for (const file of files) await writeImage(path.join(dir, split, className, file), 8, 8, seed++);
    }
  }
}

// ---------------------------------------------------------------- Stanford Dogs

export interface DogImage {
  /** 1-based breed number (the lists' label). */
  breed: number;
  id: string;
  boxes: [xmin: number, ymin: number, xmax: number, ymax: number][];
}

export function vocXml(folder: string, filename: string, name: string, boxes: DogImage['boxes']): string {
  const objects = boxes.map(
    ([xmin, ymin, xmax, ymax]) => `
	<object>
		<name>${name}</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox>
			<xmin>${xmin}</xmin>
			<ymin>${ymin}</ymin>
			<xmax>${xmax}</xmax>
			<ymax>${ymax}</ymax>
		</bndbox>
	</object>`,
  );
  return `<annotation>
	<folder>${folder}</folder>
	<filename>${filename}</filename>
	<source>
		<database>ImageNet database</database>
	</source>
	<size>
		<width>500</width>
		<height>375</height>
		<depth>3</depth>
	</size>
	<segment>0</segment>${objects.join('')}
</annotation>
`;
}

/** Images/, Annotation/ (one VOC file per image) and lists train_list.mat, test_list.mat. */
export async function writeDogs(
  dir: string,
  breeds: { wnid: string; name: string }[],
  train: DogImage[],
  test: DogImage[],
): Promise<void> {
  const folder = (image: DogImage) => {
    const breed = breeds[image.breed - 1]!;
    return `${breed.wnid}-${breed.name}`;
  };
  const list = (images: DogImage[]) => ({
    file_list: mat.cell(images.map((image) => mat.char(`${folder(image)}/${image.id}.jpg`))),
    annotation_list: mat.cell(images.map((image) => mat.char(`${folder(image)}/${image.id}`))),
    // Labels are doubles that MATLAB stores as uint8.
    labels: mat.numeric(
      'double',
      images.map((image) => image.breed),
      'uint8',
    ),
  });
  await writeMat(path.join(dir, 'train_list.mat'), list(train), { compress: true });
  await writeMat(path.join(dir, 'test_list.mat'), list(test), { compress: true });
  for (const [i, image] of [...train, ...test].entries()) {
    await writeImage(path.join(dir, 'Images', folder(image), `${image.id}.jpg`), 9, 7, i);
    const xml = vocXml(
      breeds[image.breed - 1]!.wnid.slice(1),
      image.id,
      breeds[image.breed - 1]!.name,
      image.boxes,
    );
    await mkdir(path.join(dir, 'Annotation', folder(image)), { recursive: true });
    await writeFile(path.join(dir, 'Annotation', folder(image), image.id), xml);
  }
}

// ---------------------------------------------------------------- ImageNet ILSVRC2012

export interface ImageNetVal {
  wnid: string;
  boxes: [xmin: number, ymin: number, xmax: number, ymax: number][];
}

export const valFileName = (n: number) => `ILSVRC2012_val_${String(n).padStart(8, '0')}.JPEG`;

/**
 * train/<wnid>/<wnid>_<n>.JPEG (`trainPerClass` each) and val/ in one of its layouts; with `kaggle`, under
 * ILSVRC/Data/CLS-LOC/ as the Kaggle release has it. Writes LOC_synset_mapping.txt unless `devkit`.
 */
export async function writeImageNet(
  dir: string,
  synsets: { wnid: string; name: string; ilsvrcId: number }[],
  trainPerClass: number,
  val: ImageNetVal[],
  layout: { val: 'loc-csv' | 'devkit' | 'folders'; kaggle?: boolean },
): Promise<void> {
  const base = layout.kaggle ? path.join(dir, 'ILSVRC', 'Data', 'CLS-LOC') : dir;
  for (const { wnid } of synsets) {
    for (let n = 1; n <= trainPerClass; n++)
      await writeImage(path.join(base, 'train', wnid, `${wnid}_${n}.JPEG`), 11, 8, n);
  }
  for (const [i, image] of val.entries()) {
    const folder = layout.val === 'folders' ? path.join(base, 'val', image.wnid) : path.join(base, 'val');
    await writeImage(path.join(folder, valFileName(i + 1)), 8, 11, i);
  }
  if (layout.val !== 'devkit') {
    await writeText(
      path.join(dir, 'LOC_synset_mapping.txt'),
      synsets.map((s) => `${s.wnid} ${s.name}`),
    );
  }
  if (layout.val === 'loc-csv') {
    await writeText(path.join(dir, 'LOC_val_solution.csv'), [
      'ImageId,PredictionString',
      ...val.map((image, i) => {
        const prediction = image.boxes.map((box) => `${image.wnid} ${box.join(' ')}`).join(' ');
        return `${valFileName(i + 1).replace('.JPEG', '')},${prediction} `;
      }),
    ]);
  }
  if (layout.val === 'devkit') {
    const data = path.join(dir, 'ILSVRC2012_devkit_t12', 'data');
    const idOf = new Map(synsets.map((s) => [s.wnid, s.ilsvrcId]));
    await writeText(
      path.join(data, 'ILSVRC2012_validation_ground_truth.txt'),
      val.map((image) => String(idOf.get(image.wnid))),
    );
    // meta.mat also lists non-leaf synsets (num_children > 0), which are not classes.
    const leaf = (s: { wnid: string; name: string; ilsvrcId: number }, children: number) => ({
      ILSVRC2012_ID: mat.numeric('double', [s.ilsvrcId], 'uint16', [1, 1]),
      WNID: mat.char(s.wnid),
      words: mat.char(s.name),
      gloss: mat.char(`gloss of ${s.name}`),
      num_children: mat.numeric('double', [children], 'uint8', [1, 1]),
      children: mat.numeric('double', [], 'double', [1, 0]),
      wordnet_height: mat.numeric('double', [0], 'uint8', [1, 1]),
      num_train_images: mat.numeric('double', [trainPerClass], 'uint16', [1, 1]),
    });
    const parent = { wnid: 'n00001740', name: 'entity', ilsvrcId: synsets.length + 1 };
    await writeMat(
      path.join(data, 'meta.mat'),
      { synsets: mat.struct([...synsets.map((s) => leaf(s, 0)), leaf(parent, 3)], [synsets.length + 1, 1]) },
      { compress: true },
    );
  }
}
