import type { HeadKind } from '../method/head';
import { type ComputeRecord, recordRate } from '../util/compute-record';
import type { SweepResults } from './results';

/** A rate an earlier run measured: a backbone's images extracted a second, or a head's training steps a second. */
export interface MeasuredRate {
  perSecond: number;
  runtime: string;
  hardware: string;
  /** The configuration (and its sweep) whose run measured it, and when it finished. */
  measuredBy: string;
  finishedAt: string;
}

/** How long a piece of work left would take at a rate measured before. */
export interface Estimate {
  seconds: number;
  /** What the rate is of, and the rate. */
  key: RateKey;
  rate: MeasuredRate;
}

/** What rates are kept by: a backbone's extraction, or a head of a kind on a backbone's features. */
export type RateKey = `extract ${string}` | `train ${HeadKind} on ${string}`;

/**
 * The latest rate of each backbone's extraction and each head kind's training on each backbone, from the
 * compute records in stored sweep results. A head's steps a second also depend on its classes and batch
 * size: an estimate from another dataset is a guide, not a promise.
 */
export function measuredRates(sweeps: readonly SweepResults[]): Map<RateKey, MeasuredRate> {
  const rates = new Map<RateKey, MeasuredRate>();
  const keep = (key: RateKey, record: ComputeRecord | undefined, measuredBy: string) => {
    const perSecond = record ? recordRate(record) : null;
    if (!record || perSecond === null) return;
    const known = rates.get(key);
    if (known && known.finishedAt >= record.finishedAt) return;
    rates.set(key, {
      perSecond,
      runtime: record.name,
      hardware: record.hardware,
      measuredBy,
      finishedAt: record.finishedAt,
    });
  };
  for (const sweep of sweeps)
    for (const outcome of sweep.completed) {
      const by = `${sweep.sweep}/${outcome.configuration}`;
      for (const record of Object.values(outcome.features.compute ?? {}))
        keep(`extract ${outcome.backbone}`, record, by);
      for (const head of outcome.heads) keep(`train ${head.kind} on ${outcome.backbone}`, head.compute, by);
    }
  return rates;
}

/** The time `items` (images, steps) take at the rate kept under `key`, where one was measured. */
export function estimate(
  rates: ReadonlyMap<RateKey, MeasuredRate>,
  key: RateKey,
  items: number,
): Estimate | undefined {
  const rate = rates.get(key);
  return rate ? { seconds: items / rate.perSecond, key, rate } : undefined;
}
