import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { cropGeometry, PRESETS } from '../core/data/preprocess';
import {
  barChartSvg,
  type ConfigurationSummary,
  classBreakdown,
  countBins,
  escapeLatex,
  escapeXml,
  explanationPanelPng,
  heatmapOverlayPng,
  heatmapOverlaySvg,
  histogramSvg,
  lineChartSvg,
  paperTables,
  percentOf,
  prototypeGridPng,
  prototypeGridSvg,
  resultsHistory,
  type SweepReport,
  type Table,
  tableCsv,
  tableLatex,
  tableMarkdown,
  tablesJson,
  writeHtmlReport,
  writePaperTables,
} from '../core/report';
import { SeededRandom } from '../core/util/random';
import { parseCsv } from './support/csv';
import { referencePython } from './support/python';
import { buildSampleReport, HOSTILE_CLASS } from './support/report-fixture';

let dir: string;
let report: SweepReport;
let datasetRoot: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-report-'));
  ({ report } = await buildSampleReport(dir));
  datasetRoot = report.configurations[0]!.datasetRoot!;
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const explained = () => report.configurations[0]!.heads.infodisent!.explanations!;

/** Python's csv module on the same text: an independent reader. */
function pythonCsv(text: string): string[][] {
  const script =
    'import csv, io, json, sys; print(json.dumps(list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, newline="")))))';
  return JSON.parse(
    execFileSync(referencePython(), ['-c', script], { input: text, encoding: 'utf8' }),
  ) as string[][];
}

/** A table whose text needs every kind of escaping, with negative, missing and grouped values. */
const hostile: Table = {
  id: 'hostile',
  title: 'Hostile & 100% #1',
  caption: 'Values with $pecial_chars {here} ~ ^ \\ | <tags>',
  groupBy: 'dataset',
  columns: [
    { key: 'id', label: 'Id', kind: 'text', hidden: true },
    { key: 'dataset', label: 'Data_set', kind: 'text' },
    { key: 'name', label: 'Name', kind: 'text' },
    { key: 'value', label: 'Value ±', kind: 'number', digits: 2 },
  ],
  rows: [
    { id: 'r1', dataset: 'A&B', name: 'a,b', value: -1.5 },
    { id: 'r2', dataset: 'A&B', name: 'say "hi"', value: null },
    { id: 'r3', dataset: 'C_D', name: 'line1\nline2', value: 1 / 3 },
    { id: 'r4', dataset: 'C_D', name: ' padded |pipe| ', value: 12 },
  ],
};

