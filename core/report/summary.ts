import type { AblationResult } from '../analysis/channel-ablation';
import type { RvResult } from '../analysis/rv-coefficient';
import type { PairedComparison } from '../analysis/significance';
import type { Reported } from '../config/experiment';
import type { PreprocessPreset } from '../data/preprocess';
import type { ModelExplanations } from '../explain/explain-model';
import type { HeadKind } from '../method/head';
import type { TrainResult } from '../method/train';
import type { RunComparison } from '../pipeline/compare';
import type { ConfigurationOutcome } from '../pipeline/results';
import type { ComputeRecord } from '../util/compute-record';
import type { ClassBreakdown } from './classes';
import type { ComputeEntry } from './compute';
import type { ResultsHistory } from './history';

/** What the report shows of one trained head; plain JSON (no typed arrays). */
export interface HeadSummary {
  /** Fractions in [0, 1]. */
  top1: number;
  top5: number;
  /** Mean RV between channels (raw scale; the tables print x100 as the paper's Table 8). */
  rv?: { mean: number; ci95: [number, number]; mode: 'exact' | 'sampled'; pairs: number; images: number };
  /** 95%-channel ablation: channels needed per test image. */
  ablation?: {
    fraction: number;
    channels: number;
    images: number;
    mean: number;
    median: number;
    values: number[];
  };
  explanations?: ModelExplanations;
  /** Accuracy class by class, read from the head's evaluation when a report or export is made. */
  classes?: ClassBreakdown;
  /** Wilson's 95% interval of top1 over the test images, read from the evaluation with `classes`. */
  top1Interval?: [number, number];
  /** How the head trained (loss and validation accuracy per epoch), read from the run's results. */
  training?: TrainingSummary;
}

/** What the report shows of a head's training: its epochs' mean loss and validation accuracy. */
export type TrainingSummary = Pick<
  TrainResult,
  'steps' | 'epochsRun' | 'stoppedEarly' | 'bestEpoch' | 'history'
>;

export interface ConfigurationSummary {
  configuration: string;
  dataset: string;
  backbone: string;
  classes: string[];
  /** C of the backbone's feature map. */
  channels: number;
  /** Absolute folder that explanation image paths are relative to (needed to draw them). */
  datasetRoot?: string;
  /** The backbone's preprocessing (needed to draw heatmaps over images). */
  preset?: PreprocessPreset;
  heads: Partial<Record<HeadKind, HeadSummary>>;
  /**
   * The two heads image by image (McNemar's exact test), the baseline first, read from their evaluations when
   * a report or export is made, where both kept their predictions.
   */
  paired?: PairedComparison;
  /** What the explain stage that wrote this summary took (absent in summaries from before it was kept). */
  compute?: ComputeRecord;
}

export interface SweepReport {
  sweep: string;
  generatedAt: string;
  description?: string;
  configurations: ConfigurationSummary[];
  failed: { configuration: string; error: string }[];
  /** What the sweep file says of each configuration beyond its results, by configuration name. */
  annotations?: SweepAnnotations;
  /** Each head's top-1 over the sweep's latest runs, where it has run before. */
  history?: ResultsHistory;
  /** This run against the sweep's previous one, head by head, where there is one. */
  sincePrevious?: RunComparison;
  /** The feature sets and heads behind the results, with what computing them took. */
  compute?: ComputeEntry[];
}

/** What a configuration's results say beyond its summary: from its sweep file, and what its run left out. */
export interface ConfigurationAnnotations {
  /** Published figures, printed beside the configuration's own. */
  reported?: Reported;
  /** The configuration this one repeats with another seed (`seeds`): the tables print them as one row. */
  repeatOf?: string;
  /** Files of its dataset left out as unreadable (skipInvalid), which results.md lists. */
  skippedFiles?: number;
}

export type SweepAnnotations = Readonly<Record<string, ConfigurationAnnotations>>;

/** A HeadSummary from the pipeline's own results (typed arrays become plain lists). */
export function headSummary(input: {
  evaluation: { top1: number; top5: number };
  rv?: RvResult;
  ablation?: AblationResult;
  explanations?: ModelExplanations;
}): HeadSummary {
  const { evaluation, rv, ablation, explanations } = input;
  return {
    top1: evaluation.top1,
    top5: evaluation.top5,
    ...(rv
      ? {
          rv: {
            mean: rv.mean,
            ci95: [rv.ci95[0], rv.ci95[1]],
            mode: rv.mode,
            pairs: rv.pairsEvaluated,
            images: rv.images,
          },
        }
      : {}),
    ...(ablation
      ? {
          ablation: {
            fraction: ablation.fraction,
            channels: ablation.channels,
            images: ablation.images,
            mean: ablation.channelsNeeded.mean,
            median: ablation.channelsNeeded.median,
            values: Array.from(ablation.channelsNeeded.values),
          },
        }
      : {}),
    ...(explanations ? { explanations } : {}),
  };
}

/** How a configuration's heads trained, by head. */
export function trainingSummaries(outcome: ConfigurationOutcome): Partial<Record<HeadKind, TrainingSummary>> {
  return Object.fromEntries(outcome.heads.map(({ kind, training }) => [kind, training]));
}

/** Where a configuration's heads keep their full evaluations (per-class accuracy, confusion counts). */
export function evaluationKeys(outcome: ConfigurationOutcome): Partial<Record<HeadKind, string>> {
  return Object.fromEntries(outcome.heads.map((head) => [head.kind, head.evaluation.detailsKey]));
}

/** How many files a configuration left out (skipInvalid). */
export function skippedCount(dataset: ConfigurationOutcome['dataset']): number {
  return dataset.skippedCount ?? dataset.skipped.length;
}

/** The annotations of the configurations that have some, by configuration name. */
export function sweepAnnotations(completed: readonly ConfigurationOutcome[]): SweepAnnotations {
  return Object.fromEntries(
    completed.flatMap(({ configuration, reported, repeatOf, dataset }) => {
      const skippedFiles = skippedCount(dataset);
      const annotations: ConfigurationAnnotations = {
        ...(reported ? { reported } : {}),
        ...(repeatOf ? { repeatOf } : {}),
        ...(skippedFiles > 0 ? { skippedFiles } : {}),
      };
      return Object.keys(annotations).length > 0 ? [[configuration, annotations]] : [];
    }),
  );
}
