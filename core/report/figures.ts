import sharp from 'sharp';
import type { Box } from '../data/dataset';
import type { CropGeometry } from '../data/preprocess';
import { heatmapOnImage, symmetricRange } from '../explain/maps';
import {
  divergingColor,
  escapeXml,
  fit,
  niceTicks,
  num,
  rasterise,
  rgbCss,
  svgDocument,
  text,
  tickLabel,
} from './svg';

/** An image file with an optional box (original image coordinates) drawn on it. */
export interface BoxedImage {
  file: string;
  box?: Box;
  caption?: string;
}

interface Thumbnail {
  uri: string;
  width: number;
  height: number;
  /** Thumbnail pixels per original pixel. */
  scale: number;
}

/**
 * Decoded, downscaled images as PNG data URIs, keyed by file and size: a training image shown as the
 * prototype of several channels is decoded once per report.
 */
export class ThumbnailCache {
  private readonly entries = new Map<string, Promise<Thumbnail>>();

  get(file: string, side: number): Promise<Thumbnail> {
    const key = `${side}:${file}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = makeThumbnail(file, side);
      this.entries.set(key, entry);
    }
    return entry;
  }
}

async function makeThumbnail(file: string, side: number): Promise<Thumbnail> {
  const { data, info } = await sharp(file)
    .removeAlpha()
    .resize(side, side, { fit: 'inside' })
    .png()
    .toBuffer({ resolveWithObject: true });
  const { width: original } = await sharp(file).metadata();
  if (!original) throw new Error(`cannot read the size of ${file}`);
  return {
    uri: `data:image/png;base64,${data.toString('base64')}`,
    width: info.width,
    height: info.height,
    scale: info.width / original,
  };
}

const BOX_COLOR = '#ffd400';

/** An image fitted (centred) in a side x side cell at (x, y), with its box outlined in yellow on black. */
function imageCell(thumb: Thumbnail, x: number, y: number, side: number, box?: Box): string {
  const ox = x + (side - thumb.width) / 2;
  const oy = y + (side - thumb.height) / 2;
  let out =
    `<rect x="${num(x)}" y="${num(y)}" width="${side}" height="${side}" fill="#eeeeee"/>` +
    `<image x="${num(ox)}" y="${num(oy)}" width="${thumb.width}" height="${thumb.height}" href="${thumb.uri}"/>`;
  if (box) {
    const r = `x="${num(ox + box.x0 * thumb.scale)}" y="${num(oy + box.y0 * thumb.scale)}" width="${num(Math.max(1, (box.x1 - box.x0) * thumb.scale))}" height="${num(Math.max(1, (box.y1 - box.y0) * thumb.scale))}" fill="none"`;
    out += `<rect ${r} stroke="#000000" stroke-width="4"/><rect ${r} stroke="${BOX_COLOR}" stroke-width="2"/>`;
  }
  return out;
}

export interface PrototypeRow {
  title: string;
  subtitle?: string;
  images: BoxedImage[];
}

export interface GridOptions {
  /** Side of each image cell in pixels (112). */
  thumb?: number;
  cache?: ThumbnailCache;
  title?: string;
}

/** Rows of prototypes (a channel each, or a class's key channels), boxes drawn on their argmax cells. */
export async function prototypeGridSvg(
  rows: readonly PrototypeRow[],
  options: GridOptions = {},
): Promise<string> {
  const side = options.thumb ?? 112;
  const cache = options.cache ?? new ThumbnailCache();
  const pad = 10;
  // The label column is dropped when no row has a title (a single channel's strip).
  const label = rows.some((row) => row.title || row.subtitle) ? 150 : 0;
  const gap = 6;
  const caption = 16;
  const header = options.title ? 26 : 0;
  const columns = Math.max(1, ...rows.map((row) => row.images.length));
  const width = pad * 2 + label + columns * (side + gap) - gap;
  const rowHeight = side + caption + gap;
  const height = pad * 2 + header + Math.max(1, rows.length) * rowHeight - gap;
  const parts: string[] = [];
  if (options.title)
    parts.push(text(pad, pad + 16, fit(options.title, width - 2 * pad, 15), { size: 15, weight: 'bold' }));
  for (const [r, row] of rows.entries()) {
    const y = pad + header + r * rowHeight;
    parts.push(text(pad, y + side / 2 - 4, fit(row.title, label - 8, 13), { size: 13, weight: 'bold' }));
    if (row.subtitle)
      parts.push(
        text(pad, y + side / 2 + 13, fit(row.subtitle, label - 8, 11), { size: 11, fill: '#666666' }),
      );
    if (row.images.length === 0)
      parts.push(text(pad + label, y + side / 2, 'no positive activation', { size: 12, fill: '#888888' }));
    for (const [i, image] of row.images.entries()) {
      const x = pad + label + i * (side + gap);
      parts.push(imageCell(await cache.get(image.file, side), x, y, side, image.box));
      if (image.caption)
        parts.push(
          text(x + side / 2, y + side + 12, fit(image.caption, side, 10), {
            size: 10,
            anchor: 'middle',
            fill: '#444444',
          }),
        );
    }
  }
  return svgDocument(width, height, parts.join(''));
}

export async function prototypeGridPng(
  rows: readonly PrototypeRow[],
  options: GridOptions = {},
): Promise<Buffer> {
  return rasterise(await prototypeGridSvg(rows, options));
}

/** A class heatmap on the feature grid, with the preprocessing geometry of the image it belongs to. */
export interface HeatmapLayer {
  title: string;
  /** A second, smaller caption line under the title (e.g. whether the mapped class is the predicted one). */
  note?: string;
  values: ArrayLike<number>;
  grid: { height: number; width: number };
  geometry: CropGeometry;
}

/**
 * The heatmap upsampled to the thumbnail and coloured with the diverging map, symmetric around 0 (blue
 * negative, red positive); opacity grows with |value| so zero leaves the image visible.
 */
async function heatmapOverlay(
  layer: HeatmapLayer,
  thumb: Thumbnail,
): Promise<{ uri: string; range: number }> {
  const range = symmetricRange(layer.values);
  const values = heatmapOnImage(layer.values, layer.grid, layer.geometry, {
    width: thumb.width,
    height: thumb.height,
  });
  const rgba = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => {
    if (Number.isNaN(v) || range === 0) return;
    const t = v / range;
    const [r, g, b] = divergingColor(t);
    rgba.set([r, g, b, Math.round(255 * Math.min(0.85, Math.abs(t)))], i * 4);
  });
  const png = await sharp(rgba, { raw: { width: thumb.width, height: thumb.height, channels: 4 } })
    .png()
    .toBuffer();
  return { uri: `data:image/png;base64,${png.toString('base64')}`, range };
}

/** A vertical colour bar for [-range, range] at (x, y), `height` tall. */
function colourBar(id: string, x: number, y: number, height: number, range: number): string {
  const stops = Array.from({ length: 11 }, (_, i) => {
    const t = 1 - i / 5;
    return `<stop offset="${num(i / 10)}" stop-color="${rgbCss(divergingColor(t))}"/>`;
  }).join('');
  const label = (v: number) => (range === 0 ? '0' : v.toPrecision(2));
  return (
    `<defs><linearGradient id="${id}" x1="0" y1="0" x2="0" y2="1">${stops}</linearGradient></defs>` +
    `<rect x="${num(x)}" y="${num(y)}" width="12" height="${num(height)}" fill="url(#${id})" stroke="#888888" stroke-width="0.5"/>` +
    text(x + 16, y + 9, `+${label(range)}`, { size: 10 }) +
    text(x + 16, y + height / 2 + 4, '0', { size: 10 }) +
    text(x + 16, y + height, `-${label(range)}`, { size: 10 })
  );
}

async function overlayCell(
  file: string,
  layer: HeatmapLayer,
  x: number,
  y: number,
  side: number,
  cache: ThumbnailCache,
  id: string,
): Promise<string> {
  const thumb = await cache.get(file, side);
  const overlay = await heatmapOverlay(layer, thumb);
  const ox = x + (side - thumb.width) / 2;
  const oy = y + (side - thumb.height) / 2;
  return (
    imageCell(thumb, x, y, side) +
    `<image x="${num(ox)}" y="${num(oy)}" width="${thumb.width}" height="${thumb.height}" href="${overlay.uri}"/>` +
    colourBar(id, x + side + 6, y, side, overlay.range)
  );
}

/** The image, then each heatmap layer over it (e.g. InfoDisent's M_k beside the baseline's CAM). */
export async function heatmapOverlaySvg(
  file: string,
  layers: readonly HeatmapLayer[],
  options: { side?: number; title?: string; cache?: ThumbnailCache } = {},
): Promise<string> {
  const side = options.side ?? 220;
  const cache = options.cache ?? new ThumbnailCache();
  const pad = 10;
  const bar = 58;
  const header = options.title ? 24 : 0;
  const caption = layers.some((layer) => layer.note) ? 34 : 20;
  const width = pad * 2 + side + layers.length * (side + bar + pad);
  const height = pad * 2 + header + caption + side;
  const top = pad + header + caption;
  const parts = [
    options.title
      ? text(pad, pad + 15, fit(options.title, width - 2 * pad, 14), { size: 14, weight: 'bold' })
      : '',
    text(pad + side / 2, top - 6, 'image', { size: 12, anchor: 'middle' }),
    imageCell(await cache.get(file, side), pad, top, side),
  ];
  for (const [i, layer] of layers.entries()) {
    const x = pad + side + pad + i * (side + bar + pad);
    const titleY = layer.note ? top - 20 : top - 6;
    parts.push(text(x + side / 2, titleY, fit(layer.title, side, 12), { size: 12, anchor: 'middle' }));
    if (layer.note)
      parts.push(
        text(x + side / 2, top - 6, fit(layer.note, side, 11), {
          size: 11,
          anchor: 'middle',
          fill: '#555555',
        }),
      );
    parts.push(await overlayCell(file, layer, x, top, side, cache, `bar${i}`));
  }
  return svgDocument(width, height, parts.join(''));
}

export async function heatmapOverlayPng(
  file: string,
  layers: readonly HeatmapLayer[],
  options: { side?: number; title?: string; cache?: ThumbnailCache } = {},
): Promise<Buffer> {
  return rasterise(await heatmapOverlaySvg(file, layers, options));
}

export interface ExplanationPanelInput {
  image: { file: string; title: string; subtitle?: string };
  /** The explained class's heatmap, drawn over a second copy of the image. */
  heatmap?: HeatmapLayer;
  /** Top channels, by descending contribution. */
  channels: { label: string; contribution: number; share: number; prototypes: BoxedImage[] }[];
}

/**
 * An explanation of one prediction as in the paper's Figure 4: the image (and its class heatmap), then
 * per top channel a bar of its contribution a_kc with its share of the positive evidence, and the
 * channel's prototypes with their boxes.
 */
export async function explanationPanelSvg(
  input: ExplanationPanelInput,
  options: { thumb?: number; cache?: ThumbnailCache } = {},
): Promise<string> {
  const side = options.thumb ?? 96;
  const cache = options.cache ?? new ThumbnailCache();
  const pad = 10;
  const gap = 6;
  const left = 220;
  const info = 190;
  const header = 40;
  const rowHeight = side + gap;
  const columns = Math.max(1, ...input.channels.map((c) => c.prototypes.length));
  const width = pad * 3 + left + info + columns * (side + gap) - gap;
  const imageSide = left - 40;
  const block = 20 + imageSide;
  const noteLine = input.heatmap?.note ? 14 : 0;
  const leftHeight = input.heatmap ? 2 * block + pad + noteLine : block;
  const height = pad * 2 + header + Math.max(leftHeight, Math.max(1, input.channels.length) * rowHeight);
  const parts = [
    text(pad, pad + 15, fit(input.image.title, width - 2 * pad, 15), { size: 15, weight: 'bold' }),
    input.image.subtitle
      ? text(pad, pad + 32, fit(input.image.subtitle, width - 2 * pad, 12), { size: 12, fill: '#555555' })
      : '',
  ];
  const top = pad + header;
  parts.push(text(pad, top + 12, 'input', { size: 12 }));
  parts.push(imageCell(await cache.get(input.image.file, imageSide), pad, top + 20, imageSide));
  if (input.heatmap) {
    const y = top + block + pad;
    parts.push(text(pad, y + 12, fit(input.heatmap.title, left, 12), { size: 12 }));
    if (input.heatmap.note)
      parts.push(text(pad, y + 26, fit(input.heatmap.note, left, 11), { size: 11, fill: '#555555' }));
    parts.push(
      await overlayCell(
        input.image.file,
        input.heatmap,
        pad,
        y + 20 + noteLine,
        imageSide,
        cache,
        'panel-bar',
      ),
    );
  }
  const maxContribution = Math.max(...input.channels.map((c) => c.contribution), Number.MIN_VALUE);
  const x0 = pad * 2 + left;
  if (input.channels.length === 0)
    parts.push(text(x0, top + 20, 'no channel contributes positively', { size: 12, fill: '#888888' }));
  for (const [r, channel] of input.channels.entries()) {
    const y = top + r * rowHeight;
    parts.push(text(x0, y + 18, fit(channel.label, info - 10, 13), { size: 13, weight: 'bold' }));
    const barWidth = Math.max(1, ((info - 20) * channel.contribution) / maxContribution);
    parts.push(
      `<rect x="${num(x0)}" y="${num(y + 30)}" width="${num(info - 20)}" height="14" fill="#f0f0f0"/>`,
    );
    parts.push(
      `<rect x="${num(x0)}" y="${num(y + 30)}" width="${num(barWidth)}" height="14" fill="#c0392b"/>`,
    );
    parts.push(text(x0, y + 62, `a = ${channel.contribution.toPrecision(3)}`, { size: 12 }));
    parts.push(
      text(x0, y + 78, `${(100 * channel.share).toFixed(1)}% of positive evidence`, {
        size: 11,
        fill: '#555555',
      }),
    );
    for (const [i, image] of channel.prototypes.entries()) {
      parts.push(
        imageCell(await cache.get(image.file, side), x0 + info + i * (side + gap), y, side, image.box),
      );
    }
  }
  return svgDocument(width, height, parts.join(''));
}

export async function explanationPanelPng(
  input: ExplanationPanelInput,
  options: { thumb?: number; cache?: ThumbnailCache } = {},
): Promise<Buffer> {
  return rasterise(await explanationPanelSvg(input, options));
}

// ---------------------------------------------------------------------------------------------- plots

export interface CountSeries {
  label: string;
  /** Non-negative integers, one per image (e.g. channels needed for 95% of the evidence). */
  values: ArrayLike<number>;
  color?: string;
}

const SERIES_COLORS = ['#dd8452', '#4c72b0', '#55a868', '#c44e52'];

/** Integer bins: one per value up to 30, else 0, 1, 2-3, 4-7, ... (powers of two) so 3 and 900 both show. */
export function countBins(max: number): { lo: number; hi: number }[] {
  if (max <= 30) return Array.from({ length: max + 1 }, (_, v) => ({ lo: v, hi: v }));
  const bins = [{ lo: 0, hi: 0 }];
  for (let lo = 1; lo <= max; lo *= 2) bins.push({ lo, hi: 2 * lo - 1 });
  return bins;
}

interface PlotFrame {
  width: number;
  height: number;
  left: number;
  top: number;
  plotWidth: number;
  plotHeight: number;
}

function frame(width: number, height: number, bottom: number): PlotFrame {
  const left = 62;
  const top = 60;
  return { width, height, left, top, plotWidth: width - left - 20, plotHeight: height - top - bottom };
}

/** Y axis with grid lines and label; returns the value -> y mapping. */
function yAxis(f: PlotFrame, max: number, label: string): { parts: string; y: (v: number) => number } {
  const ticks = niceTicks(0, max, 5);
  // Extend the axis to the first tick at or above the data, so the tallest bar has a labelled ceiling.
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : max;
  if (ticks[ticks.length - 1]! < max) ticks.push(ticks[ticks.length - 1]! + step);
  const top = ticks[ticks.length - 1]!;
  const y = (v: number) => f.top + f.plotHeight * (1 - v / top);
  const parts = ticks
    .map(
      (t) =>
        `<line x1="${f.left}" x2="${f.left + f.plotWidth}" y1="${num(y(t))}" y2="${num(y(t))}" stroke="#e3e3e3"/>` +
        text(f.left - 6, y(t) + 4, tickLabel(t), { size: 11, anchor: 'end' }),
    )
    .join('');
  const axis = `<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + f.plotHeight}" stroke="#444444"/>`;
  const title = text(16, f.top + f.plotHeight / 2, label, { size: 12, anchor: 'middle', rotate: -90 });
  return { parts: parts + axis + title, y };
}