test('paper tables from per-configuration results, in Markdown, CSV, LaTeX and JSON', async () => {
  const tables = paperTables(report.configurations);
  const [full, partial] = [report.configurations[0]!, report.configurations[1]!];
  // Rows sort by dataset then backbone: 'another, "quoted"' before 'disentangled & ideal'.
  assert.deepEqual(tables.accuracy.rows, [
    {
      configuration: partial.configuration,
      dataset: 'parts_<gen>',
      backbone: partial.backbone,
      baseline_top1: null,
      infodisent_top1: 50,
      baseline_top5: null,
      infodisent_top5: 100,
    },
    {
      configuration: full.configuration,
      dataset: 'parts_<gen>',
      backbone: full.backbone,
      baseline_top1: percentOf(full.heads.baseline!.top1),
      infodisent_top1: percentOf(full.heads.infodisent!.top1),
      baseline_top5: percentOf(full.heads.baseline!.top5),
      infodisent_top5: percentOf(full.heads.infodisent!.top5),
    },
  ]);
  const rv = tables.rv.rows[1]!;
  assert.equal(rv['infodisent_rv'], percentOf(full.heads.infodisent!.rv!.mean));
  assert.equal(rv['baseline_rv'], percentOf(full.heads.baseline!.rv!.mean));
  assert.deepEqual(tables.ablation.rows[1], {
    configuration: full.configuration,
    dataset: 'parts_<gen>',
    backbone: full.backbone,
    channels: full.channels,
    infodisent_mean: full.heads.infodisent!.ablation!.mean,
    infodisent_median: full.heads.infodisent!.ablation!.median,
    baseline_mean: full.heads.baseline!.ablation!.mean,
    baseline_median: full.heads.baseline!.ablation!.median,
  });
  const faithfulness = (kind: 'infodisent' | 'baseline') => full.heads[kind]!.explanations!.faithfulness;
  assert.deepEqual(
    tables.faithfulness.rows.map((row) => [
      row['head'],
      row['pointing'],
      row['consistency'],
      row['stability'],
      row['stability_images'],
    ]),
    (['infodisent', 'baseline'] as const).map((kind) => [
      kind === 'infodisent' ? 'InfoDisent' : 'baseline',
      percentOf(faithfulness(kind).pointing.accuracy),
      percentOf(faithfulness(kind).consistency!.consistency),
      percentOf(faithfulness(kind).stability!.stability),
      // The fixture re-extracts all 9 test images under noise.
      9,
    ]),
  );
  // Percentages are exported clean: 100 * 0.56 is 56.00000000000001 in floating point, 56 in the files.
  const noisy = structuredClone(full);
  noisy.heads.infodisent!.top1 = 0.56;
  noisy.heads.infodisent!.explanations!.faithfulness.pointing.accuracy = 0.56;
  const clean = paperTables([noisy]);
  assert.equal(clean.accuracy.rows[0]!['infodisent_top1'], 56);
  assert.equal(clean.faithfulness.rows[0]!['pointing'], 56);
  assert.match(tableCsv(clean.faithfulness), /\r\n[^\r]*,InfoDisent,[^\r]*,56,/);
  assert.doesNotMatch(tableCsv(clean.faithfulness) + tablesJson(clean), /\.\d*0000000\d/);

  // CSV: RFC 4180, read back by this parser and by Python's csv module, values at full precision.
  const all: Table[] = [...Object.values(tables), hostile];
  for (const table of all) {
    const csv = tableCsv(table);
    const expected = [
      table.columns.map((c) => c.key),
      ...table.rows.map((row) => table.columns.map((c) => (row[c.key] === null ? '' : String(row[c.key])))),
    ];
    assert.deepEqual(parseCsv(csv), expected, table.id);
    assert.deepEqual(pythonCsv(csv), expected, `${table.id} (Python csv)`);
  }
  assert.ok(
    tableCsv(hostile).startsWith('id,dataset,name,value\r\nr1,A&B,"a,b",-1.5\r\nr2,A&B,"say ""hi""",\r\n'),
  );

  // LaTeX: every special character escaped, booktabs rules, one & per column boundary, groups split.
  assert.equal(
    escapeLatex('\\&%$#_{}~^<>|±'),
    '\\textbackslash{}\\&\\%\\$\\#\\_\\{\\}\\textasciitilde{}\\textasciicircum{}\\textless{}\\textgreater{}\\textbar{}$\\pm$',
  );
  const latex = tableLatex(hostile);
  assert.match(
    latex,
    /\\begin\{tabular\}\{llr\}\n {4}\\toprule\n {4}Data\\_set & Name & Value \$\\pm\$ \\\\\n {4}\\midrule\n/,
  );
  assert.ok(latex.includes('A\\&B & a,b & $-$1.50 \\\\'));
  assert.ok(latex.includes(' & say "hi" & -- \\\\'), 'grouped dataset blanked, missing value as --');
  assert.ok(
    latex.includes('\\midrule\n    C\\_D & line1 line2 & 0.33 \\\\'),
    'a new group starts with a rule',
  );
  assert.ok(
    latex.includes(
      '\\caption{Hostile \\& 100\\% \\#1. Values with \\$pecial\\_chars \\{here\\} \\textasciitilde{}',
    ),
  );
  const body = latex.split('\n').filter((line) => line.endsWith('\\\\'));
  for (const line of body) assert.equal(line.match(/(?<!\\)&/g)!.length, 2, line);
  const unescapedBraces = latex.replace(/\\[{}]/g, '');
  assert.equal(unescapedBraces.split('{').length, unescapedBraces.split('}').length, 'braces balance');
  assert.ok(/\\bottomrule\n {2}\\end\{tabular\}\}\n\\end\{table\}\n$/.test(latex));
  // It fits the text width (shrunk only where wider) and names the packages it needs.
  assert.ok(latex.startsWith('% Needs \\usepackage{booktabs} and \\usepackage{graphicx} in the preamble.\n'));
  assert.ok(
    latex.includes(
      '  \\small\n  \\setlength{\\tabcolsep}{4pt}\n' +
        '  \\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n  \\begin{tabular}{llr}\n',
    ),
  );
  assert.ok(
    tableLatex(tables.accuracy).includes(
      'parts\\_\\textless{}gen\\textgreater{} & another, "quoted" & -- & 50.0',
    ),
  );

  // Markdown: escaped cells keep the column count; the group value is printed once.
  const markdown = tableMarkdown(hostile);
  const lines = markdown.split('\n').filter((line) => line.startsWith('|'));
  assert.equal(lines.length, 2 + hostile.rows.length);
  for (const line of lines) assert.equal(line.match(/(?<!\\)\|/g)!.length, 4, line);
  assert.ok(markdown.includes('| A\\&B | a,b | -1.50 |'));
  assert.ok(markdown.includes('|  | say "hi" | — |'));
  assert.ok(markdown.includes('| C\\_D | line1 line2 | 0.33 |'));
  assert.ok(markdown.includes('\\|pipe\\|'));
  assert.ok(!markdown.includes('r1') && !latex.includes('r1') && !markdown.includes('Id'), 'hidden column');
  assert.ok(tableMarkdown(tables.accuracy).includes('| parts\\_\\<gen\\> | another, "quoted" | — | 50.0 |'));

  // JSON keeps typed values, missing ones as null.
  const json = JSON.parse(tablesJson(tables));
  assert.deepEqual(json, JSON.parse(JSON.stringify(tables)));
  assert.equal(json.accuracy.rows[0].baseline_top1, null);

  const written = await writePaperTables(path.join(dir, 'tables'), tables);
  assert.equal(written.length, 4 * 3 + 1);
  assert.equal(await readFile(path.join(dir, 'tables', 'rv.csv'), 'utf8'), tableCsv(tables.rv));
});

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => {
    const i = (Math.round(y) * info.width + Math.round(x)) * 3;
    return [data[i]!, data[i + 1]!, data[i + 2]!] as const;
  };
  let yellow = 0;
  for (let i = 0; i < data.length; i += 3)
    if (data[i]! > 230 && data[i + 1]! > 190 && data[i + 2]! < 60) yellow++;
  const stats = await sharp(png).stats();
  return { info, at, yellow, spread: Math.max(...stats.channels.slice(0, 3).map((c) => c.stdev)) };
}

