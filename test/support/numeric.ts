import assert from 'node:assert/strict';
import type { SeededRandom } from '../../core/util/random';

/** Largest absolute entry: the scale that relative tolerances in the tests are taken against. */
export function maxAbs(values: ArrayLike<number>): number {
  let out = 0;
  for (let i = 0; i < values.length; i++) out = Math.max(out, Math.abs(values[i]!));
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let out = 0;
  for (let i = 0; i < a.length; i++) out = Math.max(out, Math.abs(a[i]! - b[i]!));
  return out;
}

/** max|a - b| / max|b|: the error relative to the quantity's scale (entries near 0 carry no meaning alone). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  return maxAbsDiff(actual, expected) / Math.max(maxAbs(expected), Number.MIN_VALUE);
}

export function gaussian(random: SeededRandom, length: number, scale = 1): Float32Array {
  return Float32Array.from({ length }, () => scale * random.normal());
}
