import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mcnemarExact, pairedComparison, wilsonInterval } from '../core/analysis/significance';
import { tableCsv, tableHtml, tableLatex, tableMarkdown } from '../core/report/table-formats';
import type { Table } from '../core/report/tables';
import { SeededRandom } from '../core/util/random';
import { runPythonReference } from './support/python';

/**
 * The top-1 uncertainty the report prints, against SciPy (reference/significance_reference.py): Wilson
 * intervals from binomtest(...).proportion_ci(method="wilson"), McNemar's exact p from a two-sided
 * binomtest(min(b, c), b + c, 1/2), and the discordant counts from NumPy.
 */

interface Reference {
  intervals: [number, number][];
  p: number[];
  paired: { baseline_only: number; infodisent_only: number };
}

test('Wilson intervals, McNemar p-values and paired counts equal SciPy and NumPy on random cases', () => {
  const random = new SeededRandom(2024);
  // Edge cases first (nothing right, all right, one image, a tie, no discordant pair, ImageNet's scale),
  // then random ones.
  const intervals: [number, number][] = [
    [0, 50],
    [50, 50],
    [1, 1],
    [0, 1],
    [37_000, 50_000],
    [5_794, 5_794],
    ...Array.from({ length: 40 }, (): [number, number] => {
      const n = random.int(1, 20_000);
      return [random.int(0, n), n];
    }),
  ];
  const discordant: [number, number][] = [
    [0, 0],
    [0, 1],
    [7, 7],
    [0, 30],
    [1_200, 1_390],
    [20_000, 20_500],
    ...Array.from({ length: 40 }, (): [number, number] => [random.int(0, 3_000), random.int(0, 3_000)]),
  ];
  const images = 5_000;
  const labels = Array.from({ length: images }, () => random.int(0, 199));
  const guess = (hitRate: number) =>
    labels.map((label) => (random.next() < hitRate ? label : random.int(0, 199)));
  const baseline = guess(0.8);
  const infodisent = guess(0.78);
  const reference = runPythonReference<Reference>('significance_reference.py', {
    intervals,
    discordant,
    paired: { labels, baseline, infodisent },
  });

  intervals.forEach(([k, n], i) => {
    const [low, high] = wilsonInterval(k, n);
    const [refLow, refHigh] = reference.intervals[i]!;
    assert.ok(
      Math.abs(low - refLow) <= 1e-12 && Math.abs(high - refHigh) <= 1e-12,
      `${k}/${n}: ${low}, ${high} vs ${refLow}, ${refHigh}`,
    );
    assert.ok(low <= k / n && k / n <= high, `${k}/${n} outside its interval`);
  });
  discordant.forEach(([b, c], i) => {
    const p = mcnemarExact(b, c);
    const expected = reference.p[i]!;
    // Relative 1e-9: the log-space sum keeps p-values far below float64's smallest normal.
    assert.ok(
      Math.abs(p - expected) <= 1e-9 * Math.max(expected, 1e-300),
      `b=${b} c=${c}: ${p} vs ${expected}`,
    );
  });
  const paired = pairedComparison(labels, baseline, infodisent);
  assert.equal(paired.onlyFirst, reference.paired.baseline_only);
  assert.equal(paired.onlySecond, reference.paired.infodisent_only);
  assert.equal(paired.images, images);
  const right = (predictions: number[]) => predictions.filter((p, i) => p === labels[i]).length;
  assert.ok(Math.abs(paired.difference - (right(infodisent) - right(baseline)) / images) < 1e-15);
  assert.equal(paired.p, mcnemarExact(paired.onlyFirst, paired.onlySecond));
});

test('a paired comparison refuses predictions that do not match the labels one to one', () => {
  assert.throws(() => pairedComparison([0, 1, 2], [0, 1, 2], [0, 1]), /3 labels, but 3 and 2 predictions/);
  assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
});

test('a p-value too small for its digits prints as a bound, in every text format; CSV keeps the value', () => {
  const table: Table = {
    id: 'p',
    title: 'P',
    caption: 'c',
    columns: [
      { key: 'p', label: 'p', kind: 'number', digits: 4, boundSmall: true },
      { key: 'plain', label: 'plain', kind: 'number', digits: 4 },
    ],
    rows: [
      { p: mcnemarExact(0, 40), plain: 5e-9 },
      { p: 0.03125, plain: 0 },
    ],
  };
  assert.match(tableMarkdown(table), /\| \\< 0\.0001 \| 0\.0000 \|\n\| 0\.0313 \| 0\.0000 \|/);
  assert.match(tableLatex(table), /\\textless\{\} 0\.0001 & 0\.0000 \\\\/);
  assert.match(tableHtml(table), /<td class="num">&lt; 0\.0001<\/td><td class="num">0\.0000<\/td>/);
  assert.match(tableCsv(table), new RegExp(`^${mcnemarExact(0, 40)},5e-9$`, 'm'));
});
