import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../util/errors';
import type { Box, DatasetManifest } from '../dataset';

export interface LoadOptions {
  /**
   * Record a bad input (a listed file that is missing, an unknown class folder, a malformed index line,
   * an unreadable annotation) in `skipped` and go on, instead of throwing. Missing or unreadable index
   * files as a whole are always errors.
   */
  skipInvalid?: boolean;
}

/** One input left out under `skipInvalid`: `path` is relative to the manifest root, `reason` the would-be error. */
export interface SkippedInput {
  path: string;
  reason: string;
}

export interface LoadResult {
  manifest: DatasetManifest;
  /** Always empty unless `skipInvalid` was set. */
  skipped: SkippedInput[];
}

/** A bad dataset input, naming the file (and the line of an index file) at fault. */
export class DatasetInputError extends InputError {
  constructor(
    readonly file: string,
    readonly reason: string,
    readonly line?: number,
  ) {
    super(`${line === undefined ? file : `${file}:${line}`}: ${reason}`);
    this.name = 'DatasetInputError';
  }
}

/** Where a problem was found: an index file and line, or the bad file itself. */
export interface Where {
  file: string;
  line?: number;
}

/** Throws on a bad input, or records it when the caller opted into `skipInvalid`. */
export class Problems {
  readonly skipped: SkippedInput[] = [];

  constructor(
    private readonly root: string,
    private readonly skipInvalid: boolean,
  ) {}

  /** `subject` is the file left out because of the problem, where it is not `where.file` itself. */
  report(where: Where, reason: string, subject?: string): void {
    this.record(new DatasetInputError(where.file, reason, where.line), subject);
  }

  record(error: DatasetInputError, subject?: string): void {
    if (!this.skipInvalid)
      throw new DatasetInputError(
        error.file,
        `${error.reason} (the dataset's skipInvalid would leave it out)`,
        error.line,
      );
    this.skipped.push({ path: relativePath(this.root, subject ?? error.file), reason: error.message });
  }

  /** Runs `parse`; a DatasetInputError from it is reported like any problem and yields undefined. */
  attempt<T>(parse: () => T): T | undefined {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof DatasetInputError)) throw error;
      this.record(error);
      return undefined;
    }
  }

  result(manifest: DatasetManifest): LoadResult {
    return { manifest, skipped: this.skipped };
  }
}

/** The extensions torchvision's ImageFolder reads (its IMG_EXTENSIONS) that sharp decodes too. */
const DECODED_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff']);
/** The rest of ImageFolder's: images a torchvision run would read, which sharp's libvips cannot. */
const UNDECODED_EXTENSIONS = new Set(['.bmp', '.ppm', '.pgm']);

/**
 * The image files among `files` (relative to `dir`), as torchvision's ImageFolder takes them by extension
 * (other files are left out, as there). One that only Pillow would read is a problem: a run that went
 * on without it would silently train and test on fewer images than torchvision.
 */
export function imageFiles(dir: string, files: string[], problems: Problems): string[] {
  return files.filter((file) => {
    const extension = path.extname(file).toLowerCase();
    if (UNDECODED_EXTENSIONS.has(extension)) {
      problems.report(
        { file: path.join(dir, file) },
        `unsupported image format '${extension}': images are read as JPEG, PNG, WebP or TIFF (convert these, e.g. to PNG)`,
      );
    }
    return DECODED_EXTENSIONS.has(extension);
  });
}

/** '/'-separated path of `file` relative to `root`. */
export function relativePath(root: string, file: string): string {
  return path.relative(root, file).split(path.sep).join('/');
}

/** Code-point order, as Python's sorted() (torchvision's ImageFolder) orders class folders. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function isDirectory(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

export async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

/** The first of `candidates` that is a file, if any. */
export async function firstFile(candidates: string[]): Promise<string | undefined> {
  for (const candidate of candidates) if (await isFile(candidate)) return candidate;
  return undefined;
}

export async function requireFile(file: string, what: string): Promise<string> {
  if (!(await isFile(file))) throw new DatasetInputError(file, `missing ${what}`);
  return file;
}

export async function requireDirectory(dir: string, what: string): Promise<string> {
  if (!(await isDirectory(dir))) throw new DatasetInputError(dir, `missing ${what} folder`);
  return dir;
}

