import type { HeadKind } from '../method/head';
import { lineChartSvg } from './figures';
import type { ConfigurationSummary, TrainingSummary } from './summary';

/** The heads of a configuration whose training the run's results gave, with at least one epoch. */
export function trainedHeads(c: ConfigurationSummary): { kind: HeadKind; training: TrainingSummary }[] {
  return (['infodisent', 'baseline'] as const).flatMap((kind) => {
    const training = c.heads[kind]?.training;
    return training && training.history.length > 0 ? [{ kind, training }] : [];
  });
}

/** Whether the head held out a validation split: its epochs then have a validation top-1. */
export function hasValidation(training: TrainingSummary): boolean {
  return training.history.some((epoch) => epoch.validationAccuracy !== null);
}

/**
 * Each head's mean training loss per epoch (epochs counted from 1) and, where a validation split was held
 * out, its validation top-1 per epoch; undefined where no head reports its training.
 */
export function trainingCurvesSvg(
  c: ConfigurationSummary,
  label: (kind: HeadKind) => string,
): { loss: string; validation?: string } | undefined {
  const heads = trainedHeads(c);
  if (heads.length === 0) return undefined;
  const loss = lineChartSvg(
    heads.map(({ kind, training }) => ({
      label: label(kind),
      points: training.history.map(({ epoch, meanLoss }) => [epoch + 1, meanLoss] as const),
    })),
    { title: `${c.configuration}: training loss`, xLabel: 'epoch', yLabel: 'mean cross-entropy' },
  );
  const validated = heads.filter(({ training }) => hasValidation(training));
  if (validated.length === 0) return { loss };
  const validation = lineChartSvg(
    validated.map(({ kind, training }) => ({
      label: label(kind),
      points: training.history.map(
        ({ epoch, validationAccuracy }) =>
          [epoch + 1, validationAccuracy === null ? null : 100 * validationAccuracy] as const,
      ),
    })),
    { title: `${c.configuration}: validation top-1`, xLabel: 'epoch', yLabel: 'top-1 (%)', yMax: 100 },
  );
  return { loss, validation };
}

/** One head's training in words: epochs and steps, first and last loss, best validation epoch, early stop. */
export function trainingSentence(label: string, training: TrainingSummary): string {
  const { history, epochsRun, steps, bestEpoch, stoppedEarly } = training;
  const first = history[0]!.meanLoss;
  const last = history[history.length - 1]!.meanLoss;
  const best = bestEpoch === null ? undefined : history.find((e) => e.epoch === bestEpoch);
  const accuracy = best?.validationAccuracy;
  return (
    `${label}: ${epochsRun} epochs (${steps} steps)${stoppedEarly ? ', stopped early' : ''}; mean loss ` +
    `${first.toPrecision(3)} in the first epoch and ${last.toPrecision(3)} in the last` +
    (best && accuracy !== null && accuracy !== undefined
      ? `; best validation top-1 ${(100 * accuracy).toFixed(1)}% at epoch ${best.epoch + 1}, whose weights the head keeps`
      : '') +
    '.'
  );
}
