/**
 * IEEE 754 binary16 conversions for feature shards (Node 20 has no Float16Array). Float32 -> float16
 * rounds to nearest, ties to even, as numpy's `astype(float16)` does: overflow gives +-Infinity, values
 * below half the smallest subnormal give +-0, NaN stays NaN. Float16 -> float32 is exact.
 */

/** The float16 bit pattern nearest to the float32 bit pattern `f` (round half to even). */
function halfBitsOf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  // NaN keeps the top of its payload, made non-zero so it stays NaN (numpy's choice).
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? mantissa >>> 13 || 1 : 0);
  // Unbiased exponent e: normal halves have -14 <= e <= 15.
  const e = exponent - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Drop 13 mantissa bits with round half to even; a carry into the exponent is the right result (up to Infinity).
    const rest = mantissa & 0x1fff;
    let half = ((e + 15) << 10) | (mantissa >>> 13);
    if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half += 1;
    return sign | half;
  }
  // Subnormal half (or zero): the value is significand * 2^-24 with the implicit bit made explicit.
  if (e < -25) return sign;
  const significand = mantissa | 0x800000;
  const shift = -e - 1; // 14..24 bits dropped: value / 2^-24 = significand / 2^(shift)
  const kept = significand >>> shift;
  const rest = significand - (kept << shift);
  const halfway = 1 << (shift - 1);
  const rounded = rest > halfway || (rest === halfway && kept & 1) ? kept + 1 : kept;
  return sign | rounded;
}

/** Float16 bit patterns of `values`, rounded to nearest even (into `out` when given). */
export function toFloat16Bits<Out extends Uint16Array<ArrayBufferLike> = Uint16Array>(
  values: Float32Array,
  out: Out = new Uint16Array(values.length) as Out,
): Out {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < words.length; i++) out[i] = halfBitsOf(words[i]!);
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
