import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { classTable } from '../report/classes';
import { computeEntries, computeTable } from '../report/compute';
import { significanceTable } from '../report/significance';
import { evaluationKeys, sweepAnnotations, trainingSummaries } from '../report/summary';
import { rasterise } from '../report/svg';
import {
  type TableFormat,
  writePaperTables,
  writeSupplementaryTables,
  writeTable,
} from '../report/table-formats';
import { paperTables } from '../report/tables';
import { type ArtifactStore, getRequired } from '../store/artifact-store';
import { InputError } from '../util/errors';
import { readConfigurationSummaries, reportPrefix, type SweepResults } from './results';

export interface ExportOptions {
  /** Table files to write into tables/ (see writePaperTables). */
  formats: readonly TableFormat[];
  /**
   * Copy the report's figures (SVG charts, PNG prototypes, explanations, heatmaps) into figures/, and write
   * each chart as PNG too.
   */
  figures?: boolean;
  /** Copy the whole HTML report folder into html/. */
  html?: boolean;
}

export interface ExportedFiles {
  tables: string[];
  figures: string[];
  html: string[];
}

const FIGURE_FILE = /\.(svg|png)$/;

/** Downloads at once: enough to hide S3 latency, few enough not to flood the server. */
const DOWNLOADS_AT_ONCE = 8;

/** Copies store keys under `prefix/` into `dir`, keeping their relative paths; returns the files. */
async function copyFromStore(
  store: ArtifactStore,
  prefix: string,
  keys: readonly string[],
  dir: string,
): Promise<string[]> {
  const files = keys.map((key) => path.join(dir, ...key.slice(prefix.length + 1).split('/')));
  let next = 0;
  const lane = async () => {
    while (next < keys.length) {
      const i = next++;
      await mkdir(path.dirname(files[i]!), { recursive: true });
      await writeFile(files[i]!, await getRequired(store, keys[i]!));
    }
  };
  await Promise.all(Array.from({ length: DOWNLOADS_AT_ONCE }, lane));
  return files;
}

/** Charts are drawn as SVG; the PNG copies are this many times their size (about 300 dpi at a column's width). */
export const CHART_PNG_SCALE = 4;

/** The figures, and beside each SVG chart the same chart as PNG, which pdflatex and word processors take. */
async function withChartPngs(files: string[]): Promise<string[]> {
  const pngs: string[] = [];
  for (const file of files.filter((f) => f.endsWith('.svg'))) {
    const png = file.replace(/\.svg$/, '.png');
    if (files.includes(png)) continue;
    await writeFile(png, await rasterise(await readFile(file, 'utf8'), CHART_PNG_SCALE));
    pngs.push(png);
  }
  return [...files, ...pngs];
}

/**
 * Exports a finished sweep into `outDir`: the paper tables in tables/, rebuilt from the configuration
 * summaries in the store by the report's own code, and, as asked, the report's figures (figures/) and its
 * whole HTML folder (html/), copied from the store: figures are drawn over the dataset images, which
 * only the workers have.
 */
export async function exportSweep(
  store: ArtifactStore,
  results: SweepResults,
  outDir: string,
  options: ExportOptions,
): Promise<ExportedFiles> {
  const keys = results.completed.map((outcome) => outcome.summaryKey);
  const { configurations, missing } = await readConfigurationSummaries(
    store,
    keys,
    results.completed.map(evaluationKeys),
    results.completed.map(trainingSummaries),
  );
  if (missing.length > 0) {
    const names = results.completed.filter((o) => missing.includes(o.summaryKey)).map((o) => o.configuration);
    throw new InputError(
      `sweep '${results.sweep}': the summaries of ${names.join(', ')} are missing from ${store.location} ` +
        `(${missing.join(', ')}): resume or re-run the sweep to write them again`,
    );
  }
  const prefix = reportPrefix(results.sweep);
  const reportKeys = options.figures || options.html ? await store.list(`${prefix}/`) : [];
  if ((options.figures || options.html) && !reportKeys.includes(`${prefix}/index.html`)) {
    throw new InputError(
      `sweep '${results.sweep}' has no HTML report in ${store.location} (no ${prefix}/index.html), ` +
        'so there are no figures to export: leave out --figures and --html for the tables alone',
    );
  }
  const out = path.resolve(outDir);
  const compute = computeTable(computeEntries(results.completed));
  return {
    tables: [
      ...(await writePaperTables(
        path.join(out, 'tables'),
        paperTables(configurations, sweepAnnotations(results.completed)),
        options.formats,
      )),
      ...(await writeSupplementaryTables(
        path.join(out, 'tables'),
        [classTable(configurations), significanceTable(configurations)],
        options.formats,
      )),
      ...(compute ? await writeTable(path.join(out, 'tables'), compute, options.formats) : []),
    ],
    figures: options.figures
      ? await withChartPngs(
          await copyFromStore(
            store,
            prefix,
            reportKeys.filter((key) => FIGURE_FILE.test(key)),
            path.join(out, 'figures'),
          ),
        )
      : [],
    html: options.html ? await copyFromStore(store, prefix, reportKeys, path.join(out, 'html')) : [],
  };
}
