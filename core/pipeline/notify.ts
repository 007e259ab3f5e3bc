import type { HeadKind } from '../method/head';
import { plural } from '../util/plural';
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
}

const percent = (value: number) => `${(100 * value).toFixed(1)}%`;

export function sweepNotification(results: SweepResults, report: string): SweepNotification {
  const lines = [
    `Sweep '${results.sweep}' finished: ${plural(results.completed.length, 'configuration')} completed, ${results.failed.length} failed.`,
    ...results.completed.map(
      (outcome) =>
        `• ${outcome.configuration}: ${outcome.heads.map((head) => `${head.kind} ${percent(head.evaluation.top1)}`).join(', ')}`,
    ),
    ...results.failed.map((failure) => `• FAILED ${failure.configuration}: ${failure.error}`),
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
