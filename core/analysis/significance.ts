/**
 * How sure a top-1 figure is, and whether two heads evaluated on the same test images differ beyond
 * chance: Wilson's score interval for one accuracy and McNemar's exact test for the pair.
 */

/** The standard normal quantile of 0.975: a two-sided 95% interval. */
export const Z_95 = 1.959963984540054;

/**
 * Wilson's score interval of a proportion, `successes` of `n` ([0, 1] when n = 0). Unlike the normal
 * approximation it stays inside [0, 1] and keeps its coverage near 0% and 100% accuracy.
 */
export function wilsonInterval(successes: number, n: number, z = Z_95): [number, number] {
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** ln(e^a + e^b) without overflow. */
function logAddExp(a: number, b: number): number {
  if (a === Number.NEGATIVE_INFINITY) return b;
  const high = Math.max(a, b);
  return high + Math.log1p(Math.exp(Math.min(a, b) - high));
}

/**
 * McNemar's exact test: the two-sided p-value of `b` and `c` discordant pairs under the null hypothesis
 * that either kind is equally likely, min(1, 2 P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2). The
 * binomial terms are summed in log space, so b + c in the tens of thousands (ImageNet) does not underflow.
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  // ln C(n, i) 2^-n, from i = 0 upwards: C(n, i + 1) = C(n, i) (n - i) / (i + 1).
  let term = -n * Math.LN2;
  let tail = term;
  for (let i = 0; i < k; i++) {
    term += Math.log(n - i) - Math.log(i + 1);
    tail = logAddExp(tail, term);
  }
  return Math.min(1, 2 * Math.exp(tail));
}

/** Two sets of top-1 predictions on the same test images (two heads, or one head in two runs). */
export interface PairedComparison {
  images: number;
  /** Images the first gets right and the second wrong. */
  onlyFirst: number;
  /** Images the second gets right and the first wrong. */
  onlySecond: number;
  /** The second's top-1 minus the first's, in [-1, 1]. */
  difference: number;
  /** McNemar's exact two-sided p-value of that difference. */
  p: number;
}

/** Two sets of predictions compared image by image; both are in the labels' order. */
export function pairedComparison(
  labels: readonly number[],
  first: readonly number[],
  second: readonly number[],
): PairedComparison {
  if (first.length !== labels.length || second.length !== labels.length)
    throw new Error(
      `paired comparison: ${labels.length} labels, but ${first.length} and ${second.length} predictions`,
    );
  let onlyFirst = 0;
  let onlySecond = 0;
  labels.forEach((label, i) => {
    const firstRight = first[i] === label;
    const secondRight = second[i] === label;
    if (firstRight && !secondRight) onlyFirst += 1;
    else if (secondRight && !firstRight) onlySecond += 1;
  });
  const images = labels.length;
  return {
    images,
    onlyFirst,
    onlySecond,
    difference: images === 0 ? 0 : (onlySecond - onlyFirst) / images,
    p: mcnemarExact(onlyFirst, onlySecond),
  };
}
