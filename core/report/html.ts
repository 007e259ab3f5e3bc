import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExplainedPrototype, ModelExplanations } from '../explain/explain-model';
import type { HeadKind } from '../method/head';
import type { RunComparison } from '../pipeline/compare';
import { plural } from '../util/plural';
import { classTable } from './classes';
import { comparisonTable, headChanged } from './comparison';
import { computeSentence, computeTable } from './compute';
import {
  boxedPrototypes,
  explanationFigurePng,
  explanationHeatmap,
  heatmapTitle,
  predictionNote,
} from './explanation-figure';
import {
  barChartSvg,
  classAccuracySvg,
  heatmapOverlayPng,
  histogramSvg,
  type PrototypeRow,
  prototypeGridPng,
  ThumbnailCache,
} from './figures';
import { historyTable } from './history';
import { significanceTable } from './significance';
import type { ConfigurationAnnotations, ConfigurationSummary, SweepReport } from './summary';
import { escapeXml as h } from './svg';
import { tableHtml, writePaperTables, writeSupplementaryTables, writeTable } from './table-formats';
import { type PaperTables, paperTables, type Table } from './tables';
import { hasValidation, trainedHeads, trainingCurvesSvg, trainingSentence } from './training';

export interface HtmlReportOptions {
  /** Channels drawn on each head's channel page (64): key channels and explanation channels first. */
  maxChannels?: number;
  /** Explained test images shown per configuration (12). */
  maxExplanations?: number;
  /** Classes whose key channels are drawn per configuration (50). */
  maxClasses?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface HtmlReport {
  /** Absolute path of index.html. */
  index: string;
  /** Every file written, absolute. */
  files: string[];
  /** The paper's tables among them (tables/<id>.md|csv|tex, tables.json), absolute. */
  tables: string[];
}

const HEAD_LABEL: Record<HeadKind, string> = { infodisent: 'InfoDisent', baseline: 'baseline' };

const STYLE = `
body { font-family: system-ui, 'DejaVu Sans', Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
header.nav { background: #263238; padding: 0.6em 1.2em; }
header.nav a { color: #eceff1; margin-right: 1.4em; text-decoration: none; }
header.nav a:hover { text-decoration: underline; }
main { padding: 1em 1.6em 3em; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0; background: #fff; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.caption, .note { color: #555; font-size: 0.9em; max-width: 70em; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
.chips a { display: inline-block; margin: 0.15em; padding: 0.1em 0.5em; background: #e3f2fd; border-radius: 0.8em; text-decoration: none; }
.downloads a { margin-right: 1em; }
`;

/** A file-name-safe, unique slug. */
function slugger(): (name: string) => string {
  const used = new Set<string>();
  return (name) => {
    const base =
      name
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[-.]+|-+$/g, '') || 'item';
    let slug = base;
    for (let i = 2; used.has(slug); i++) slug = `${base}-${i}`;
    used.add(slug);
    return slug;
  };
}

function page(title: string, root: string, nav: { href: string; label: string }[], body: string): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // An empty icon: the browser asks for no favicon (a self-contained folder has none).
    '<link rel="icon" href="data:,">',
    `<title>${h(title)}</title>`,
    `<link rel="stylesheet" href="${root}assets/style.css">`,
    '</head><body>',
    `<header class="nav">${nav.map((link) => `<a href="${h(link.href)}">${h(link.label)}</a>`).join('')}</header>`,
    `<main>${body}</main>`,
    '</body></html>',
    '',
  ].join('\n');
}

function figure(src: string, alt: string, caption?: string): string {
  return `<figure><img src="${h(src)}" alt="${h(alt)}" loading="lazy">${caption ? `<figcaption class="note">${h(caption)}</figcaption>` : ''}</figure>`;
}

const fixed = (v: number | undefined | null, digits: number, scale = 1) =>
  v === undefined || v === null || !Number.isFinite(v) ? '—' : (scale * v).toFixed(digits);

/** The rows of one configuration, without grouping. */
function filterTable(table: Table, configuration: ConfigurationSummary): Table {
  return {
    ...table,
    groupBy: undefined,
    rows: table.rows.filter((row) => row['configuration'] === configuration.configuration),
  };
}

