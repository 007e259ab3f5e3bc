import sharp from 'sharp';

/** Escapes text for XML/HTML content and double- or single-quoted attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

/** Coordinates with at most two decimals, so SVG stays small and diff-stable. */
export const num = (v: number): string => String(Math.round(v * 100) / 100);

export function svgDocument(width: number, height: number, body: string, background = '#ffffff'): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" ` +
    `viewBox="0 0 ${num(width)} ${num(height)}" font-family="${FONT}">` +
    `<rect width="100%" height="100%" fill="${background}"/>${body}</svg>`
  );
}

export function text(
  x: number,
  y: number,
  content: string,
  options: {
    size?: number;
    anchor?: 'start' | 'middle' | 'end';
    weight?: 'bold';
    fill?: string;
    rotate?: number;
  } = {},
): string {
  const attrs = [
    `x="${num(x)}"`,
    `y="${num(y)}"`,
    `font-size="${options.size ?? 12}"`,
    options.anchor && options.anchor !== 'start' ? `text-anchor="${options.anchor}"` : '',
    options.weight ? `font-weight="${options.weight}"` : '',
    `fill="${options.fill ?? '#222222'}"`,
    options.rotate ? `transform="rotate(${options.rotate} ${num(x)} ${num(y)})"` : '',
  ].filter(Boolean);
  return `<text ${attrs.join(' ')}>${escapeXml(content)}</text>`;
}

/** Shortens text to about `width` pixels at `size` (average glyph ~0.6 em), with an ellipsis. */
export function fit(content: string, width: number, size = 12): string {
  const max = Math.max(1, Math.floor(width / (0.6 * size)));
  return content.length <= max ? content : `${content.slice(0, max - 1)}…`;
}

/** Renders an SVG document to PNG with librsvg (through sharp), at its own pixel size times `scale`. */
export async function rasterise(svg: string, scale = 1): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

type Rgb = readonly [number, number, number];

/** ColorBrewer RdBu (11 classes), reversed so negative is blue and positive red, white at the middle. */
const DIVERGING: readonly Rgb[] = [
  [5, 48, 97],
  [33, 102, 172],
  [67, 147, 195],
  [146, 197, 222],
  [209, 229, 240],
  [247, 247, 247],
  [253, 219, 199],
  [244, 165, 130],
  [214, 96, 77],
  [178, 24, 43],
  [103, 0, 31],
];

/** The diverging colour of t in [-1, 1] (clamped): blue below 0, white at 0, red above. */
export function divergingColor(t: number): Rgb {
  const s = ((Math.max(-1, Math.min(1, t)) + 1) / 2) * (DIVERGING.length - 1);
  const i = Math.min(DIVERGING.length - 2, Math.floor(s));
  const f = s - i;
  const a = DIVERGING[i]!;
  const b = DIVERGING[i + 1]!;
  return [0, 1, 2].map((ch) => Math.round(a[ch]! + (b[ch]! - a[ch]!) * f)) as unknown as Rgb;
}

export const rgbCss = (rgb: Rgb): string => `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;

/** Round tick values covering [min, max] (1-2-5 steps, about `count` of them). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Math.round(v / step) * step);
  }
  return ticks;
}

/** A tick label without floating-point noise (0.30000000000000004 -> 0.3). */
export function tickLabel(v: number): string {
  return String(Number.parseFloat(v.toPrecision(6)));
}