function legend(f: PlotFrame, entries: { label: string; color: string }[]): string {
  let x = f.left;
  return entries
    .map(({ label, color }) => {
      const out =
        `<rect x="${num(x)}" y="${f.top - 26}" width="12" height="12" fill="${color}"/>` +
        text(x + 16, f.top - 16, label, { size: 12 });
      x += 28 + 7 * label.length;
      return out;
    })
    .join('');
}

/**
 * Histogram of channel counts per image for several series (InfoDisent vs baseline), as grouped bars
 * of the share of each series' images per bin; the legend gives each series' mean and median.
 */
export function histogramSvg(
  series: readonly CountSeries[],
  options: { title?: string; xLabel?: string; width?: number; height?: number } = {},
): string {
  const f = frame(options.width ?? 640, options.height ?? 340, 56);
  let max = 0;
  for (const s of series) for (let i = 0; i < s.values.length; i++) max = Math.max(max, s.values[i]!);
  const bins = countBins(max);
  const shares = series.map((s) => {
    const counts = new Array<number>(bins.length).fill(0);
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]!;
      counts[bins.findIndex((bin) => v >= bin.lo && v <= bin.hi)]!++;
    }
    return counts.map((count) => (s.values.length > 0 ? (100 * count) / s.values.length : 0));
  });
  const colors = series.map((s, i) => s.color ?? SERIES_COLORS[i % SERIES_COLORS.length]!);
  const { parts: axis, y } = yAxis(f, Math.max(1, ...shares.flat()), 'images (%)');
  const slot = f.plotWidth / bins.length;
  const barWidth = (slot * 0.8) / Math.max(1, series.length);
  const bars: string[] = [];
  for (const [b, bin] of bins.entries()) {
    for (const [s, share] of shares.entries()) {
      const x = f.left + b * slot + slot * 0.1 + s * barWidth;
      const value = share[b]!;
      if (value > 0) {
        bars.push(
          `<rect x="${num(x)}" y="${num(y(value))}" width="${num(barWidth)}" height="${num(f.top + f.plotHeight - y(value))}" fill="${colors[s]}"><title>${escapeXml(`${series[s]!.label}: ${value.toFixed(1)}%`)}</title></rect>`,
        );
      }
    }
    const label = bin.lo === bin.hi ? String(bin.lo) : `${bin.lo}–${bin.hi}`;
    const everyOther = bins.length > 16 && b % 2 === 1;
    if (!everyOther)
      bars.push(
        text(f.left + (b + 0.5) * slot, f.top + f.plotHeight + 15, label, { size: 10, anchor: 'middle' }),
      );
  }
  const stats = series.map((s, i) => {
    const sorted = Float64Array.from(s.values).sort();
    const n = sorted.length;
    const mean = n > 0 ? sorted.reduce((a, b) => a + b, 0) / n : Number.NaN;
    const median =
      n === 0 ? Number.NaN : n % 2 ? sorted[n >> 1]! : (sorted[(n >> 1) - 1]! + sorted[n >> 1]!) / 2;
    return { label: `${s.label} (mean ${mean.toFixed(1)}, median ${tickLabel(median)})`, color: colors[i]! };
  });
  const body = [
    options.title ? text(10, 20, options.title, { size: 14, weight: 'bold' }) : '',
    axis,
    bars.join(''),
    `<line x1="${f.left}" x2="${f.left + f.plotWidth}" y1="${f.top + f.plotHeight}" y2="${f.top + f.plotHeight}" stroke="#444444"/>`,
    text(f.left + f.plotWidth / 2, f.height - 12, options.xLabel ?? 'channels', {
      size: 12,
      anchor: 'middle',
    }),
    legend(f, stats),
  ];
  return svgDocument(f.width, f.height, body.join(''));
}

