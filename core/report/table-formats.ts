/**
 * How tables are written: Markdown, LaTeX and HTML for people (hidden columns left out, groups and spreads
 * printed), CSV and JSON for programs (every column, full precision), each escaped for its format.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { escapeXml } from './svg';
import type { Cell, PaperTables, Table, TableColumn } from './tables';

const visible = (table: Table) => table.columns.filter((column) => !column.hidden);

function formatNumber(value: number, column: TableColumn): string {
  if (column.digits === undefined) return String(value);
  const smallest = 10 ** -column.digits;
  if (column.boundSmall && value > 0 && value < smallest / 2) return `< ${smallest.toFixed(column.digits)}`;
  return value.toFixed(column.digits);
}

/** How Markdown, LaTeX or HTML print a cell: a missing value, text, and a number with its digits. */
interface CellStyle {
  missing: string;
  text: (value: string) => string;
  /** Default: as text. */
  number?: (formatted: string) => string;
}

/** A cell as `style` prints it; a number with a spread over seeds as "mean ± sd". */
function printed(row: Record<string, Cell>, column: TableColumn, style: CellStyle): string {
  const value = row[column.key] ?? null;
  if (value === null) return style.missing;
  if (typeof value === 'string') return style.text(value);
  const sd = column.spread ? row[`${column.key}_sd`] : null;
  const formatted =
    typeof sd === 'number'
      ? `${formatNumber(value, column)} ± ${formatNumber(sd, column)}`
      : formatNumber(value, column);
  return (style.number ?? style.text)(formatted);
}

/** Rows with repeated group values blanked (the first row of each group keeps it). */
function grouped(table: Table): Record<string, Cell>[] {
  const group = table.groupBy;
  return table.rows.map((row, i) =>
    group && i > 0 && table.rows[i - 1]![group] === row[group] ? { ...row, [group]: '' } : row,
  );
}