test("published figures print beside the sweep's, only in the tables and columns they cover", () => {
  const [full, partial] = [report.configurations[0]!, report.configurations[1]!];
  const source = 'A & B (2025), Table 8';
  const tables = paperTables(report.configurations, {
    [full.configuration]: {
      reported: { source, baseline: { top1: 83.2, rv: 7.8 }, infodisent: { top1: 83, rv: 4.9 } },
    },
    [partial.configuration]: { reported: { source: 'another paper', infodisent: { top5: 99.5 } } },
    'not-in-this-sweep': { reported: { source: 'unused', baseline: { channels95: 3 } } },
  });
  const paperColumns = (table: Table) => table.columns.filter((c) => c.key.startsWith('reported_'));
  assert.deepEqual(
    paperColumns(tables.accuracy).map((c) => [c.key, c.label]),
    [
      ['reported_baseline_top1', 'Paper baseline top-1'],
      ['reported_infodisent_top1', 'Paper InfoDisent top-1'],
      ['reported_infodisent_top5', 'Paper InfoDisent top-5'],
    ],
  );
  const row = (table: Table, name: string) => table.rows.find((r) => r['configuration'] === name)!;
  assert.equal(row(tables.accuracy, full.configuration)['reported_infodisent_top1'], 83);
  assert.equal(row(tables.accuracy, full.configuration)['reported_infodisent_top5'], null);
  assert.equal(row(tables.accuracy, partial.configuration)['reported_infodisent_top5'], 99.5);
  assert.equal(row(tables.accuracy, partial.configuration)['reported_baseline_top1'], null);
  // This sweep's own figures are untouched; sources are named in the order of the rows.
  assert.equal(
    row(tables.accuracy, full.configuration)['infodisent_top1'],
    percentOf(full.heads.infodisent!.top1),
  );
  assert.match(tables.accuracy.caption, /Paper: as reported by another paper; A & B \(2025\), Table 8\.$/);
  assert.deepEqual(
    paperColumns(tables.rv).map((c) => c.label),
    ['Paper baseline', 'Paper InfoDisent'],
  );
  assert.equal(row(tables.rv, full.configuration)['reported_baseline_rv'], 7.8);
  assert.match(tables.rv.caption, /reported by A & B \(2025\), Table 8\.$/);
  // Nobody in this sweep reports channel counts: the ablation table is as without published figures.
  assert.deepEqual(tables.ablation, paperTables(report.configurations).ablation);
  // Printed in every format, escaped like the rest.
  assert.match(tableMarkdown(tables.accuracy), /\| Paper InfoDisent top-1 \|/);
  assert.match(tableMarkdown(tables.accuracy), /\| 83\.0 \|/);
  assert.match(tableLatex(tables.rv), /A \\& B \(2025\)/);
  assert.match(
    tableCsv(tables.accuracy).split('\r\n')[0]!,
    /,reported_baseline_top1,reported_infodisent_top1,/,
  );
});

/** NumPy's mean and sample standard deviation (ddof = 1) of each list: the independent reference. */
function numpyMeanSd(lists: number[][]): number[][] {
  const script =
    'import json, sys, numpy as np; print(json.dumps([[float(np.mean(v)), float(np.std(v, ddof=1))] for v in json.load(sys.stdin)]))';
  return JSON.parse(
    execFileSync(referencePython(), ['-c', script], { input: JSON.stringify(lists), encoding: 'utf8' }),
  ) as number[][];
}

