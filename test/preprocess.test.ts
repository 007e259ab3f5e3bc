import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import sharp from 'sharp';
import {
  cropBoxToImage,
  cropGeometry,
  featureCellToImage,
  ImageDecodeError,
  PRESETS,
  type PreprocessPreset,
  type PresetName,
  preprocessImage,
} from '../core/data/preprocess';
import { PreprocessPool } from '../core/data/preprocess-pool';
import { runPythonReference, torchPython } from './support/python';

interface ReferenceResult {
  data: string;
  mode: string;
  /** Not from torchvision, which does not say. */
  resized?: [number, number];
  crop?: [number, number];
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'preprocess-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Smooth gradients plus pseudo-random texture, so every resampling tap matters. */
function texture(width: number, height: number, channels: number, seed: number): Buffer {
  const pixels = Buffer.alloc(width * height * channels);
  let state = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        state = (state * 1103515245 + 12345) % 2147483648;
        const smooth =
          c === 0 ? (x * 255) / width : c === 1 ? (y * 255) / height : ((x + y) * 128) / (width + height);
        pixels[(y * width + x) * channels + c] = Math.round(0.7 * smooth + 0.3 * (state % 256));
      }
    }
  }
  return pixels;
}

function decodeFloats(base64: string): Float32Array {
  const bytes = Buffer.from(base64, 'base64');
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

describe('preprocessImage against torchvision on PIL (reference/preprocess_reference.py)', () => {
  const rgb = (width: number, height: number, seed: number) =>
    sharp(texture(width, height, 3, seed), { raw: { width, height, channels: 3 } });
  // Odd sizes on purpose: 200x301 resizes to 256x385, whose crop offset (385-224)/2 = 80.5 rounds half to
  // even; 100x150 and 256x256 upscale; 260x999 shrinks the height most (Pillow 13 resizes it vertically first).
  const images: {
    name: string;
    width: number;
    height: number;
    write: (file: string) => Promise<unknown>;
    mode: string;
  }[] = [
    { name: 'a.png', width: 333, height: 500, mode: 'RGB', write: (f) => rgb(333, 500, 1).png().toFile(f) },
    {
      name: 'b.jpg',
      width: 517,
      height: 301,
      mode: 'RGB',
      write: (f) => rgb(517, 301, 2).jpeg({ quality: 88 }).toFile(f),
    },
    { name: 'c.png', width: 200, height: 301, mode: 'RGB', write: (f) => rgb(200, 301, 3).png().toFile(f) },
    {
      name: 'd.webp',
      width: 260,
      height: 999,
      mode: 'RGB',
      write: (f) => rgb(260, 999, 4).webp({ quality: 80 }).toFile(f),
    },
    { name: 'e.png', width: 100, height: 150, mode: 'RGB', write: (f) => rgb(100, 150, 5).png().toFile(f) },
    { name: 'f.png', width: 256, height: 256, mode: 'RGB', write: (f) => rgb(256, 256, 6).png().toFile(f) },
    {
      name: 'g.tif',
      width: 211,
      height: 240,
      mode: 'RGB',
      write: (f) => rgb(211, 240, 10).tiff({ compression: 'lzw' }).toFile(f),
    },
    {
      name: 'grey.png',
      width: 301,
      height: 245,
      mode: 'L',
      write: (f) =>
        sharp(texture(301, 245, 1, 7), { raw: { width: 301, height: 245, channels: 1 } })
          .toColourspace('b-w')
          .png()
          .toFile(f),
    },
    {
      name: 'alpha.png',
      width: 289,
      height: 311,
      mode: 'RGBA',
      write: (f) =>
        sharp(texture(289, 311, 4, 8), { raw: { width: 289, height: 311, channels: 4 } })
          .png()
          .toFile(f),
    },
    {
      name: 'palette.png',
      width: 243,
      height: 263,
      mode: 'P',
      write: (f) => rgb(243, 263, 9).png({ palette: true, colours: 64, dither: 0 }).toFile(f),
    },
  ];
  const presets: PresetName[] = ['resnet50', 'convnext_tiny', 'swin_v2_s', 'mobilenet_v2_tfjs'];

  const jobsFor = async () => {
    for (const image of images) await image.write(path.join(dir, image.name));
    return presets.flatMap((preset) =>
      images.map((image) => ({
        preset,
        image,
        job: { path: path.join(dir, image.name), ...PRESETS[preset] },
      })),
    );
  };

  /**
   * Every output equal to the reference's. The port follows Pillow >= 13's pass order; older Pillow resizes
   * horizontally first, which moves a few pixels by one 8-bit level where the height shrinks most. Decoders
   * (libjpeg-turbo, libwebp, libpng) are deterministic, so with Pillow >= 13 every value must be identical.
   */
  async function assertEqualToReference(
    t: TestContext,
    jobs: Awaited<ReturnType<typeof jobsFor>>,
    reference: { pillow: string; results: ReferenceResult[] },
  ) {
    const pillowMajor = Number(reference.pillow.split('.')[0]);
    for (const [j, { preset, image, job }] of jobs.entries()) {
      const expected = reference.results[j]!;
      const ours = await preprocessImage(job.path, preset);
      assert.equal(expected.mode, image.mode, `${image.name} decodes in PIL mode ${image.mode}`);
      if (expected.resized && expected.crop) {
        assert.deepEqual(
          [
            ours.geometry.resizedWidth,
            ours.geometry.resizedHeight,
            ours.geometry.cropLeft,
            ours.geometry.cropTop,
          ],
          [...expected.resized, ...expected.crop],
          `${preset} geometry of ${image.name}`,
        );
      }
      const want = decodeFloats(expected.data);
      assert.equal(ours.data.length, want.length);
      let max = 0;
      let sum = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(ours.data[i]! - want[i]!);
        max = Math.max(max, d);
        sum += d;
      }
      t.diagnostic(`${preset} ${image.name}: max |diff| ${max}, mean |diff| ${sum / want.length}`);
      // One 8-bit level after normalisation, the most an older Pillow's pass order can change.
      const level = 1 / (255 * Math.min(...PRESETS[preset].std)) + 1e-6;
      assert.ok(max <= (pillowMajor >= 13 ? 0 : level), `${preset} ${image.name}: max |diff| ${max}`);
    }
  }

  test('outputs equal the reference on every image and preset', async (t) => {
    const jobs = await jobsFor();
    const reference = runPythonReference<{ pillow: string; results: ReferenceResult[] }>(
      'preprocess_reference.py',
      { jobs: jobs.map(({ job }) => job) },
    );
    await assertEqualToReference(t, jobs, reference);
  });

  test("outputs equal torchvision's own transforms on every image and preset", async (t) => {
    const found = torchPython(['torch', 'torchvision']);
    if ('skip' in found) {
      t.skip(found.skip);
      return;
    }
    const jobs = await jobsFor();
    const reference = runPythonReference<{ pillow: string; results: ReferenceResult[] }>(
      'preprocess_reference.py',
      { library: 'torchvision', jobs: jobs.map(({ job }) => job) },
      found.python,
    );
    await assertEqualToReference(t, jobs, reference);
  });
});

