/**
 * IEEE 754 binary16 conversions for feature shards (Node 20 has no Float16Array). Float32 -> float16
 * rounds to nearest, ties to even, as numpy's `astype(float16)` does: overflow gives +-Infinity, values
 * below half the smallest subnormal give +-0, NaN stays NaN. Float16 -> float32 is exact.
 */

/** Largest finite float16 magnitude. */
export const FLOAT16_MAX = 65504;

/** Bit patterns of |x| for float32 x: FLOAT16_MAX, the smallest normal half (2^-14) and float16's exponent bias moved to float32's. */
const MAX_BITS = 0x477fe000;
const MIN_NORMAL_BITS = 0x38800000;
const REBIAS = (127 - 15) << 23;
/** Adding and subtracting 2^52 rounds a float64 in [0, 2^52) to an integer, half to even. */
const ROUND_TO_INTEGER = 2 ** 52;

/**
 * Float16 bit patterns of `values` written into `out`, rounded to nearest even, up to the first value that
 * is NaN, infinite or beyond +-FLOAT16_MAX: returns its index (the values before it are written), or -1.
 * One branch-free pass (~3 ns a value, a third of a check and then a conversion): it runs on every feature
 * a float16 extraction stores, on the thread that keeps the device fed. Checked against the general
 * conversion on every in-range float32 bit pattern.
 */
export function toFiniteFloat16Bits(values: Float32Array, out: Uint16Array<ArrayBufferLike>): number {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const magnitude = word & 0x7fffffff;
    if (magnitude > MAX_BITS) return i;
    // A normal half drops 13 mantissa bits, rounding half to even (a carry into the exponent is right);
    // a subnormal one is |value| in units of 2^-24, rounded the same way. The mask picks one without a branch.
    const normal = (magnitude - REBIAS + 0xfff + ((magnitude >>> 13) & 1)) >>> 13;
    const subnormal = Math.abs(values[i]!) * 2 ** 24 + ROUND_TO_INTEGER - ROUND_TO_INTEGER;
    const isSubnormal = (magnitude - MIN_NORMAL_BITS) >> 31;
    out[i] = (normal & ~isSubnormal) | (subnormal & isSubnormal) | ((word >>> 16) & 0x8000);
  }
  return -1;
}

/** The half of a float32 bit pattern toFiniteFloat16Bits stops at: +-Infinity (or +-FLOAT16_MAX below 65520), or NaN keeping the top of its payload (numpy's choice). */
function outOfRangeHalfBits(word: number): number {
  const sign = (word >>> 16) & 0x8000;
  const magnitude = word & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7c00 | ((magnitude >>> 13) & 0x3ff || 1);
  // Finite values beyond FLOAT16_MAX round down to it below 65520, the midpoint to Infinity.
  return sign | (magnitude < 0x477ff000 ? 0x7bff : 0x7c00);
}

/** Float16 bit patterns of `values`, rounded to nearest even (into `out` when given); too large gives +-Infinity. */
export function toFloat16Bits<Out extends Uint16Array<ArrayBufferLike> = Uint16Array>(
  values: Float32Array,
  out: Out = new Uint16Array(values.length) as Out,
): Out {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let from = 0; from < values.length; ) {
    const stop = toFiniteFloat16Bits(values.subarray(from), out.subarray(from));
    if (stop < 0) break;
    out[from + stop] = outOfRangeHalfBits(words[from + stop]!);
    from += stop + 1;
  }
  return out;
}

/** float32 value of every float16 bit pattern, built once: decoding is then one lookup per value. */
let decodeTable: Float32Array | undefined;

function float16Table(): Float32Array {
  if (decodeTable) return decodeTable;
  decodeTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    const magnitude =
      exponent === 0
        ? mantissa * 2 ** -24
        : exponent === 0x1f
          ? mantissa
            ? Number.NaN
            : Number.POSITIVE_INFINITY
          : (1024 + mantissa) * 2 ** (exponent - 25);
    decodeTable[h] = h & 0x8000 ? -magnitude : magnitude;
  }
  return decodeTable;
}

/** The float32 values of float16 bit patterns (exact). */
export function fromFloat16Bits(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const table = float16Table();
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}
