import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { postNotification, sweepNotification } from '../core/pipeline/notify';
import type { SweepResults } from '../core/pipeline/results';
import { freePort } from '../infra/dev-server';
import { startWebhookServer, type WebhookServer } from './support/webhook';

/** A finished sweep's webhook post, against a real HTTP server on this machine. */

const results = {
  sweep: 'paper',
  finishedAt: '2026-11-27T09:00:00.000Z',
  completed: [
    {
      configuration: 'cub-resnet50',
      heads: [
        { kind: 'baseline', evaluation: { top1: 0.8312, top5: 0.95, count: 5794, detailsKey: 'k1' } },
        { kind: 'infodisent', evaluation: { top1: 0.8295, top5: 0.94, count: 5794, detailsKey: 'k2' } },
      ],
    },
  ],
  failed: [{ configuration: 'imagenet-vit-b16', error: 'extractFeatures: /data/imagenet/val missing' }],
} as unknown as SweepResults;

let webhook: WebhookServer;

before(async () => {
  webhook = await startWebhookServer();
});

after(async () => {
  await webhook.close();
});

test('a finished sweep is posted as JSON, with a text Slack shows', async () => {
  const notification = sweepNotification(results, 's3://team/runs/reports/paper/index.html');
  assert.equal(
    notification.text,
    [
      "Sweep 'paper' finished: 1 configuration completed, 1 failed.",
      '• cub-resnet50: baseline 83.1%, infodisent 83.0%',
      '• FAILED imagenet-vit-b16: extractFeatures: /data/imagenet/val missing',
      'Report: s3://team/runs/reports/paper/index.html',
    ].join('\n'),
  );
  await postNotification(`${webhook.url}/services/T000/B000/secret-token`, notification);
  assert.equal(webhook.posts.length, 1);
  const [post] = webhook.posts;
  assert.equal(post!.path, '/services/T000/B000/secret-token');
  assert.equal(post!.contentType, 'application/json');
  assert.deepEqual(post!.body, JSON.parse(JSON.stringify(notification)));
  assert.deepEqual(notification.completed[0]!.heads, [
    { kind: 'baseline', top1: 0.8312, top5: 0.95 },
    { kind: 'infodisent', top1: 0.8295, top5: 0.94 },
  ]);
});

test("a webhook that refuses or cannot be reached fails with its origin named, never its path's token", async () => {
  const notification = sweepNotification(results, 'report');
  await assert.rejects(
    postNotification(`${webhook.url}/refuse/secret-token`, notification),
    (error: Error) => {
      assert.equal(error.message, `the webhook at ${webhook.url}/… answered 500 Internal Server Error`);
      return true;
    },
  );
  const port = await freePort();
  await assert.rejects(
    postNotification(`http://127.0.0.1:${port}/secret-token`, notification),
    (error: Error) => {
      assert.equal(
        error.message,
        `the webhook at http://127.0.0.1:${port}/… could not be reached (ECONNREFUSED)`,
      );
      return true;
    },
  );
});
