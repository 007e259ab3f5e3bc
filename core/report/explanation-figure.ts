import path from 'node:path';
import { cropGeometry, type PreprocessPreset } from '../data/preprocess';
import type { ExplainedImage, ExplainedPrototype } from '../explain/explain-model';
import type { HeadKind } from '../method/head';
import { type BoxedImage, explanationPanelPng, type HeatmapLayer, type ThumbnailCache } from './figures';

/** Prototypes as the figures draw them: each training image (under the dataset root), its argmax cell boxed. */
export function boxedPrototypes(
  prototypes: readonly ExplainedPrototype[],
  datasetRoot: string,
): BoxedImage[] {
  return prototypes.map((p) => ({
    file: path.join(datasetRoot, p.path),
    box: p.box,
    caption: `p = ${p.value.toPrecision(3)}`,
  }));
}

/** An explanation's class heatmap, placed over its original image through the backbone's preprocessing. */
export function explanationHeatmap(
  explanation: Pick<ExplainedImage, 'heatmap' | 'width' | 'height'>,
  title: string,
  grid: { height: number; width: number },
  preset: PreprocessPreset,
): HeatmapLayer {
  return {
    title,
    values: explanation.heatmap,
    grid,
    geometry: cropGeometry(explanation.width, explanation.height, preset),
  };
}

/** The caption of a head's class heatmap: InfoDisent's sparse M_k, the baseline's class-activation map. */
export function heatmapTitle(kind: HeadKind, className: string): string {
  return kind === 'infodisent' ? `InfoDisent M of ${className}` : `baseline CAM of ${className}`;
}

/**
 * The note under a heatmap of the class a head predicts for an image: that the class is the prediction, and
 * whether it is right (the true class named when it is not). A figure titled by the image's true class
 * thus never leaves a panel of another class unexplained.
 */
export function predictionNote(
  predicted: number,
  label: number,
  className: (index: number) => string,
): string {
  return predicted === label ? 'predicted, correct' : `predicted, wrong (true ${className(label)})`;
}

/** SPEC section 1's decomposition of the explained logit: positive channels, negative channels, bias. */
export function logitBreakdown(explanation: ExplainedImage): string {
  const { logits, predicted, positiveTotal, negativeTotal, bias } = explanation;
  return (
    `logit ${logits[predicted]!.toFixed(3)} = ${positiveTotal.toFixed(3)} (positive channels) ` +
    `− ${Math.abs(negativeTotal).toFixed(3)} (negative) ${bias < 0 ? '−' : '+'} ${Math.abs(bias).toFixed(3)} (bias)`
  );
}

/** A contribution's share of the explanation's positive evidence (sum of the positive a_kc). */
export function evidenceShare(
  explanation: Pick<ExplainedImage, 'positiveTotal'>,
  contribution: number,
): number {
  return explanation.positiveTotal > 0 ? contribution / explanation.positiveTotal : 0;
}

export interface ExplanationFigureOptions {
  /** The explained image. */
  file: string;
  title: string;
  /** The predicted class's heatmap over the image (explanationHeatmap). */
  heatmap: HeatmapLayer;
  /** Folder the prototypes' paths are relative to. */
  datasetRoot: string;
  cache?: ThumbnailCache;
}

/**
 * The panel of one explained prediction, as the report and `infodisent explain` draw it: the image and its
 * heatmap (positive and negative parts), then each top channel's contribution and prototypes.
 */
export function explanationFigurePng(
  explanation: ExplainedImage,
  options: ExplanationFigureOptions,
): Promise<Buffer> {
  return explanationPanelPng(
    {
      image: { file: options.file, title: options.title, subtitle: logitBreakdown(explanation) },
      heatmap: options.heatmap,
      channels: explanation.channels.map((channel) => ({
        label: `channel ${channel.channel}`,
        contribution: channel.contribution,
        share: evidenceShare(explanation, channel.contribution),
        prototypes: boxedPrototypes(channel.prototypes, options.datasetRoot),
      })),
    },
    options.cache ? { cache: options.cache } : {},
  );
}