test("small crops, tiny images and upscales equal Pillow too (the SIMD passes' row tails)", async () => {
  // Crops of 4 and 5 px have rows under 16 bytes; 6 and 17 px end in a partial 16-byte block.
  const cases: { width: number; height: number; preset: PreprocessPreset }[] = [];
  const sizes: [number, number][] = [
    [7, 5],
    [3, 40],
    [61, 9],
    [6, 6],
    [130, 97],
  ];
  for (const [i, [width, height]] of sizes.entries())
    for (const [cropSize, resizeTo] of [
      [4, 5],
      [5, 9],
      [6, 6],
      [17, 30],
    ] as const)
      cases.push({
        width,
        height,
        preset: {
          resize: i % 2 ? 'stretch' : 'shorter-side',
          resizeTo,
          cropSize,
          interpolation: (i + cropSize) % 2 ? 'bicubic' : 'bilinear',
          mean: [0.5, 0.4, 0.3],
          std: [0.2, 0.25, 0.3],
        },
      });
  const files = await Promise.all(
    sizes.map(async ([width, height], i) => {
      const file = path.join(dir, `small-${i}.png`);
      await sharp(texture(width, height, 3, 40 + i), { raw: { width, height, channels: 3 } })
        .png()
        .toFile(file);
      return file;
    }),
  );
  const fileOf = (width: number, height: number) =>
    files[sizes.findIndex(([w, h]) => w === width && h === height)]!;
  const reference = runPythonReference<{ results: ReferenceResult[] }>('preprocess_reference.py', {
    jobs: cases.map(({ width, height, preset }) => ({ path: fileOf(width, height), ...preset })),
  });
  for (const [j, { width, height, preset }] of cases.entries()) {
    const ours = await preprocessImage(fileOf(width, height), preset);
    assert.deepEqual(
      [...ours.data],
      [...decodeFloats(reference.results[j]!.data)],
      `${width}x${height}, ${JSON.stringify(preset)}`,
    );
  }
});

