import { msToNumber } from '@temporalio/common/lib/time';
import { InvalidArgumentError, Option } from 'commander';
import type { SweepResults } from '../core/pipeline/results';
import { resultsTable, skippedSentence } from '../core/pipeline/results';
import { computeEntries, computeSentence } from '../core/report/compute';
import { TABLE_FORMATS, type TableFormat, tableText } from '../core/report/table-formats';
import type { Table } from '../core/report/tables';
import { roughDuration } from '../core/util/duration';

/** Variables that hold secrets: the Temporal API key, the AWS chain's secret parts, a webhook (its token). */
const SECRET_VARIABLES = [
  'TEMPORAL_API_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'INFODISENT_NOTIFY_URL',
];
const SECRET_FLAGS = ['--api-key', '--notify-url'];

function secretValues(): string[] {
  const argv = process.argv;
  const values = SECRET_VARIABLES.map((name) => process.env[name]);
  argv.forEach((arg, i) => {
    for (const flag of SECRET_FLAGS) {
      if (arg === flag) values.push(argv[i + 1]);
      else if (arg.startsWith(`${flag}=`)) values.push(arg.slice(flag.length + 1));
    }
  });
  // Very short values would blank out ordinary text; no real key is that short.
  return values.filter((value): value is string => value !== undefined && value.length >= 6);
}

/** Replaces every secret this process was given (flags, environment) with '***'. */
export function redact(text: string): string {
  return secretValues().reduce((out, secret) => out.split(secret).join('***'), text);
}

/** An expected failure (a bad flag, an unreachable server, a missing workflow): main prints its message, no stack. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    /** 2 for usage errors, like ConfigError; 1 otherwise. */
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Commander argument parser for counts such as --parallelism. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

/**
 * An ms-style duration ('30s', '6h', '1d', '2 days') of at least `minMs`, in milliseconds; `flag` names the
 * option in the error.
 */
export function durationMs(flag: string, value: string, minMs: number): number {
  let ms: number;
  try {
    ms = msToNumber(value as Parameters<typeof msToNumber>[0]);
  } catch {
    ms = Number.NaN;
  }
  if (!(ms >= minMs)) {
    throw new CliError(
      `${flag} '${value}' is not a duration of at least ${roughDuration(minMs / 1000)} (examples: 30s, 6h, 1d, '2 days')`,
      2,
    );
  }
  return ms;
}

/** Commander parser for a comma-separated choice of `allowed` values, e.g. `--queues gpu,cpu`. */
export function commaSeparated<T extends string>(allowed: readonly T[]): (value: string) => T[] {
  return (value) => {
    const items = value.split(',').map((item) => item.trim());
    const unknown = items.filter((item) => !allowed.includes(item as T));
    if (unknown.length > 0) {
      throw new InvalidArgumentError(
        `use one or more of ${allowed.join(', ')}, comma-separated (unknown: '${unknown.join("', '")}').`,
      );
    }
    return [...new Set(items as T[])];
  };
}

/** Commands that print data take --json for scripts. */
export interface JsonFlag {
  json?: boolean;
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${redact(JSON.stringify(value, null, 2))}\n`);
}

/** Left-aligned columns separated by two spaces; the header row is upper-cased. */
export function table(header: string[], rows: string[][]): string {
  const all = [header.map((h) => h.toUpperCase()), ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A fixed-width text bar, e.g. `[######--------------]`. */
/** A report table on the terminal: its aligned columns, then its caption. */
export function printTable(report: Table): void {
  const { header, rows } = tableText(report);
  printLine(table(header, rows));
  printLine(report.caption);
}

export function bar(done: number, total: number, width = 20): string {
  const filled = Math.round((width * Math.min(done, total)) / Math.max(1, total));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/** The results table, what computing its features and heads took, and one line per failed configuration. */
export function resultsReport(results: SweepResults): string {
  const failures = results.failed.map((f) => `FAILED ${f.configuration}: ${f.error}`);
  const compute = computeSentence(computeEntries(results.completed));
  const skipped = skippedSentence(results);
  return [
    results.completed.length > 0 ? resultsTable(results) : 'no configuration completed',
    ...(compute ? ['', compute] : []),
    ...(skipped ? ['', skipped] : []),
    ...(failures.length > 0 ? ['', ...failures] : []),
  ].join('\n');
}

/** A time to the second, e.g. 2025-01-31T12:00:00Z; '' for none. */
export function shortTime(time: Date | string | null | undefined): string {
  if (!time) return '';
  return (typeof time === 'string' ? time : time.toISOString()).replace(/\.\d+Z$/, 'Z');
}

/** "125.4 MiB": a size in bytes in binary units. */
export function binarySize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** --format for commands that write tables: md, csv, tex and json by default. */
export function tableFormatOption(): Option {
  return new Option('--format <list>', `table formats, comma-separated: ${TABLE_FORMATS.join(', ')}`)
    .default([...TABLE_FORMATS], TABLE_FORMATS.join(','))
    .argParser(commaSeparated<TableFormat>(TABLE_FORMATS));
}