async function entryKind(dir: string, entry: Dirent): Promise<'file' | 'dir' | undefined> {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  // Dataset trees are often assembled from symlinks: follow them.
  if (entry.isSymbolicLink()) {
    const target = await stat(path.join(dir, entry.name)).catch(() => undefined);
    if (target?.isFile()) return 'file';
    if (target?.isDirectory()) return 'dir';
  }
  return undefined;
}

/** Immediate subfolders of `dir`, sorted by code point. */
export async function listSubdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const entry of entries) {
    if (!entry.name.startsWith('.') && (await entryKind(dir, entry)) === 'dir') names.push(entry.name);
  }
  return names.sort(byCodePoint);
}

/** Every file under `dir` (recursively, hidden entries skipped), '/'-separated relative paths, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(dir, rel);
    for (const entry of await readdir(abs, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const kind = await entryKind(abs, entry);
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (kind === 'dir') await walk(child);
      else if (kind === 'file') files.push(child);
    }
  };
  await walk('');
  return files.sort(byCodePoint);
}

export interface IndexLine {
  line: number;
  text: string;
}

/** Non-blank lines of a text index file, trimmed, with their 1-based line numbers. */
export async function readIndexLines(file: string): Promise<IndexLine[]> {
  const text = await readFile(file, 'utf8');
  const lines: IndexLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed !== '') lines.push({ line: i + 1, text: trimmed });
  });
  return lines;
}

export interface IdRow<T> {
  id: number;
  value: T;
  line: number;
}

/**
 * Rows of an index whose lines read `<positive integer id> <rest>`. `parseRest` returns undefined for a
 * malformed remainder; `expected` describes the line format for the error message.
 */
export async function readIdRows<T>(
  file: string,
  expected: string,
  problems: Problems,
  parseRest: (rest: string) => T | undefined,
): Promise<IdRow<T>[]> {
  const rows: IdRow<T>[] = [];
  for (const { line, text } of await readIndexLines(file)) {
    const match = /^(\d+)\s+(.*)$/.exec(text);
    const id = match ? Number(match[1]) : 0;
    const value = match && id > 0 ? parseRest(match[2]!) : undefined;
    if (value === undefined) problems.report({ file, line }, `malformed line, expected '${expected}'`);
    else rows.push({ id, value, line });
  }
  return rows;
}

/** As readIdRows, for an index with one line per id: a repeated id is a problem. */
export async function readIdTable<T>(
  file: string,
  expected: string,
  problems: Problems,
  parseRest: (rest: string) => T | undefined,
): Promise<Map<number, IdRow<T>>> {
  const table = new Map<number, IdRow<T>>();
  for (const row of await readIdRows(file, expected, problems, parseRest)) {
    const first = table.get(row.id);
    if (first) problems.report({ file, line: row.line }, `id ${row.id} repeats line ${first.line}`);
    else table.set(row.id, row);
  }
  return table;
}

/** Whitespace-separated finite numbers, exactly `count` of them, else undefined. */
export function parseNumbers(text: string, count: number): number[] | undefined {
  const fields = text.split(/\s+/);
  if (fields.length !== count) return undefined;
  const values = fields.map(Number);
  return values.every(Number.isFinite) ? values : undefined;
}

/**
 * Converts a box given as 1-based inclusive pixel indices (MATLAB annotations, PASCAL VOC) to the
 * manifest's 0-based, end-exclusive convention.
 */
export function boxFromOneBasedInclusive(xmin: number, ymin: number, xmax: number, ymax: number): Box {
  return { x0: Math.max(0, xmin - 1), y0: Math.max(0, ymin - 1), x1: xmax, y1: ymax };
}

/** The smallest box enclosing all `boxes`. */
export function enclosingBox(boxes: Box[]): Box | undefined {
  if (boxes.length === 0) return undefined;
  return {
    x0: Math.min(...boxes.map((b) => b.x0)),
    y0: Math.min(...boxes.map((b) => b.y0)),
    x1: Math.max(...boxes.map((b) => b.x1)),
    y1: Math.max(...boxes.map((b) => b.y1)),
  };
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