describe('crop geometry', () => {
  test('follows torchvision: long side truncated, offsets rounded half to even', () => {
    const g = cropGeometry(200, 301, PRESETS.resnet50);
    assert.deepEqual([g.resizedWidth, g.resizedHeight, g.cropLeft, g.cropTop], [256, 385, 16, 80]);
    const wide = cropGeometry(517, 301, PRESETS.swin_v2_s);
    assert.deepEqual([wide.resizedWidth, wide.resizedHeight, wide.cropLeft, wide.cropTop], [446, 260, 95, 2]);
    const stretched = cropGeometry(640, 480, PRESETS.mobilenet_v2_tfjs);
    assert.deepEqual([stretched.scaleX, stretched.scaleY, stretched.cropLeft], [640 / 224, 480 / 224, 0]);
  });

  test('feature cells tile the cropped region of the image', () => {
    const g = cropGeometry(640, 480, PRESETS.resnet50);
    const crop = cropBoxToImage(g, { x0: 0, y0: 0, x1: 224, y1: 224 });
    // 640x480 resizes to 341x256; the 224 crop starts at resized x (341-224)/2 = 58.5 -> 58 (even).
    const [sx, sy] = [640 / 341, 480 / 256];
    assert.deepEqual(crop, { x0: 58 * sx, y0: 16 * sy, x1: (58 + 224) * sx, y1: (16 + 224) * sy });
    assert.deepEqual(featureCellToImage(g, { height: 7, width: 7 }, 0, 0).x0, crop.x0);
    assert.deepEqual(featureCellToImage(g, { height: 7, width: 7 }, 6, 6).y1, crop.y1);
    const middle = featureCellToImage(g, { height: 7, width: 7 }, 3, 3);
    assert.ok(
      Math.abs((middle.x0 + middle.x1) / 2 - 320) < 1 && Math.abs((middle.y0 + middle.y1) / 2 - 240) < 1,
    );
  });

  test('maps a marked square in the tensor back to where it is in the image', async () => {
    const [width, height] = [500, 331];
    const square = { x0: 300, y0: 120, x1: 340, y1: 160 };
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = square.y0; y < square.y1; y++) {
      for (let x = square.x0; x < square.x1; x++) pixels[(y * width + x) * 3] = 255;
    }
    const file = path.join(dir, 'marked.png');
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(file);
    const out = await preprocessImage(file, 'resnet50');
    // Crop pixels whose red channel is at least half-way up (normalised 0.5 red is (0.5 - 0.485) / 0.229).
    const found = { x0: Number.POSITIVE_INFINITY, y0: Number.POSITIVE_INFINITY, x1: 0, y1: 0 };
    for (let y = 0; y < out.height; y++) {
      for (let x = 0; x < out.width; x++) {
        if (out.data[(y * out.width + x) * 3]! > (0.5 - 0.485) / 0.229) {
          found.x0 = Math.min(found.x0, x);
          found.y0 = Math.min(found.y0, y);
          found.x1 = Math.max(found.x1, x + 1);
          found.y1 = Math.max(found.y1, y + 1);
        }
      }
    }
    const back = cropBoxToImage(out.geometry, found);
    for (const key of ['x0', 'y0', 'x1', 'y1'] as const) {
      assert.ok(
        Math.abs(back[key] - square[key]) <= out.geometry.scaleX,
        `${key}: ${back[key]} vs ${square[key]}`,
      );
    }
  });
});

describe('bad image files', () => {
  test('truncated, corrupt, non-image and missing files are errors naming the file', async () => {
    const good = path.join(dir, 'good.jpg');
    await sharp(texture(120, 90, 3, 11), { raw: { width: 120, height: 90, channels: 3 } })
      .jpeg()
      .toFile(good);
    const bytes = await readFile(good);
    const truncated = path.join(dir, 'truncated.jpg');
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const corrupt = path.join(dir, 'corrupt.png');
    await writeFile(
      corrupt,
      Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(64, 7)]),
    );
    const text = path.join(dir, 'notes.webp');
    await writeFile(text, 'this is not an image\n');
    for (const file of [truncated, corrupt, text, path.join(dir, 'missing.jpg')]) {
      await assert.rejects(preprocessImage(file, 'resnet34'), (error: unknown) => {
        assert.ok(error instanceof ImageDecodeError);
        assert.ok(error.message.startsWith(`${file}: cannot decode image`), error.message);
        return true;
      });
    }
  });
});

describe('PreprocessPool', () => {
  test('splits a batch over its threads into the same values, and names a bad file', async () => {
    const files: string[] = [];
    for (const [i, [width, height]] of [
      [333, 500],
      [517, 301],
      [260, 999],
      [100, 150],
      [256, 256],
    ].entries()) {
      const file = path.join(dir, `pool-${i}.png`);
      await sharp(texture(width!, height!, 3, 20 + i), {
        raw: { width: width!, height: height!, channels: 3 },
      })
        .png()
        .toFile(file);
      files.push(file);
    }
    const pool = PreprocessPool.start(2);
    try {
      const batch = await pool.prepare(files, 'swin_v2_s');
      const pixels = 256 * 256 * 3;
      assert.equal(batch.length, files.length * pixels);
      for (const [i, file] of files.entries())
        assert.deepEqual(
          batch.subarray(i * pixels, (i + 1) * pixels),
          (await preprocessImage(file, 'swin_v2_s')).data,
        );

      const bad = path.join(dir, 'pool-bad.jpg');
      await writeFile(bad, 'not an image');
      await assert.rejects(pool.prepare([files[0]!, bad, files[1]!], 'resnet50'), (error: unknown) => {
        assert.ok(error instanceof ImageDecodeError);
        assert.equal(error.file, bad);
        return true;
      });
    } finally {
      await pool.close();
    }
  });
});