/** Backslash-escapes the characters that Markdown (CommonMark/GFM tables) would interpret. */
export function escapeMarkdown(value: string): string {
  return value.replace(/[\\`*_[\]<>|~#&]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

export function tableMarkdown(table: Table): string {
  const columns = visible(table);
  const style: CellStyle = { missing: '—', text: escapeMarkdown };
  const lines = [
    `| ${columns.map((c) => escapeMarkdown(c.label)).join(' | ')} |`,
    `|${columns.map((c) => (c.kind === 'number' ? '---:' : ':---')).join('|')}|`,
    ...grouped(table).map((row) => `| ${columns.map((c) => printed(row, c, style)).join(' | ')} |`),
  ];
  return `**${escapeMarkdown(table.title)}**\n\n${lines.join('\n')}\n\n${escapeMarkdown(table.caption)}\n`;
}

/** A table's visible columns and rows as plain text, for a terminal: numbers with their digits, '—' for none. */
export function tableText(table: Table): { header: string[]; rows: string[][] } {
  const columns = visible(table);
  const style: CellStyle = { missing: '—', text: (value) => value };
  return {
    header: columns.map((column) => column.label),
    rows: table.rows.map((row) => columns.map((column) => printed(row, column, style))),
  };
}

/** RFC 4180 field: quoted when it holds a comma, quote, CR/LF or edge spaces; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** RFC 4180 CSV with a header of column keys; numbers at full precision, empty for missing values. */
export function tableCsv(table: Table): string {
  const cell = (value: Cell) =>
    value === null ? '' : typeof value === 'number' ? String(value) : csvField(value);
  const lines = [
    table.columns.map((c) => csvField(c.key)).join(','),
    ...table.rows.map((row) => table.columns.map((c) => cell(row[c.key] ?? null)).join(',')),
  ];
  return `${lines.join('\r\n')}\r\n`;
}

const LATEX_SPECIAL: Record<string, string> = {
  '\\': '\\textbackslash{}',
  '&': '\\&',
  '%': '\\%',
  $: '\\$',
  '#': '\\#',
  _: '\\_',
  '{': '\\{',
  '}': '\\}',
  '~': '\\textasciitilde{}',
  '^': '\\textasciicircum{}',
  '<': '\\textless{}',
  '>': '\\textgreater{}',
  '|': '\\textbar{}',
  '±': '$\\pm$',
};

export function escapeLatex(value: string): string {
  return value.replace(/[\\&%$#_{}~^<>|±]/g, (c) => LATEX_SPECIAL[c]!).replace(/\r?\n/g, ' ');
}

/** The preamble packages a generated table needs, named in its leading comment. */
export const LATEX_PACKAGES = ['booktabs', 'graphicx'] as const;

/**
 * A booktabs table; a \midrule separates groups. It fits the text width: set in \small with narrower
 * column gaps, and shrunk (never enlarged) to \linewidth where it is still wider. Needs the packages of
 * LATEX_PACKAGES, which its leading comment names.
 */
export function tableLatex(table: Table): string {
  const columns = visible(table);
  const style: CellStyle = {
    missing: '--',
    text: escapeLatex,
    number: (formatted) => escapeLatex(formatted).replace(/^-/, () => '$-$'),
  };
  const rows = grouped(table);
  const body = rows.map((row, i) => {
    const line = `    ${columns.map((c) => printed(row, c, style)).join(' & ')} \\\\`;
    const newGroup = table.groupBy && i > 0 && row[table.groupBy] !== '';
    return newGroup ? `    \\midrule\n${line}` : line;
  });
  return [
    `% Needs ${LATEX_PACKAGES.map((name) => `\\usepackage{${name}}`).join(' and ')} in the preamble.`,
    '\\begin{table}[t]',
    '  \\centering',
    `  \\caption{${escapeLatex(table.title)}. ${escapeLatex(table.caption)}}`,
    `  \\label{tab:${table.id.replace(/[^A-Za-z0-9:-]/g, '-')}}`,
    '  \\small',
    '  \\setlength{\\tabcolsep}{4pt}',
    // \width is the tabular's natural width: shrunk to the line where wider, else left as it is.
    '  \\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%',
    `  \\begin{tabular}{${columns.map((c) => (c.kind === 'number' ? 'r' : 'l')).join('')}}`,
    '    \\toprule',
    `    ${columns.map((c) => escapeLatex(c.label)).join(' & ')} \\\\`,
    '    \\midrule',
    ...body,
    '    \\bottomrule',
    '  \\end{tabular}}',
    '\\end{table}',
    '',
  ].join('\n');
}

/** An HTML table (every string escaped), for the report. */
export function tableHtml(table: Table): string {
  const columns = visible(table);
  const style: CellStyle = { missing: '—', text: escapeXml };
  const align = (c: TableColumn) => (c.kind === 'number' ? ' class="num"' : '');
  return [
    `<table id="table-${escapeXml(table.id)}"><caption>${escapeXml(table.title)}</caption>`,
    `<thead><tr>${columns.map((c) => `<th${align(c)}>${escapeXml(c.label)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...table.rows.map(
      (row) => `<tr>${columns.map((c) => `<td${align(c)}>${printed(row, c, style)}</td>`).join('')}</tr>`,
    ),
    '</tbody></table>',
    `<p class="caption">${escapeXml(table.caption)}</p>`,
  ].join('\n');
}

/** The tables as JSON: columns and rows as typed values (missing values null). */
export function tablesJson(tables: PaperTables): string {
  return `${JSON.stringify(tables, null, 2)}\n`;
}

/** The files a table export can hold: one per table in md, csv and tex, and tables.json with them all. */
export const TABLE_FORMATS = ['md', 'csv', 'tex', 'json'] as const;
export type TableFormat = (typeof TABLE_FORMATS)[number];

const PER_TABLE: Record<Exclude<TableFormat, 'json'>, (table: Table) => string> = {
  md: tableMarkdown,
  csv: tableCsv,
  tex: tableLatex,
};

/**
 * Writes <id>.md, <id>.csv and <id>.tex for every table and tables.json into `dir` (only the given
 * formats); returns the files.
 */
export async function writePaperTables(
  dir: string,
  tables: PaperTables,
  formats: readonly TableFormat[] = TABLE_FORMATS,
): Promise<string[]> {
  const perTable = formats.filter((format) => format !== 'json');
  const files: string[] = [];
  for (const table of Object.values(tables)) files.push(...(await writeTable(dir, table, perTable)));
  if (formats.includes('json')) {
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, 'tables.json');
    await writeFile(file, tablesJson(tables), 'utf8');
    files.push(file);
  }
  return files;
}

/** Writes one table as <id>.<format> for each of `formats` (JSON: the table itself); returns the files. */
export async function writeTable(
  dir: string,
  table: Table,
  formats: readonly TableFormat[] = TABLE_FORMATS,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const format of formats) {
    const file = path.join(dir, `${table.id}.${format}`);
    const content = format === 'json' ? `${JSON.stringify(table, null, 2)}\n` : PER_TABLE[format](table);
    await writeFile(file, content, 'utf8');
    files.push(file);
  }
  return files;
}

/**
 * Tables beside the paper's (the per-class table, the significance table): <id>.csv and <id>.json for the
 * formats asked among those (Markdown and LaTeX of thousands of per-class rows would help nobody); returns
 * the files. A null table (nothing to show) writes nothing.
 */
export async function writeSupplementaryTables(
  dir: string,
  tables: readonly (Table | null)[],
  formats: readonly TableFormat[] = TABLE_FORMATS,
): Promise<string[]> {
  const kept = formats.filter((format) => format === 'csv' || format === 'json');
  const files: string[] = [];
  for (const table of tables) if (table) files.push(...(await writeTable(dir, table, kept)));
  return files;
}