test("the runs of a configuration's seeds print as one row: mean ± sample standard deviation (NumPy)", async () => {
  const [full, partial] = [report.configurations[0]!, report.configurations[1]!];
  const infodisent = full.heads.infodisent!;
  const top1 = [0.81, 0.84, 0.9];
  const rv = [0.031, 0.027, 0.045];
  const runs: ConfigurationSummary[] = top1.map((value, i) => ({
    ...full,
    configuration: `${full.configuration}-seed${i}`,
    heads: {
      ...full.heads,
      infodisent: { ...infodisent, top1: value, rv: { ...infodisent.rv!, mean: rv[i]! } },
    },
  }));
  const reported = { source: 'a paper', infodisent: { top1: 83 } };
  const annotations = Object.fromEntries(
    runs.map((run) => [run.configuration, { repeatOf: full.configuration, reported }]),
  );
  const tables = paperTables([...runs, partial], annotations);
  const row = (name: string) => tables.accuracy.rows.find((r) => r['configuration'] === name)!;
  assert.equal(tables.accuracy.rows.length, 2);
  const [top1Mean, top1Sd, rvMean, rvSd] = numpyMeanSd([
    top1.map((v) => 100 * v),
    rv.map((v) => 100 * v),
  ]).flat();
  const merged = row(full.configuration);
  assert.equal(merged['seeds'], 3);
  assert.ok(Math.abs((merged['infodisent_top1'] as number) - top1Mean!) < 1e-9);
  assert.ok(Math.abs((merged['infodisent_top1_sd'] as number) - top1Sd!) < 1e-9);
  // The same value in every run: its mean, with no spread.
  assert.equal(merged['baseline_top1'], percentOf(full.heads.baseline!.top1));
  assert.equal(merged['baseline_top1_sd'], 0);
  assert.equal(merged['reported_infodisent_top1'], 83);
  // A configuration run once keeps its row, one seed and no deviation.
  assert.equal(row(partial.configuration)['seeds'], 1);
  assert.equal(row(partial.configuration)['infodisent_top1_sd'], null);
  const rvRow = tables.rv.rows.find((r) => r['configuration'] === full.configuration)!;
  assert.ok(Math.abs((rvRow['infodisent_rv'] as number) - rvMean!) < 1e-9);
  assert.ok(Math.abs((rvRow['infodisent_rv_sd'] as number) - rvSd!) < 1e-9);
  // Per-head tables merge per head.
  assert.deepEqual(
    tables.faithfulness.rows.map((r) => [r['configuration'], r['head'], r['seeds']]),
    [
      [full.configuration, 'InfoDisent', 3],
      [full.configuration, 'baseline', 3],
    ],
  );

  // Printed "mean ± sd" where people read; separate columns where programs read.
  const printed = `${top1Mean!.toFixed(1)} ± ${top1Sd!.toFixed(1)}`;
  assert.match(tableMarkdown(tables.accuracy), /^\| Dataset \| Backbone \| Seeds \| Baseline top-1 \|/m);
  assert.ok(tableMarkdown(tables.accuracy).includes(`| ${printed} |`));
  assert.ok(tableLatex(tables.accuracy).includes(`${top1Mean!.toFixed(1)} $\\pm$ ${top1Sd!.toFixed(1)}`));
  assert.match(
    tables.accuracy.caption,
    /several seeds: the mean over the seeds ± its sample standard deviation\.$/,
  );
  const [header, ...csvRows] = parseCsv(tableCsv(tables.accuracy));
  assert.ok(header!.includes('infodisent_top1_sd') && header!.includes('seeds'));
  assert.equal(csvRows.length, 2);
  // Without annotations every run is a row of its own.
  assert.equal(paperTables(runs).accuracy.rows.length, 3);

  // The report's RV chart draws the seeds as one group, whiskers ± their standard deviation.
  const out = path.join(dir, 'seeds-report');
  await writeHtmlReport(out, { ...report, configurations: [...runs, partial], annotations });
  const chart = await readFile(path.join(out, 'assets', 'rv.svg'), 'utf8');
  assert.ok(
    chart.includes(`(3 seeds), InfoDisent (Z): ${rvMean!.toFixed(2)}</title>`),
    'one bar for the seeds',
  );
  assert.equal(chart.split('InfoDisent (Z): ').length - 1, 1, 'no bar per run');
});

