import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { DatasetManifest, Split } from '../../core/data/dataset';
import { seededWeights } from './onnx-graph';

/**
 * Writes one seeded-noise image per entry of `sizes` ([width, height]) under `root`, JPEG and PNG in
 * turn, labelled 0, 1, 0, ... out of two classes, and returns the dataset manifest naming them.
 */
export async function writeNoiseDataset(
  root: string,
  sizes: readonly (readonly [number, number])[],
  split: Split = 'train',
): Promise<DatasetManifest> {
  await mkdir(root, { recursive: true });
  const items: DatasetManifest['items'] = [];
  for (const [i, [width, height]] of sizes.entries()) {
    const pixels = Buffer.from(seededWeights(width * height * 3, 20 + i, 1).map((v) => (v + 1) * 127.5));
    const name = `image-${i}.${i % 2 ? 'png' : 'jpg'}`;
    await sharp(pixels, { raw: { width, height, channels: 3 } }).toFile(path.join(root, name));
    items.push({ path: name, label: i % 2, split });
  }
  return { name: 'generated', root, classes: ['a', 'b'], items };
}