export interface BarGroup {
  label: string;
  /** One bar per series (null: not available), with an optional 95% interval. */
  values: ({ mean: number; ci95?: readonly [number, number] } | null)[];
}

/** Grouped bars with 95% intervals: e.g. mean RV x 100 per configuration, InfoDisent vs baseline. */
export function barChartSvg(
  groups: readonly BarGroup[],
  seriesLabels: readonly string[],
  options: { title?: string; yLabel?: string; width?: number; height?: number } = {},
): string {
  const longest = Math.max(0, ...groups.map((g) => g.label.length));
  const rotate = groups.length > 4 || longest > 14;
  // Labels at -35 degrees need about sin(35) of their length below the axis.
  const bottom = rotate ? 30 + Math.min(longest, 28) * 4 : 40;
  const titleWidth = 20 + 0.62 * 14 * (options.title?.length ?? 0);
  const f = frame(
    options.width ?? Math.max(420, titleWidth, 90 + groups.length * 90),
    options.height ?? 300 + bottom,
    bottom,
  );
  const tops = groups.flatMap((g) => g.values.flatMap((v) => (v ? [v.mean, v.ci95?.[1] ?? v.mean] : [])));
  const { parts: axis, y } = yAxis(
    f,
    Math.max(Number.MIN_VALUE, ...tops.filter(Number.isFinite)) * 1.05,
    options.yLabel ?? '',
  );
  const colors = seriesLabels.map((_, i) => SERIES_COLORS[i % SERIES_COLORS.length]!);
  const slot = f.plotWidth / Math.max(1, groups.length);
  const barWidth = (slot * 0.7) / Math.max(1, seriesLabels.length);
  const parts: string[] = [];
  for (const [g, group] of groups.entries()) {
    for (const [s, value] of group.values.entries()) {
      const x = f.left + g * slot + slot * 0.15 + s * barWidth;
      const base = f.top + f.plotHeight;
      if (!value || !Number.isFinite(value.mean)) {
        parts.push(text(x + barWidth / 2, base - 4, 'n/a', { size: 10, anchor: 'middle', fill: '#888888' }));
        continue;
      }
      parts.push(
        `<rect x="${num(x)}" y="${num(y(Math.max(0, value.mean)))}" width="${num(barWidth)}" height="${num(base - y(Math.max(0, value.mean)))}" fill="${colors[s]}"><title>${escapeXml(`${group.label}, ${seriesLabels[s]}: ${value.mean.toFixed(2)}`)}</title></rect>`,
      );
      if (value.ci95 && value.ci95[1] > value.ci95[0]) {
        const cx = x + barWidth / 2;
        const [lo, hi] = value.ci95.map((v) => y(Math.max(0, v)));
        parts.push(
          `<path d="M${num(cx)} ${num(lo!)}V${num(hi!)}M${num(cx - 4)} ${num(lo!)}H${num(cx + 4)}M${num(cx - 4)} ${num(hi!)}H${num(cx + 4)}" stroke="#222222" stroke-width="1.2" fill="none"/>`,
        );
      }
    }
    const cx = f.left + (g + 0.5) * slot;
    const label = fit(group.label, 170, 11);
    parts.push(
      rotate
        ? text(cx, f.top + f.plotHeight + 14, label, { size: 11, anchor: 'end', rotate: -35 })
        : text(cx, f.top + f.plotHeight + 16, label, { size: 11, anchor: 'middle' }),
    );
  }
  const body = [
    options.title ? text(10, 20, options.title, { size: 14, weight: 'bold' }) : '',
    axis,
    parts.join(''),
    `<line x1="${f.left}" x2="${f.left + f.plotWidth}" y1="${f.top + f.plotHeight}" y2="${f.top + f.plotHeight}" stroke="#444444"/>`,
    legend(
      f,
      seriesLabels.map((label, i) => ({ label, color: colors[i]! })),
    ),
  ];
  return svgDocument(f.width, f.height, body.join(''));
}