/** Writes the report for a sweep into `outDir`: index.html, assets/, tables/ and one folder per configuration. */
export async function writeHtmlReport(
  outDir: string,
  report: SweepReport,
  options: HtmlReportOptions = {},
): Promise<HtmlReport> {
  const root = path.resolve(outDir);
  const files: string[] = [];
  const write = async (relative: string, content: string | Buffer) => {
    const file = path.join(root, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    files.push(file);
  };
  const slug = slugger();
  const slugs = report.configurations.map((c) => slug(c.configuration));
  const tables = paperTables(report.configurations, report.annotations);
  const significance = significanceTable(report.configurations);
  const compute = computeTable(report.compute ?? []);
  const tableFiles = [
    ...(await writePaperTables(path.join(root, 'tables'), tables)),
    ...(await writeSupplementaryTables(path.join(root, 'tables'), [
      classTable(report.configurations),
      significance,
    ])),
    ...(compute ? await writeTable(path.join(root, 'tables'), compute) : []),
  ];
  files.push(...tableFiles);
  await write('assets/style.css', STYLE);

  // From the RV table, where a configuration's seeds are one row: whiskers are a run's 95% interval, or
  // ± the standard deviation over the seeds.
  const rvGroups = tables.rv.rows.map((row) => {
    const seeds = typeof row['seeds'] === 'number' ? row['seeds'] : 1;
    return {
      label: `${row['dataset']} / ${row['backbone']}${seeds > 1 ? ` (${seeds} seeds)` : ''}`,
      values: (['infodisent', 'baseline'] as const).map((kind) => {
        const mean = row[`${kind}_rv`];
        const half = row[seeds > 1 ? `${kind}_rv_sd` : `${kind}_rv_ci`];
        if (typeof mean !== 'number') return null;
        const spread = typeof half === 'number' ? half : 0;
        return { mean, ci95: [mean - spread, mean + spread] as const };
      }),
    };
  });
  const hasRv = rvGroups.some((g) => g.values.some(Boolean));
  if (hasRv) {
    await write(
      'assets/rv.svg',
      barChartSvg(rvGroups, ['InfoDisent (Z)', 'baseline (F)'], {
        title: 'Mean RV coefficient between channels (x100)',
        yLabel: 'RV x 100',
      }),
    );
  }
  for (const [i, c] of report.configurations.entries()) {
    const series = (['infodisent', 'baseline'] as const).flatMap((kind) => {
      const ablation = c.heads[kind]?.ablation;
      return ablation ? [{ label: HEAD_LABEL[kind], values: ablation.values }] : [];
    });
    const { infodisent, baseline } = c.heads;
    if (infodisent?.classes && baseline?.classes) {
      await write(
        `assets/classes-${slugs[i]}.svg`,
        classAccuracySvg(
          c.classes.flatMap((name, label) => {
            const [x, y] = [baseline.classes!.accuracy[label], infodisent.classes!.accuracy[label]];
            return x === null || x === undefined || y === null || y === undefined
              ? []
              : [{ label: name, x, y }];
          }),
          { title: `${c.configuration}: top-1 of each class`, xLabel: 'baseline', yLabel: 'InfoDisent' },
        ),
      );
    }
    const curves = trainingCurvesSvg(c, (kind) => HEAD_LABEL[kind]);
    if (curves) await write(`assets/training-${slugs[i]}.svg`, curves.loss);
    if (curves?.validation) await write(`assets/validation-${slugs[i]}.svg`, curves.validation);
    if (series.length > 0) {
      await write(
        `assets/ablation-${slugs[i]}.svg`,
        histogramSvg(series, {
          title: `${c.configuration}: channels for 95% of the evidence`,
          xLabel: `channels needed (of ${c.channels})`,
        }),
      );
    }
  }

  const cache = new ThumbnailCache();
  const figureTotal = report.configurations.reduce((n, c) => n + plannedFigures(c, options), 0);
  let figuresDone = 0;
  const progress = () => options.onProgress?.(++figuresDone, figureTotal);
  for (const [i, configuration] of report.configurations.entries()) {
    await writeConfiguration(
      configuration,
      report.annotations?.[configuration.configuration] ?? {},
      `configurations/${slugs[i]}`,
      slugs[i]!,
      tables,
      write,
      cache,
      options,
      progress,
    );
  }

  const index = indexPage(report, slugs, tables, { significance, compute }, hasRv);
  await write('index.html', index);
  return { index: path.join(root, 'index.html'), files, tables: tableFiles };
}

function indexPage(
  report: SweepReport,
  slugs: string[],
  tables: PaperTables,
  { significance, compute }: { significance: Table | null; compute: Table | null },
  hasRv: boolean,
): string {
  const rows = report.configurations
    .map(
      (c, i) =>
        `<tr><td><a href="configurations/${slugs[i]}/index.html">${h(c.configuration)}</a></td><td>${h(c.dataset)}</td>` +
        `<td>${h(c.backbone)}</td><td class="num">${c.classes.length}</td><td class="num">${c.channels}</td>` +
        `<td class="num">${fixed(c.heads.baseline?.top1, 1, 100)}</td><td class="num">${fixed(c.heads.infodisent?.top1, 1, 100)}</td></tr>`,
    )
    .join('\n');
  const links = (files: string[]) =>
    `<p class="downloads">${files.map((file) => `<a href="tables/${file}">${file}</a>`).join('')}</p>`;
  const downloads = (id: string) =>
    links([...['md', 'csv', 'tex'].map((ext) => `${id}.${ext}`), 'tables.json']);
  const body = [
    `<h1>Sweep ${h(report.sweep)}</h1>`,
    `<p class="note">Generated ${h(report.generatedAt)}.${report.description ? ` ${h(report.description)}` : ''}</p>`,
    '<h2 id="configurations">Configurations</h2>',
    '<table><thead><tr><th>Configuration</th><th>Dataset</th><th>Backbone</th><th class="num">Classes</th>' +
      '<th class="num">Channels</th><th class="num">Baseline top-1 %</th><th class="num">InfoDisent top-1 %</th></tr></thead>',
    `<tbody>${rows}</tbody></table>`,
    report.failed.length > 0
      ? `<h2 id="failed">Failed configurations</h2><ul>${report.failed
          .map((f) => `<li><strong>${h(f.configuration)}</strong>: ${h(f.error)}</li>`)
          .join('')}</ul>`
      : '',
    '<h2 id="tables">Tables</h2>',
    ...Object.values(tables).map((table) => tableHtml(table) + downloads(table.id)),
    significance
      ? tableHtml(significance) + links([`${significance.id}.csv`, `${significance.id}.json`])
      : '',
    ...(report.history && report.history.runs.length > 1
      ? ['<h2 id="history">History</h2>', tableHtml(historyTable(report.history))]
      : []),
    ...(compute
      ? [
          '<h2 id="compute">Compute</h2>',
          `<p>${h(computeSentence(report.compute ?? []) ?? '')}</p>`,
          tableHtml(compute) + links(['md', 'csv', 'tex', 'json'].map((ext) => `${compute.id}.${ext}`)),
        ]
      : []),
    ...(report.sincePrevious ? sincePreviousHtml(report.sincePrevious) : []),
    '<h2 id="plots">Plots</h2>',
    hasRv
      ? figure(
          'assets/rv.svg',
          'Mean RV coefficient per configuration (whiskers: 95% interval; ± s.d. over seeds where there are several)',
        )
      : '<p class="note">No RV results.</p>',
    ...report.configurations.map((c, i) =>
      Object.values(c.heads).some((head) => head?.ablation)
        ? figure(
            `assets/ablation-${slugs[i]}.svg`,
            `Channels needed for 95% of the evidence, ${c.configuration}`,
          )
        : '',
    ),
  ];
  return page(`Sweep ${report.sweep}`, '', [{ href: 'index.html', label: 'Sweep index' }], body.join('\n'));
}

/** The heads whose predictions changed since the sweep's previous run, with McNemar's p; or that none did. */
function sincePreviousHtml(comparison: RunComparison): string[] {
  const changed = comparison.heads.filter(headChanged);
  const previous = `the previous run (finished ${h(comparison.first.finishedAt)})`;
  if (changed.length === 0)
    return [`<p id="since-previous">No head's predictions changed since ${previous}.</p>`];
  const table = comparisonTable(comparison, ['Previous run', 'This run'], changed);
  return [
    `<h3 id="since-previous">Since ${previous}</h3>`,
    tableHtml({ ...table, id: 'since-previous' }),
    ...changed
      .filter((head) => head.unpaired)
      .map(
        (head) =>
          `<p class="note">No p for ${h(head.configuration)} ${h(head.head)}: ${h(head.unpaired!)}.</p>`,
      ),
  ];
}

type Writer = (relative: string, content: string | Buffer) => Promise<void>;

/** Heads with explanations, InfoDisent first. */
function explainedHeads(c: ConfigurationSummary): { kind: HeadKind; explanations: ModelExplanations }[] {
  return (['infodisent', 'baseline'] as const).flatMap((kind) => {
    const explanations = c.heads[kind]?.explanations;
    return explanations ? [{ kind, explanations }] : [];
  });
}

function plannedFigures(c: ConfigurationSummary, options: HtmlReportOptions): number {
  if (!c.datasetRoot) return 0;
  return explainedHeads(c).reduce(
    (n, { kind, explanations }) =>
      n +
      Math.min(options.maxChannels ?? 64, explanations.channels) +
      Math.min(options.maxClasses ?? 50, explanations.keyChannels.length) +
      (kind === 'infodisent'
        ? 2 * Math.min(options.maxExplanations ?? 12, explanations.explanations.length)
        : 0),
    0,
  );
}

/** Channels to draw: explanation channels, then key channels, then by prototype strength. */
function shownChannels(explanations: ModelExplanations, max: number): number[] {
  const order: number[] = [];
  const add = (c: number) => {
    if (!order.includes(c) && order.length < max) order.push(c);
  };
  for (const e of explanations.explanations) for (const c of e.channels) add(c.channel);
  for (const k of explanations.keyChannels) for (const c of k.channels) add(c.channel);
  const strength = explanations.prototypes
    .map((p) => ({ channel: p.channel, value: p.prototypes[0]?.value ?? 0 }))
    .filter((p) => p.value > 0)
    .sort((a, b) => b.value - a.value);
  for (const { channel } of strength) add(channel);
  return order.sort((a, b) => a - b);
}

async function writeConfiguration(
  c: ConfigurationSummary,
  annotations: ConfigurationAnnotations,
  folder: string,
  slug: string,
  tables: PaperTables,
  write: Writer,
  cache: ThumbnailCache,
  options: HtmlReportOptions,
  progress: () => void,
): Promise<void> {
  const heads = explainedHeads(c);
  const className = (k: number) => classLabel(c, k);
  const file = (p: string) => path.join(c.datasetRoot!, p);
  const boxed = (prototypes: readonly ExplainedPrototype[]) => boxedPrototypes(prototypes, c.datasetRoot!);
  const drawable = c.datasetRoot !== undefined;
  const nav = [
    { href: '../../index.html', label: 'Sweep index' },
    { href: 'index.html', label: c.configuration },
    ...heads.map(({ kind }) => ({ href: `channels-${kind}.html`, label: `${HEAD_LABEL[kind]} channels` })),
  ];

  // Channel pages, one per explained head.
  for (const { kind, explanations } of heads) {
    const keyOf = new Map<number, string[]>();
    for (const k of explanations.keyChannels) {
      for (const { channel } of k.channels)
        keyOf.set(channel, [...(keyOf.get(channel) ?? []), className(k.label)]);
    }
    const purity = new Map(explanations.faithfulness.purity.perChannel.map((p) => [p.channel, p]));
    const shown = shownChannels(explanations, options.maxChannels ?? 64);
    const sections: string[] = [];
    for (const channel of shown) {
      const prototypes = explanations.prototypes[channel]?.prototypes ?? [];
      const p = purity.get(channel);
      const classes = keyOf.get(channel) ?? [];
      const image = `img/${kind}-channel-${channel}.png`;
      if (drawable && prototypes.length > 0) {
        await write(
          `${folder}/${image}`,
          await prototypeGridPng([{ title: '', images: boxed(prototypes) }], { cache, thumb: 128 }),
        );
      }
      if (drawable) progress();
      sections.push(
        `<section id="channel-${channel}"><h3>Channel ${channel}</h3>` +
          `<p>${plural(prototypes.length, 'prototype')}` +
          (p ? `; purity ${p.purity.toFixed(2)}${p.part ? ` on part <code>${h(p.part)}</code>` : ''}` : '') +
          (classes.length > 0
            ? `; key channel of ${classes.map((name) => `<strong>${h(name)}</strong>`).join(', ')}`
            : '') +
          '</p>' +
          (drawable && prototypes.length > 0 ? figure(image, `Prototypes of channel ${channel}`) : '') +
          '</section>',
      );
    }
    const chips = shown.map((channel) => `<a href="#channel-${channel}">${channel}</a>`).join('');
    const body = [
      `<h1>${h(c.configuration)}: ${HEAD_LABEL[kind]} channels</h1>`,
      `<p class="note">${shown.length} of ${explanations.channels} channels: those in explanations and key channels first, then the most strongly activated. ` +
        'Each shows its 5 training images with the largest pooled value p<sub>c</sub>, the argmax cell boxed in yellow.</p>',
      `<p class="chips">${chips}</p>`,
      ...sections,
    ];
    await write(
      `${folder}/channels-${kind}.html`,
      page(`${c.configuration} ${HEAD_LABEL[kind]} channels`, '../../', nav, body.join('\n')),
    );
  }

  // Explanations of test images (InfoDisent), with the baseline's CAM of the same image beside its heatmap.
  const info = heads.find((entry) => entry.kind === 'infodisent')?.explanations;
  const baselineOf = new Map(
    (heads.find((entry) => entry.kind === 'baseline')?.explanations.explanations ?? []).map((e) => [
      e.item,
      e,
    ]),
  );
  const explanationHtml: string[] = [];
  for (const e of (info?.explanations ?? []).slice(0, options.maxExplanations ?? 12)) {
    const title = `test image ${e.item}: true ${className(e.label)}, predicted ${className(e.predicted)}`;
    const links = e.channels
      .map((ch) => `<a href="channels-infodisent.html#channel-${ch.channel}">${ch.channel}</a>`)
      .join('');
    explanationHtml.push(
      `<h3 id="explanation-${e.item}">${h(title)}</h3><p class="chips">Top channels: ${links}</p>`,
    );
    const preset = c.preset;
    if (!drawable || !preset || !info) continue;
    const infoLayer = {
      ...explanationHeatmap(e, heatmapTitle('infodisent', className(e.predicted)), info.grid, preset),
      note: predictionNote(e.predicted, e.label, className),
    };
    const panel = `img/explanation-${e.item}.png`;
    await write(
      `${folder}/${panel}`,
      await explanationFigurePng(e, {
        file: file(e.path),
        title,
        heatmap: infoLayer,
        datasetRoot: c.datasetRoot!,
        cache,
      }),
    );
    progress();
    const baseline = baselineOf.get(e.item);
    const heatmaps = `img/heatmaps-${e.item}.png`;
    const baselineGrid = heads.find((entry) => entry.kind === 'baseline')?.explanations.grid;
    // Each head's map is of the class that head predicts, which need not be the true class of the title.
    const layers = [
      infoLayer,
      ...(baseline && baselineGrid
        ? [
            {
              ...explanationHeatmap(
                baseline,
                heatmapTitle('baseline', className(baseline.predicted)),
                baselineGrid,
                preset,
              ),
              note: predictionNote(baseline.predicted, e.label, className),
            },
          ]
        : []),
    ];
    await write(
      `${folder}/${heatmaps}`,
      await heatmapOverlayPng(file(e.path), layers, {
        cache,
        title: `test image ${e.item}, true ${className(e.label)}: each head's map of its predicted class (red +, blue −)`,
      }),
    );
    progress();
    explanationHtml.push(
      figure(panel, `Explanation of test image ${e.item}`),
      figure(
        heatmaps,
        `Heatmaps of test image ${e.item} (true ${className(e.label)}): ` +
          layers.map((layer) => `${layer.title} (${layer.note})`).join('; '),
      ),
    );
  }

  // Key channels of each class.
  const keyHtml: string[] = [];
  for (const { kind, explanations } of heads) {
    keyHtml.push(`<h3>${HEAD_LABEL[kind]}</h3>`);
    for (const k of explanations.keyChannels.slice(0, options.maxClasses ?? 50)) {
      const links = k.channels
        .map((ch) => `<a href="channels-${kind}.html#channel-${ch.channel}">${ch.channel}</a>`)
        .join('');
      keyHtml.push(
        `<h4>${h(className(k.label))} <span class="note">(${k.images} test images)</span></h4><p class="chips">${links || 'none'}</p>`,
      );
      if (!drawable || k.channels.length === 0) {
        if (drawable) progress();
        continue;
      }
      const rows: PrototypeRow[] = k.channels.map((ch) => ({
        title: `channel ${ch.channel}`,
        subtitle: `mean a = ${ch.meanContribution.toPrecision(3)}`,
        images: boxed(explanations.prototypes[ch.channel]?.prototypes ?? []),
      }));
      const image = `img/${kind}-class-${k.label}.png`;
      await write(
        `${folder}/${image}`,
        await prototypeGridPng(rows, {
          cache,
          title: `${HEAD_LABEL[kind]} key channels of ${className(k.label)}`,
        }),
      );
      progress();
      keyHtml.push(figure(image, `Key channels of ${className(k.label)}`));
    }
  }

  const headRows = (['infodisent', 'baseline'] as const)
    .map((kind) => {
      const head = c.heads[kind];
      if (!head) return '';
      const interval = head.top1Interval
        ? `${fixed(head.top1Interval[0], 1, 100)}–${fixed(head.top1Interval[1], 1, 100)}`
        : fixed(undefined, 1);
      return (
        `<tr><td>${HEAD_LABEL[kind]}</td><td class="num">${fixed(head.top1, 1, 100)}</td><td class="num">${interval}</td>` +
        `<td class="num">${fixed(head.top5, 1, 100)}</td>` +
        `<td class="num">${fixed(head.rv?.mean, 2, 100)}</td><td class="num">${fixed(head.ablation?.mean, 1)}</td>` +
        `<td class="num">${fixed(head.ablation?.median, 1)}</td></tr>`
      );
    })
    .join('');
  const hasAblation = Object.values(c.heads).some((head) => head?.ablation);
  const body = [
    `<h1>${h(c.configuration)}</h1>`,
    `<p>Dataset <strong>${h(c.dataset)}</strong> (${c.classes.length} classes), backbone <strong>${h(c.backbone)}</strong> (${c.channels} channels).</p>`,
    annotations.skippedFiles
      ? `<p class="note">${plural(annotations.skippedFiles, 'file')} of the dataset could not be read and ${annotations.skippedFiles === 1 ? 'was' : 'were'} left out (<code>skipInvalid</code>); the sweep's results.md lists them with why.</p>`
      : '',
    '<h2 id="summary">Summary</h2>',
    '<table><thead><tr><th>Head</th><th class="num">Top-1 %</th><th class="num">95% interval</th><th class="num">Top-5 %</th>' +
      '<th class="num">RV x100</th><th class="num">95% channels, mean</th><th class="num">median</th></tr></thead>' +
      `<tbody>${headRows}</tbody></table>`,
    pairedHtml(c),
    hasAblation ? figure(`../../assets/ablation-${slug}.svg`, 'Channels needed for 95% of the evidence') : '',
    heads.length > 0 ? tableHtml(filterTable(tables.faithfulness, c)) : '',
    '<h2 id="explanations">Explanations</h2>',
    drawable ? '' : '<p class="note">No dataset folder was given, so no images are drawn.</p>',
    ...(explanationHtml.length > 0 ? explanationHtml : ['<p class="note">No explained images.</p>']),
    '<h2 id="key-channels">Key channels of each class</h2>',
    ...(keyHtml.length > 0 ? keyHtml : ['<p class="note">No explanations for this configuration.</p>']),
    ...trainingHtml(c, slug),
    '<h2 id="classes">Classes</h2>',
    ...classesHtml(c, slug),
  ];
  await write(`${folder}/index.html`, page(c.configuration, '../../', nav, body.join('\n')));
}

/** The two heads on the same test images, in words: who gets which images right, and McNemar's p. */
function pairedHtml(c: ConfigurationSummary): string {
  const paired = c.paired;
  if (!paired) return '';
  const points = 100 * paired.difference;
  const verdict =
    paired.p < 0.05
      ? `InfoDisent's top-1 is ${Math.abs(points).toFixed(1)} points ${points > 0 ? 'above' : 'below'} the baseline's, a difference at the 5% level`
      : 'the two top-1 figures do not differ at the 5% level';
  return (
    `<p id="paired">On the same ${paired.images} test images, ${paired.onlyFirst} are right under the baseline only ` +
    `and ${paired.onlySecond} under InfoDisent only: ${verdict} (McNemar's exact test, p = ${paired.p.toPrecision(3)}).</p>`
  );
}

/** How each head trained: its loss (and validation top-1) per epoch, plotted and in words. */
function trainingHtml(c: ConfigurationSummary, slug: string): string[] {
  const heads = trainedHeads(c);
  if (heads.length === 0) return [];
  const validated = heads.some(({ training }) => hasValidation(training));
  return [
    '<h2 id="training">Training</h2>',
    `<ul>${heads.map(({ kind, training }) => `<li>${h(trainingSentence(HEAD_LABEL[kind], training))}</li>`).join('')}</ul>`,
    figure(`../../assets/training-${slug}.svg`, 'Mean training loss per epoch'),
    validated ? figure(`../../assets/validation-${slug}.svg`, 'Validation top-1 per epoch') : '',
  ];
}

/** A class's name, or its index where the summary has no name for it. */
const classLabel = (c: ConfigurationSummary, k: number): string => c.classes[k] ?? `class ${k}`;

/**
 * The configuration's classes: where its evaluations give them, each head's accuracy class by class (plotted
 * against each other) and its most frequent mistakes; else the class names.
 */
function classesHtml(c: ConfigurationSummary, slug: string): string[] {
  const heads = (['infodisent', 'baseline'] as const).flatMap((kind) => {
    const classes = c.heads[kind]?.classes;
    return classes ? [{ kind, classes }] : [];
  });
  if (heads.length === 0)
    return [`<ol start="0">${c.classes.map((name) => `<li>${h(name)}</li>`).join('')}</ol>`];
  const className = (k: number) => h(classLabel(c, k));
  const percent = (v: number | null | undefined) => fixed(v, 1, 100);
  const images = heads[0]!.classes.images;
  const mistakes = heads.map(({ kind, classes }) => {
    const rows = classes.confusions.map(
      ({ label, predicted, count }) =>
        `<tr><td>${className(label)}</td><td>${className(predicted)}</td><td class="num">${count}</td>` +
        `<td class="num">${percent(count / (classes.images[label] || 1))}</td></tr>`,
    );
    return rows.length === 0
      ? `<p class="note">${HEAD_LABEL[kind]} makes no mistakes on the test images.</p>`
      : `<table><caption>${HEAD_LABEL[kind]}: most frequent mistakes</caption><thead><tr><th>Class</th><th>Predicted as</th>` +
          `<th class="num">Images</th><th class="num">% of the class</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  });
  const perClass = c.classes.map(
    (name, label) =>
      `<tr><td class="num">${label}</td><td>${h(name)}</td><td class="num">${images[label] ?? 0}</td>` +
      heads.map(({ classes }) => `<td class="num">${percent(classes.accuracy[label])}</td>`).join('') +
      '</tr>',
  );
  return [
    heads.length === 2
      ? figure(`../../assets/classes-${slug}.svg`, 'Top-1 of each class, InfoDisent against the baseline')
      : '',
    ...mistakes,
    `<table id="per-class"><caption>Top-1 accuracy (%) of each class</caption><thead><tr><th class="num">#</th><th>Class</th><th class="num">Test images</th>` +
      heads.map(({ kind }) => `<th class="num">${HEAD_LABEL[kind]}</th>`).join('') +
      `</tr></thead><tbody>${perClass.join('')}</tbody></table>`,
  ];
}
