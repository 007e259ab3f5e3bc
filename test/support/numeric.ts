import assert from 'node:assert/strict';

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
