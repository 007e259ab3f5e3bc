/**
 * Pillow's two 8-bit resampling passes (Resample.c: ImagingResampleHorizontal_8bpc and
 * ImagingResampleVertical_8bpc) in WebAssembly SIMD, compiled by AssemblyScript (`npm run build:wasm`)
 * and driven by core/data/resample.ts. The same integer sums as Pillow's, so the same bytes; only the
 * order of the additions differs, which integer sums do not depend on.
 *
 * Every argument is an offset into this module's memory, which the caller lays out and grows. The
 * coefficients are Pillow's: per output position its first input position (`first`) and tap count
 * (`count`), then `ksize` fixed-point weights (`weights`), all int32. Pixels are RGB, 3 bytes each.
 */

const PRECISION_BITS: i32 = 32 - 8 - 2;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/** clip8(sum >> PRECISION_BITS) of 16 sums, as 16 bytes: the two saturating narrows are the clip. */
function clip8(a: v128, b: v128, c: v128, d: v128): v128 {
  return i8x16.narrow_i16x8_u(
    i16x8.narrow_i32x4_s(i32x4.shr_s(a, PRECISION_BITS), i32x4.shr_s(b, PRECISION_BITS)),
    i16x8.narrow_i32x4_s(i32x4.shr_s(c, PRECISION_BITS), i32x4.shr_s(d, PRECISION_BITS)),
  );
}

/**
 * Output columns [p0, p0 + n) of `lines` rows, written densely (n * 3 bytes a row). Source rows are
 * `srcRow` bytes apart and column `srcFirst` is at `src`. One output pixel's three channels share a vector
 * (its fourth lane carries the next pixel's red and is dropped), so each tap reads 4 bytes: the byte after
 * the source's last pixel must be readable.
 */
export function resampleHorizontal(
  src: usize,
  srcRow: i32,
  srcFirst: i32,
  lines: i32,
  dst: usize,
  p0: i32,
  n: i32,
  first: usize,
  count: usize,
  weights: usize,
  ksize: i32,
): void {
  let out = dst;
  for (let line = 0; line < lines; line++) {
    const row = src + <usize>(line * srcRow);
    for (let p = p0; p < p0 + n; p++) {
      let at = row + <usize>((load<i32>(first + ((<usize>p) << 2)) - srcFirst) * 3);
      let w = weights + ((<usize>(p * ksize)) << 2);
      const end = w + ((<usize>load<i32>(count + ((<usize>p) << 2))) << 2);
      let sum = i32x4.splat(HALF);
      for (; w < end; w += 4, at += 3) {
        const pixel = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(at)));
        sum = i32x4.add(sum, i32x4.mul(pixel, i32x4.splat(load<i32>(w))));
      }
      const bytes = clip8(sum, sum, sum, sum);
      v128.store16_lane(out, bytes, 0);
      v128.store8_lane(out, bytes, 2, 2);
      out += 3;
    }
  }
}

/**
 * Output rows [p0, p0 + n), each `rowBytes` bytes, written densely. Source rows are `srcRow` bytes apart
 * and row `srcFirst` is at `src`. Each tap adds 16 bytes of a row at a time; the last 16 of a row are done
 * last, overlapping the block before them, which they write again with the same values. Rows of fewer
 * than 16 bytes (crops under 6 px) go byte by byte.
 */
export function resampleVertical(
  src: usize,
  srcRow: i32,
  srcFirst: i32,
  rowBytes: i32,
  dst: usize,
  p0: i32,
  n: i32,
  first: usize,
  count: usize,
  weights: usize,
  ksize: i32,
): void {
  const half = i32x4.splat(HALF);
  for (let p = p0; p < p0 + n; p++) {
    const top = src + <usize>((load<i32>(first + ((<usize>p) << 2)) - srcFirst) * srcRow);
    const taps = load<i32>(count + ((<usize>p) << 2));
    const w0 = weights + ((<usize>(p * ksize)) << 2);
    const out = dst + <usize>((p - p0) * rowBytes);
    if (rowBytes < 16) {
      for (let x = 0; x < rowBytes; x++) {
        let sum = HALF;
        for (let k = 0; k < taps; k++)
          sum += <i32>load<u8>(top + <usize>(k * srcRow + x)) * load<i32>(w0 + ((<usize>k) << 2));
        store<u8>(out + <usize>x, <u8>min(max(sum >> PRECISION_BITS, 0), 255));
      }
      continue;
    }
    for (let x = 0; x < rowBytes; x += 16) {
      if (x > rowBytes - 16) x = rowBytes - 16;
      let a = half;
      let b = half;
      let c = half;
      let d = half;
      let at = top + <usize>x;
      for (let k = 0; k < taps; k++, at += <usize>srcRow) {
        const bytes = v128.load(at);
        const weight = i32x4.splat(load<i32>(w0 + ((<usize>k) << 2)));
        const low = i16x8.extend_low_i8x16_u(bytes);
        const high = i16x8.extend_high_i8x16_u(bytes);
        a = i32x4.add(a, i32x4.mul(i32x4.extend_low_i16x8_u(low), weight));
        b = i32x4.add(b, i32x4.mul(i32x4.extend_high_i16x8_u(low), weight));
        c = i32x4.add(c, i32x4.mul(i32x4.extend_low_i16x8_u(high), weight));
        d = i32x4.add(d, i32x4.mul(i32x4.extend_high_i16x8_u(high), weight));
      }
      v128.store(out + <usize>x, clip8(a, b, c, d));
    }
  }
}
