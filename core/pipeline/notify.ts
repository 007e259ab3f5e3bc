import type { HeadKind } from '../method/head';
import { headChanged } from '../report/comparison';
import { plural } from '../util/plural';
import type { RunComparison } from './compare';
import type { SweepResults } from './results';

/**
 * What a finished sweep posts to a webhook: `text` as Slack and Mattermost incoming webhooks show it, and the
 * figures for anything else that reads JSON.
 */
export interface SweepNotification {
  text: string;
  sweep: string;
  finishedAt: string;
  /** Where the report is: the store's location and the report's key in it. */
  report: string;
  completed: { configuration: string; heads: { kind: HeadKind; top1: number; top5: number }[] }[];
  failed: { configuration: string; error: string }[];
  /** Against the sweep's previous run: the heads whose predictions changed (a re-evaluation's news). */
  sincePrevious?: {
    finishedAt: string;
    changed: { configuration: string; head: HeadKind; top1: [number, number]; p: number | null }[];
  };
}

const percent = (value: number) => `${(100 * value).toFixed(1)}%`;

export function sweepNotification(
  results: SweepResults,
  report: string,
  previous?: RunComparison,
): SweepNotification {
  const changed = previous?.heads.filter(headChanged).map(({ configuration, head, top1, paired }) => ({
    configuration,
    head,
    top1,
    p: paired?.p ?? null,
  }));
  const lines = [
    `Sweep '${results.sweep}' finished: ${plural(results.completed.length, 'configuration')} completed, ${results.failed.length} failed.`,
    ...results.completed.map(
      (outcome) =>
        `• ${outcome.configuration}: ${outcome.heads.map((head) => `${head.kind} ${percent(head.evaluation.top1)}`).join(', ')}`,
    ),
    ...results.failed.map((failure) => `• FAILED ${failure.configuration}: ${failure.error}`),
    ...(previous && changed
      ? changed.length === 0
        ? [`No head's predictions changed since the previous run (${previous.first.finishedAt}).`]
        : [
            `Since the previous run (${previous.first.finishedAt}):`,
            ...changed.map(
              ({ configuration, head, top1, p }) =>
                `• ${configuration} ${head}: ${percent(top1[0])} → ${percent(top1[1])}` +
                (p === null ? '' : ` (McNemar p = ${p.toPrecision(2)})`),
            ),
          ]
      : []),
    `Report: ${report}`,
  ];
  return {
    text: lines.join('\n'),
    sweep: results.sweep,
    finishedAt: results.finishedAt,
    report,
    completed: results.completed.map((outcome) => ({
      configuration: outcome.configuration,
      heads: outcome.heads.map(({ kind, evaluation }) => ({
        kind,
        top1: evaluation.top1,
        top5: evaluation.top5,
      })),
    })),
    failed: results.failed,
    ...(previous && changed ? { sincePrevious: { finishedAt: previous.first.finishedAt, changed } } : {}),
  };
}

/** A webhook's address without its path and query, which often hold its secret token. */
export function webhookOrigin(url: string): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return '(not a URL)';
  }
}

const NOTIFY_TIMEOUT_MS = 15_000;

/** POSTs the notification as JSON; an error names the webhook's origin only, never its path. */
export async function postNotification(url: string, notification: SweepNotification): Promise<void> {
  const where = webhookOrigin(url);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(notification),
      signal: AbortSignal.timeout(NOTIFY_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    throw new Error(`the webhook at ${where} could not be reached (${cause})`);
  }
  if (!response.ok)
    throw new Error(`the webhook at ${where} answered ${response.status} ${response.statusText}`);
}
