/** How many units in the last place of its inputs a derived number may be off by and still count as noise. */
const NOISE_ULPS = 16;

/** value * 10^power, through its decimal digits, so that the shift adds no rounding error of its own. */
function shift(value: number, power: number): number {
  const [mantissa, exponent] = value.toExponential().split('e');
  return Number(`${mantissa}e${Number(exponent) + power}`);
}

/**
 * A derived number as tables export it: snapped to `scale`'s 12th significant digit where it lies within
 * floating-point noise of that (100 * 0.56 = 56.00000000000001 becomes 56), else unchanged at full
 * precision (100 * 7 / 9 stays 77.77777777777777). `scale`: the magnitude of the numbers it was computed
 * from, e.g. of two values whose difference it is (default: its own). Non-finite values pass through.
 */
export function roundDerived(value: number, scale = Math.abs(value)): number {
  const magnitude = Math.max(Math.abs(value), Math.abs(scale));
  if (!Number.isFinite(value) || !Number.isFinite(magnitude) || magnitude === 0) return value;
  const exponent = Math.floor(Math.log10(magnitude)) - 11;
  const rounded = shift(Math.round(shift(value, -exponent)), exponent);
  return Math.abs(rounded - value) <= NOISE_ULPS * Number.EPSILON * magnitude ? rounded : value;
}

/** A fraction as a percentage (100 * v), its floating-point noise removed by roundDerived. */
export function percentOf(fraction: number): number {
  return roundDerived(100 * fraction);
}

/** The change from one fraction to another in percentage points, its noise removed by roundDerived. */
export function percentChange(from: number, to: number): number {
  return roundDerived(100 * (to - from), 100 * Math.max(Math.abs(from), Math.abs(to)));
}