test('figures: prototype grids, explanation panels and heatmap overlays are PNGs of the right size with content', async () => {
  const e = explained();
  const key = e.keyChannels[0]!;
  const rows = key.channels.map((ch) => ({
    title: `channel ${ch.channel}`,
    subtitle: HOSTILE_CLASS,
    images: e.prototypes[ch.channel]!.prototypes.map((p) => ({
      file: path.join(datasetRoot, p.path),
      box: p.box,
      caption: p.value.toFixed(2),
    })),
  }));
  const svg = await prototypeGridSvg(rows, { title: 'key channels' });
  assert.ok(svg.includes('&lt;b&gt;&amp;&quot;x&quot;') && !svg.includes(HOSTILE_CLASS));
  const grid = await pixels(await prototypeGridPng(rows, { title: 'key channels' }));
  const columns = Math.max(...rows.map((row) => row.images.length));
  assert.equal(grid.info.width, 20 + 150 + columns * 118 - 6);
  assert.equal(grid.info.height, 20 + 26 + rows.length * 134 - 6);
  assert.ok(grid.yellow > 100, `yellow box pixels: ${grid.yellow}`);
  assert.ok(grid.spread > 30);

  // +1 at cell (1, 3), -1 at cell (4, 2) of a 7x7 map over a 160 px image shown at 220 px.
  const values = Array.from({ length: 49 }, (_, i) => (i === 10 ? 1 : i === 30 ? -1 : 0));
  const file = path.join(datasetRoot, e.explanations[0]!.path);
  const layer = {
    title: 'M',
    values,
    grid: { height: 7, width: 7 },
    geometry: cropGeometry(160, 160, PRESETS.mobilenet_v2_tfjs),
  };
  const overlay = await pixels(await heatmapOverlayPng(file, [layer, layer], { title: 'heatmaps' }));
  assert.deepEqual([overlay.info.width, overlay.info.height], [20 + 220 + 2 * 288, 20 + 24 + 20 + 220]);
  // A layer's note (which class it maps) is a second caption line, under its title.
  const noted = await heatmapOverlaySvg(
    file,
    [{ ...layer, title: 'InfoDisent M of a', note: 'predicted, wrong (true b)' }],
    {
      title: 'test image 1, true b',
    },
  );
  assert.ok(noted.includes('>InfoDisent M of a<') && noted.includes('>predicted, wrong (true b)<'));
  assert.ok(noted.includes('height="298"'), 'room for the second caption line');
  // Cell centres in the first overlay: image (80, 34.29) and (57.14, 102.86), x 1.375, offset (240, 54).
  const [r1, g1, b1] = overlay.at(240 + 80 * 1.375, 54 + (240 / 7) * 1.375);
  const [r2, g2, b2] = overlay.at(240 + (400 / 7) * 1.375, 54 + (720 / 7) * 1.375);
  assert.ok(r1 > 100 && r1 > g1 + 60 && r1 > b1 + 60, `red at the positive cell: ${[r1, g1, b1]}`);
  assert.ok(b2 > 80 && b2 > r2 + 40, `blue at the negative cell: ${[r2, g2, b2]}`);

  const x = e.explanations[0]!;
  const panel = await pixels(
    await explanationPanelPng({
      image: { file, title: `predicted ${HOSTILE_CLASS}` },
      heatmap: { ...layer, values: x.heatmap },
      channels: x.channels.map((ch) => ({
        label: `channel ${ch.channel}`,
        contribution: ch.contribution,
        share: ch.contribution / x.positiveTotal,
        prototypes: ch.prototypes.map((p) => ({ file: path.join(datasetRoot, p.path), box: p.box })),
      })),
    }),
  );
  assert.equal(panel.info.width, 30 + 220 + 190 + 5 * 102 - 6);
  assert.equal(panel.info.height, 20 + 40 + Math.max(2 * 200 + 10, x.channels.length * 102));
  assert.ok(panel.yellow > 50 && panel.spread > 30);
});

