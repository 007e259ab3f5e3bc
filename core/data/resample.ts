/**
 * Pillow's resize (Resample.c: antialiased convolution with fixed-point 8-bit passes, horizontal then
 * vertical), computing only the pixels a centre crop keeps. The coefficients are computed here exactly as
 * Pillow computes them; the two passes run in WebAssembly SIMD (resample.as.ts, built into
 * resample.wasm), four to sixteen sums at a time with the same integer arithmetic, so the output equals
 * Pillow's bit for bit (test/preprocess.test.ts). Decoding aside, this is most of an image's preparation,
 * on every image extraction reads.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { CropGeometry, RgbImage } from './preprocess';

export type Interpolation = 'bilinear' | 'bicubic';

interface Filter {
  support: number;
  kernel: (x: number) => number;
}

const FILTERS: Record<Interpolation, Filter> = {
  bilinear: {
    support: 1,
    kernel: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    kernel: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Per output pixel: first input pixel and number of taps. */
  first: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `ksize` slots per output pixel. */
  weights: Int32Array;
  ksize: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for resizing `inSize` to `outSize`. */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      k[x] = filter.kernel((x + xmin - center + 0.5) * ss);
      ww += k[x]!;
    }
    for (let x = 0; x < n; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = Math.trunc(
        w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS),
      );
    }
    first[xx] = xmin;
    count[xx] = n;
  }
  return { first, count, weights, ksize };
}

/** Source indices [first, end) that output positions [p0, p0 + n) read. */
function sourceSpan(co: Coefficients, p0: number, n: number): [first: number, end: number] {
  let first = Number.POSITIVE_INFINITY;
  let end = 0;
  for (let p = p0; p < p0 + n; p++) {
    first = Math.min(first, co.first[p]!);
    end = Math.max(end, co.first[p]! + co.count[p]!);
  }
  return [first, end];
}

// The project's lib (ES2023, Node's types) declares no WebAssembly; what this module uses of it.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: object };
};

/** resample.as.ts's exports: every pointer is a byte offset into `memory`. */
interface ResampleExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  resampleHorizontal: ResamplePass;
  resampleVertical: ResamplePass;
}

/** (src, srcRow, srcFirst, lines or rowBytes, dst, p0, n, first, count, weights, ksize); see resample.as.ts. */
type ResamplePass = (...args: number[]) => void;

/** Bytes after each buffer laid out in the module's memory: a pass may read up to 16 past its last pixel. */
const SLACK = 16;

/** One module instance per thread, laid out afresh for each image, its memory grown when an image needs more. */
let instance: ResampleExports | undefined;

function resampler(): ResampleExports {
  instance ??= new WebAssembly.Instance(
    new WebAssembly.Module(readFileSync(path.join(__dirname, 'resample.wasm'))),
  ).exports as unknown as ResampleExports;
  return instance;
}

/** Lays buffers out one after another in the module's memory, 16-byte aligned, growing it to fit. */
class MemoryLayout {
  private end = 0;
  constructor(private readonly wasm: ResampleExports) {}

  /** Room for `bytes` bytes (and SLACK after them); `data`, when given, copied in. Returns its offset. */
  place(bytes: number, data?: Int32Array | Uint8Array): number {
    const at = this.end;
    this.end = Math.ceil((at + bytes + SLACK) / 16) * 16;
    const memory = this.wasm.memory;
    if (this.end > memory.buffer.byteLength)
      memory.grow(Math.ceil((this.end - memory.buffer.byteLength) / 65536));
    if (data)
      new Uint8Array(memory.buffer, at, bytes).set(new Uint8Array(data.buffer, data.byteOffset, bytes));
    return at;
  }

  placeCoefficients(co: Coefficients): [first: number, count: number, weights: number, ksize: number] {
    return [
      this.place(co.first.byteLength, co.first),
      this.place(co.count.byteLength, co.count),
      this.place(co.weights.byteLength, co.weights),
      co.ksize,
    ];
  }
}

/**
 * Pillow's two-pass resize to the geometry's resized size, computing only the pixels the centre crop
 * keeps (each output pixel depends on its own row/column coefficients only, so this is exact). Pillow
 * skips a pass whose size does not change; here it runs with the coefficients of an unchanged size,
 * which are the identity (one tap of weight 1), so the result is the same. Since Pillow 13
 * (python-pillow/Pillow#9549) the vertical pass goes first when both sizes change and the height shrinks
 * by more than twice as many pixels as the width.
 */
export function resizeAndCrop(
  image: RgbImage,
  g: CropGeometry,
  interpolation: Interpolation,
): Uint8ClampedArray {
  const { data, width: inW, height: inH } = image;
  const size = g.cropSize;
  const row = inW * 3;
  const filter = FILTERS[interpolation];
  const horizontal = coefficients(inW, g.resizedWidth, filter);
  const vertical = coefficients(inH, g.resizedHeight, filter);
  const wasm = resampler();
  const layout = new MemoryLayout(wasm);
  const h = layout.placeCoefficients(horizontal);
  const v = layout.placeCoefficients(vertical);

  const shrinkH = inH - g.resizedHeight;
  const bothPasses = g.resizedWidth !== inW && g.resizedHeight !== inH;
  let out: number;
  if (bothPasses && shrinkH > 0 && shrinkH > 2 * (inW - g.resizedWidth)) {
    const [colFirst, colEnd] = sourceSpan(horizontal, g.cropLeft, size);
    const cols = colEnd - colFirst;
    const src = layout.place(data.length, data);
    const temp = layout.place(size * cols * 3);
    out = layout.place(size * size * 3);
    wasm.resampleVertical(src + colFirst * 3, row, 0, cols * 3, temp, g.cropTop, size, ...v);
    wasm.resampleHorizontal(temp, cols * 3, colFirst, size, out, g.cropLeft, size, ...h);
  } else {
    const [rowFirst, rowEnd] = sourceSpan(vertical, g.cropTop, size);
    const rows = rowEnd - rowFirst;
    const src = layout.place(rows * row, data.subarray(rowFirst * row, rowEnd * row));
    const temp = layout.place(rows * size * 3);
    out = layout.place(size * size * 3);
    wasm.resampleHorizontal(src, row, 0, rows, temp, g.cropLeft, size, ...h);
    wasm.resampleVertical(temp, size * 3, rowFirst, size * 3, out, g.cropTop, size, ...v);
  }
  return new Uint8ClampedArray(wasm.memory.buffer.slice(out, out + size * size * 3));
}