export interface ClassPoint {
  label: string;
  /** Accuracies in [0, 1]: the baseline's on x, InfoDisent's on y. */
  x: number;
  y: number;
}

/**
 * Per-class top-1 of two heads against each other, with the diagonal: the head on y classifies the classes
 * above it better. Classes at the same point (common with few test images a class) are one dot, its area
 * their count.
 */
export function classAccuracySvg(
  points: readonly ClassPoint[],
  options: { title?: string; xLabel: string; yLabel: string; size?: number },
): string {
  const side = options.size ?? 360;
  const f = frame(side + 82, side + 116, 56);
  const x = (v: number) => f.left + f.plotWidth * v;
  const y = (v: number) => f.top + f.plotHeight * (1 - v);
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1];
  const grid = ticks
    .map(
      (t) =>
        `<line x1="${num(x(0))}" x2="${num(x(1))}" y1="${num(y(t))}" y2="${num(y(t))}" stroke="#e3e3e3"/>` +
        `<line x1="${num(x(t))}" x2="${num(x(t))}" y1="${num(y(0))}" y2="${num(y(1))}" stroke="#e3e3e3"/>` +
        text(f.left - 6, y(t) + 4, tickLabel(100 * t), { size: 11, anchor: 'end' }) +
        text(x(t), f.top + f.plotHeight + 15, tickLabel(100 * t), { size: 11, anchor: 'middle' }),
    )
    .join('');
  const groups = new Map<string, ClassPoint[]>();
  for (const point of points) {
    const key = `${point.x.toFixed(4)},${point.y.toFixed(4)}`;
    groups.set(key, [...(groups.get(key) ?? []), point]);
  }
  const dots = [...groups.values()]
    .map((group) => {
      const { x: px, y: py } = group[0]!;
      const names = group.map((p) => p.label);
      const tip = `${names.length > 6 ? `${names.slice(0, 6).join(', ')} and ${names.length - 6} more` : names.join(', ')}: ${options.yLabel} ${(100 * py).toFixed(1)}%, ${options.xLabel} ${(100 * px).toFixed(1)}%`;
      return `<circle cx="${num(x(px))}" cy="${num(y(py))}" r="${num(3.5 * Math.sqrt(group.length))}" fill="${SERIES_COLORS[1]}" fill-opacity="0.55" stroke="#2a4a7a" stroke-width="0.6"><title>${escapeXml(tip)}</title></circle>`;
    })
    .join('');
  const above = points.filter((p) => p.y > p.x).length;
  const below = points.filter((p) => p.y < p.x).length;
  const body = [
    options.title ? text(10, 20, options.title, { size: 14, weight: 'bold' }) : '',
    text(
      f.left,
      f.top - 14,
      `${points.length} classes: ${above} above the diagonal, ${below} below, ${points.length - above - below} on it`,
      { size: 12 },
    ),
    grid,
    `<line x1="${num(x(0))}" y1="${num(y(0))}" x2="${num(x(1))}" y2="${num(y(1))}" stroke="#888888" stroke-dasharray="5 4"/>`,
    `<rect x="${f.left}" y="${f.top}" width="${num(f.plotWidth)}" height="${num(f.plotHeight)}" fill="none" stroke="#444444"/>`,
    dots,
    text(f.left + f.plotWidth / 2, f.top + f.plotHeight + 36, `${options.xLabel} top-1 (%)`, {
      size: 12,
      anchor: 'middle',
    }),
    text(16, f.top + f.plotHeight / 2, `${options.yLabel} top-1 (%)`, {
      size: 12,
      anchor: 'middle',
      rotate: -90,
    }),
  ];
  return svgDocument(f.width, f.height, body.join(''));
}