test('plots: channel-count histograms and RV bars are valid SVG with one bar per non-empty bin', async () => {
  assert.deepEqual(countBins(3), [
    { lo: 0, hi: 0 },
    { lo: 1, hi: 1 },
    { lo: 2, hi: 2 },
    { lo: 3, hi: 3 },
  ]);
  assert.deepEqual(
    countBins(40).map((b) => `${b.lo}-${b.hi}`),
    ['0-0', '1-1', '2-3', '4-7', '8-15', '16-31', '32-63'],
  );
  const [info, base] = [
    report.configurations[0]!.heads.infodisent!,
    report.configurations[0]!.heads.baseline!,
  ];
  const series = [
    { label: 'InfoDisent', values: info.ablation!.values },
    { label: `base & <line>`, values: base.ablation!.values },
  ];
  const histogram = histogramSvg(series, { title: 'channels', width: 500, height: 300 });
  const bins = countBins(Math.max(...series.flatMap((s) => s.values)));
  const nonEmpty = series.reduce(
    (n, s) => n + bins.filter((b) => s.values.some((v) => v >= b.lo && v <= b.hi)).length,
    0,
  );
  assert.equal(histogram.match(/<rect [^>]*><title>/g)!.length, nonEmpty);
  assert.ok(histogram.includes('base &amp; &lt;line&gt;'));
  const meta = await sharp(Buffer.from(histogram)).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['svg', 500, 300]);
  const raster = await pixels(await sharp(Buffer.from(histogram)).png().toBuffer());
  assert.ok(raster.spread > 20);

  const bars = barChartSvg(
    [
      { label: 'a', values: [{ mean: 4.9, ci95: [4.5, 5.3] }, { mean: 7.8 }] },
      { label: 'b', values: [null, { mean: 6.9, ci95: [6.6, 7.2] }] },
    ],
    ['InfoDisent', 'baseline'],
    { title: 'RV', yLabel: 'RV x 100' },
  );
  assert.equal(bars.match(/<rect [^>]*><title>/g)!.length, 3);
  assert.equal(bars.match(/<path d="M/g)!.length, 2, 'two error bars');
  assert.ok(bars.includes('>n/a</text>'));
  assert.equal((await sharp(Buffer.from(bars)).metadata()).format, 'svg');

  // Lines per epoch: a missing value splits its series' line, and integer epochs get integer ticks only.
  const curves = lineChartSvg(
    [
      {
        label: 'InfoDisent',
        points: [
          [1, 2.3],
          [2, 1.1],
          [3, null],
          [4, 0.5],
        ],
      },
      {
        label: 'base & <line>',
        points: [
          [1, 1.9],
          [2, 1.2],
        ],
      },
    ],
    { title: 'loss', xLabel: 'epoch', yLabel: 'mean cross-entropy' },
  );
  assert.equal(curves.match(/<polyline /g)!.length, 2, "InfoDisent's epochs 1-2 and the baseline's");
  assert.equal(curves.match(/<circle /g)!.length, 5, 'a marker at each value, epoch 4 alone');
  assert.ok(curves.includes('base &amp; &lt;line&gt;'));
  const xLabels = [...curves.matchAll(/text-anchor="middle"[^>]*>(\d+(?:\.\d+)?)</g)].map((m) => m[1]);
  assert.ok(
    ['1', '2', '3', '4'].every((t) => xLabels.includes(t)) && !xLabels.includes('1.5'),
    xLabels.join(),
  );
  assert.equal((await sharp(Buffer.from(curves)).metadata()).format, 'svg');
});

/** href/src attribute values of a page. */
function links(html: string): string[] {
  return [...html.matchAll(/\s(?:href|src)="([^"]*)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
}

test("a head's classes from its confusion counts: accuracy and most frequent mistakes as NumPy finds them", () => {
  // 40 classes with 0 to 6 test images each (some none), predictions mostly right, a few mistakes repeated.
  const random = new SeededRandom(11);
  const k = 40;
  const confusion = Array.from({ length: k }, (_, label) => {
    const row = new Array<number>(k).fill(0);
    for (let i = Math.floor(7 * random.next()); i > 0; i--) {
      const mistake = random.next() < 0.4;
      row[mistake ? (label + 1 + Math.floor(3 * random.next())) % k : label]!++;
    }
    return row;
  });
  const breakdown = classBreakdown(confusion, 12);
  const script = [
    'import json, sys',
    'import numpy as np',
    'c = np.array(json.load(sys.stdin), dtype=np.int64)',
    'n = c.sum(axis=1)',
    'acc = [None if m == 0 else float(c[i, i] / m) for i, m in enumerate(n)]',
    'off = c.copy(); np.fill_diagonal(off, 0)',
    't, p = np.nonzero(off)',
    'order = np.lexsort((p, t, -off[t, p]))[:12]',
    'print(json.dumps({"images": n.tolist(), "accuracy": acc,',
    '  "confusions": [{"label": int(t[i]), "predicted": int(p[i]), "count": int(off[t[i], p[i]])} for i in order]}))',
  ].join('\n');
  const numpy = JSON.parse(
    execFileSync(referencePython(), ['-c', script], { input: JSON.stringify(confusion), encoding: 'utf8' }),
  );
  assert.ok(breakdown.accuracy.includes(null), 'the fixture has a class without test images');
  assert.equal(breakdown.confusions.length, 12);
  assert.deepEqual(breakdown, numpy);
});

test("a sweep's history: each head's top-1 per run, latest configurations first, gaps where a run lacks one", () => {
  const run = (finishedAt: string, top1: Record<string, [number, number]>) => ({
    sweep: 'weekly',
    finishedAt,
    completed: Object.entries(top1).map(([configuration, [baseline, infodisent]]) => ({
      configuration,
      heads: [
        { kind: 'baseline' as const, evaluation: { top1: baseline } },
        { kind: 'infodisent' as const, evaluation: { top1: infodisent } },
      ],
    })),
  });
  const history = resultsHistory([
    run('2026-11-01T00:00:00Z', { a: [0.5, 0.6], retired: [0.1, 0.2] }),
    run('2026-11-08T00:00:00Z', { a: [0.5, 0.6] }),
    run('2026-11-15T00:00:00Z', { b: [0.7, 0.8], a: [0.55, 0.65] }),
  ]);
  assert.deepEqual(history, {
    sweep: 'weekly',
    runs: ['2026-11-01T00:00:00Z', '2026-11-08T00:00:00Z', '2026-11-15T00:00:00Z'],
    rows: [
      { configuration: 'b', head: 'baseline', top1: [null, null, 0.7] },
      { configuration: 'b', head: 'infodisent', top1: [null, null, 0.8] },
      { configuration: 'a', head: 'baseline', top1: [0.5, 0.5, 0.55] },
      { configuration: 'a', head: 'infodisent', top1: [0.6, 0.6, 0.65] },
      { configuration: 'retired', head: 'baseline', top1: [0.1, null, null] },
      { configuration: 'retired', head: 'infodisent', top1: [0.2, null, null] },
    ],
  });
});

test('HTML report: one self-contained folder, every relative link resolves, names escaped', async () => {
  const out = path.join(dir, 'report');
  const result = await writeHtmlReport(out, report);
  assert.equal(result.index, path.join(out, 'index.html'));
  const pages = result.files.filter((file) => file.endsWith('.html'));
  assert.deepEqual(pages.map((file) => path.relative(out, file)).sort(), [
    'configurations/parts-accuracy-only/index.html',
    'configurations/parts-synthetic/channels-baseline.html',
    'configurations/parts-synthetic/channels-infodisent.html',
    'configurations/parts-synthetic/index.html',
    'index.html',
  ]);
  for (const file of result.files) {
    assert.ok(file.startsWith(out + path.sep), `${file} is inside the report folder`);
    assert.ok(existsSync(file));
  }
  for (const file of pages) {
    const html = await readFile(file, 'utf8');
    for (const link of links(html)) {
      if (link === 'data:,' || link.startsWith('#')) continue;
      assert.ok(
        !/^([a-z]+:|\/)/i.test(link),
        `${path.relative(out, file)} links outside the folder: ${link}`,
      );
      const [target, fragment] = link.split('#');
      const resolved = path.resolve(path.dirname(file), target!);
      assert.ok(
        resolved.startsWith(out + path.sep) && existsSync(resolved),
        `${link} from ${path.relative(out, file)}`,
      );
      if (fragment)
        assert.ok((await readFile(resolved, 'utf8')).includes(`id="${fragment}"`), `${link} has its anchor`);
    }
    assert.ok(!html.includes(HOSTILE_CLASS), `${path.relative(out, file)} holds a raw class name`);
  }
  for (const file of result.files.filter((f) => f.endsWith('.svg'))) {
    const svg = await readFile(file, 'utf8');
    assert.ok(!/(href|src)="(?!data:|#)/.test(svg), `${file} references nothing outside itself`);
  }
  const configuration = await readFile(path.join(out, 'configurations/parts-synthetic/index.html'), 'utf8');
  assert.ok(configuration.includes('&lt;b&gt;&amp;&quot;x&quot;'));
  const e = explained();
  const images = links(configuration).filter((link) => link.startsWith('img/'));
  assert.equal(images.filter((link) => link.startsWith('img/explanation-')).length, e.explanations.length);
  assert.equal(images.filter((link) => link.startsWith('img/heatmaps-')).length, e.explanations.length);
  // A heatmap figure names the image's true class, and each panel the class it maps: its head's prediction,
  // marked wrong (with the true class) where it is not the true class.
  const classOf = (k: number) => escapeXml(report.configurations[0]!.classes[k]!);
  const baselineOf = new Map(
    report.configurations[0]!.heads.baseline!.explanations!.explanations.map((b) => [b.item, b]),
  );
  const mark = (predicted: number, label: number) =>
    predicted === label ? 'predicted, correct' : `predicted, wrong (true ${classOf(label)})`;
  for (const x of e.explanations) {
    const alt = new RegExp(`alt="(Heatmaps of test image ${x.item} [^"]*)"`).exec(configuration)?.[1];
    assert.ok(alt, `heatmaps of test image ${x.item}`);
    const b = baselineOf.get(x.item)!;
    assert.equal(
      alt,
      `Heatmaps of test image ${x.item} (true ${classOf(x.label)}): ` +
        `InfoDisent M of ${classOf(x.predicted)} (${mark(x.predicted, x.label)}); ` +
        `baseline CAM of ${classOf(b.predicted)} (${mark(b.predicted, x.label)})`,
    );
  }
  assert.equal(
    images.filter((link) => link.startsWith('img/infodisent-class-')).length,
    e.keyChannels.length,
  );
  for (const link of images) {
    const meta = await sharp(path.join(out, 'configurations/parts-synthetic', link)).metadata();
    assert.equal(meta.format, 'png');
  }
  // Each class's top-1 for both heads (from their confusion counts), plotted against each other.
  const synthetic = report.configurations[0]!;
  const perClass = /<table id="per-class">[\s\S]*?<\/table>/.exec(configuration)![0];
  assert.equal(perClass.match(/<tr><td class="num">/g)?.length, synthetic.classes.length);
  assert.ok(links(configuration).includes('../../assets/classes-parts-synthetic.svg'));
  // How each head trained, from the run's results: loss and validation curves, and in words.
  assert.ok(links(configuration).includes('../../assets/training-parts-synthetic.svg'));
  assert.ok(links(configuration).includes('../../assets/validation-parts-synthetic.svg'));
  assert.ok(
    configuration.includes(
      '<li>InfoDisent: 5 epochs (50 steps), stopped early; mean loss 2.30 in the first epoch and 0.510 in the last; ' +
        'best validation top-1 90.0% at epoch 3, whose weights the head keeps.</li>',
    ),
  );
  assert.ok(
    configuration.includes(
      '<li>baseline: 6 epochs (60 steps); mean loss 1.90 in the first epoch and 0.700 in the last.</li>',
    ),
  );
  const accuracyOnly = await readFile(
    path.join(out, 'configurations/parts-accuracy-only/index.html'),
    'utf8',
  );
  assert.ok(!accuracyOnly.includes('id="training"'), 'no training where the results give none');
  const rows = parseCsv(await readFile(path.join(out, 'tables', 'classes.csv'), 'utf8'));
  assert.deepEqual(rows[0], [
    'configuration',
    'dataset',
    'backbone',
    'class',
    'class_name',
    'images',
    'infodisent_top1',
    'baseline_top1',
  ]);
  // Only the configuration whose heads were evaluated class by class has rows.
  assert.deepEqual(
    rows.slice(1).map((row) => [row[0], row[4], Number(row[6])]),
    synthetic.classes.map((name, label) => [
      synthetic.configuration,
      name,
      percentOf(synthetic.heads.infodisent!.classes!.accuracy[label]!),
    ]),
  );
  // Each head's Wilson interval beside its top-1, and the heads compared image by image, in words and in
  // tables/significance.csv (one row: the other configuration's evaluations gave neither).
  const paired = synthetic.paired!;
  assert.match(
    configuration,
    new RegExp(
      `<p id="paired">On the same ${paired.images} test images, ${paired.onlyFirst} are right under the baseline only ` +
        `and ${paired.onlySecond} under InfoDisent only: .*\\(McNemar's exact test, p = ${paired.p.toPrecision(3)}\\)\\.</p>`,
    ),
  );
  for (const kind of ['infodisent', 'baseline'] as const) {
    const [low, high] = synthetic.heads[kind]!.top1Interval!;
    assert.ok(
      configuration.includes(`${(100 * low).toFixed(1)}–${(100 * high).toFixed(1)}`),
      `${kind} interval`,
    );
  }
  const significance = parseCsv(await readFile(path.join(out, 'tables', 'significance.csv'), 'utf8'));
  assert.equal(significance.length, 2);
  const column = (name: string) => Number(significance[1]![significance[0]!.indexOf(name)]);
  assert.equal(significance[1]![0], synthetic.configuration);
  assert.equal(column('test_images'), paired.images);
  assert.equal(column('baseline_only'), paired.onlyFirst);
  assert.equal(column('infodisent_only'), paired.onlySecond);
  assert.equal(column('mcnemar_p'), paired.p);
  assert.equal(column('infodisent_top1_low'), percentOf(synthetic.heads.infodisent!.top1Interval![0]));
  assert.ok(
    Math.abs(column('difference') - (column('infodisent_top1') - column('baseline_top1'))) < 1e-9,
    'the difference is that of the two top-1 figures',
  );
  const other = await readFile(path.join(out, 'configurations/parts-accuracy-only/index.html'), 'utf8');
  assert.ok(!other.includes('id="per-class"'), 'without evaluations, the class names only');
  assert.ok(!other.includes('id="paired"'), 'without predictions, no paired comparison');
  const index = await readFile(result.index, 'utf8');
  assert.ok(index.includes('extraction failed: &lt;no such file&gt;'));
  for (const id of ['accuracy', 'rv', 'ablation', 'faithfulness'])
    assert.ok(index.includes(`href="tables/${id}.tex"`));
  assert.ok(index.includes('href="tables/significance.csv"'));
});