export interface LineSeries {
  label: string;
  /** [x, y] points in x order; y null where the series has no value there (a gap in its line). */
  points: readonly (readonly [number, number | null])[];
}

/**
 * Lines over a shared x axis from 0 up (e.g. each head's mean training loss per epoch), a marker at each point
 * with its value as a tooltip. Integer x values (epochs) get integer ticks.
 */
export function lineChartSvg(
  series: readonly LineSeries[],
  options: { title?: string; xLabel: string; yLabel: string; yMax?: number; width?: number; height?: number },
): string {
  const f = frame(options.width ?? 640, options.height ?? 320, 48);
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const values = series.flatMap((s) =>
    s.points.flatMap(([, y]) => (y !== null && Number.isFinite(y) ? [y] : [])),
  );
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const { parts: axis, y } = yAxis(f, options.yMax ?? Math.max(Number.MIN_VALUE, ...values), options.yLabel);
  const x = (v: number) => f.left + f.plotWidth * (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5);
  const integers = xs.every(Number.isInteger);
  const ticks = niceTicks(x0, x1, 8).filter((t) => t >= x0 && t <= x1 && (!integers || Number.isInteger(t)));
  const colors = series.map((_, i) => SERIES_COLORS[i % SERIES_COLORS.length]!);
  const lines = series.map((s, i) => {
    const runs: string[][] = [[]];
    const markers: string[] = [];
    for (const [px, py] of s.points) {
      if (py === null || !Number.isFinite(py)) {
        runs.push([]);
        continue;
      }
      runs[runs.length - 1]!.push(`${num(x(px))},${num(y(py))}`);
      markers.push(
        `<circle cx="${num(x(px))}" cy="${num(y(py))}" r="2.5" fill="${colors[i]}"><title>${escapeXml(`${s.label}, ${options.xLabel} ${tickLabel(px)}: ${py.toPrecision(4)}`)}</title></circle>`,
      );
    }
    const polylines = runs
      .filter((run) => run.length > 1)
      .map(
        (run) => `<polyline points="${run.join(' ')}" fill="none" stroke="${colors[i]}" stroke-width="2"/>`,
      );
    return polylines.join('') + markers.join('');
  });
  const body = [
    options.title ? text(10, 20, options.title, { size: 14, weight: 'bold' }) : '',
    axis,
    ticks
      .map((t) => text(x(t), f.top + f.plotHeight + 15, tickLabel(t), { size: 11, anchor: 'middle' }))
      .join(''),
    lines.join(''),
    `<line x1="${f.left}" x2="${f.left + f.plotWidth}" y1="${f.top + f.plotHeight}" y2="${f.top + f.plotHeight}" stroke="#444444"/>`,
    text(f.left + f.plotWidth / 2, f.height - 10, options.xLabel, { size: 12, anchor: 'middle' }),
    legend(
      f,
      series.map((s, i) => ({ label: s.label, color: colors[i]! })),
    ),
  ];
  return svgDocument(f.width, f.height, body.join(''));
}
