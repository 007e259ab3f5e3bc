import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { checkStore } from '../core/diagnostics/checks';
import { storeInventory } from '../core/pipeline/inventory';
import { planPrune, removeArtifacts, staleAbandonedWrites } from '../core/pipeline/prune';
import { LocalArtifactStore } from '../core/store/local-store';
import { openStore } from '../core/store/open-store';
import {
  ArtifactIntegrityError,
  S3ArtifactStore,
  S3BucketNotFoundError,
  S3CredentialsError,
  type S3StoreOptions,
  SHA256_METADATA,
} from '../core/store/s3-store';
import { sha256 } from '../core/util/hash';
import type { SeaweedFs } from '../infra/seaweedfs';
import { PRUNE_FIXTURE, writePruneFixture } from './support/prune-fixture';
import { startTestSeaweedFs } from './support/seaweedfs';

const MiB = 1024 * 1024;
const BUCKET = 'artifacts';

let server: SeaweedFs;
let dispose: (() => Promise<void>) | undefined;

before(async () => {
  ({ server, dispose } = await startTestSeaweedFs());
  await storeFor().createBucket();
});

after(async () => {
  await dispose?.();
});

/** Multipart from 8 MiB in 5 MiB parts, so a 20 MiB object takes four parts. */
function storeFor(overrides: Partial<S3StoreOptions> = {}): S3ArtifactStore {
  return new S3ArtifactStore({
    bucket: BUCKET,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    multipartThreshold: 8 * MiB,
    partSize: 5 * MiB,
    ...overrides,
  });
}

test('small, empty and multipart objects round-trip with their SHA-256 in metadata', async () => {
  const largeProgress: number[] = [];
  const store = storeFor({
    onUploadProgress: (p) => {
      if (p.key === 'round/large.bin') largeProgress.push(p.loaded);
    },
  });
  const small = randomBytes(1000);
  const large = randomBytes(20 * MiB);
  await store.put('round/small.bin', small);
  await store.put('round/empty.bin', new Uint8Array(0));
  await store.put('round/large.bin', large);

  assert.deepEqual(await store.get('round/small.bin'), small);
  assert.deepEqual(await store.get('round/empty.bin'), Buffer.alloc(0));
  assert.ok((await store.get('round/large.bin'))!.equals(large));

  const head = await store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'round/large.bin' }));
  assert.equal(head.Metadata?.[SHA256_METADATA], sha256(large));
  assert.match(head.ETag ?? '', /-4"$/, 'a multipart ETag ends in -<parts>');
  assert.deepEqual(
    largeProgress,
    [1, 2, 3, 4].map((parts) => Math.min(parts * 5 * MiB, large.length)),
  );
});

test('putting the same bytes under the same key again, even concurrently, is harmless', async () => {
  const store = storeFor();
  const data = randomBytes(4096);
  await store.put('same/key.bin', data);
  await store.put('same/key.bin', data);
  await Promise.all([1, 2, 3].map(() => store.put('same/key.bin', data)));
  assert.deepEqual(await store.get('same/key.bin'), data);
  assert.deepEqual(await store.list('same/'), ['same/key.bin']);
});

test("a put given the bytes' SHA-256 records it as is: the right one reads back, a wrong one is refused", async () => {
  const store = storeFor();
  const data = Buffer.from('features, hashed as they were written');
  await store.put('given/right.bin', data, sha256(data));
  assert.deepEqual(await store.get('given/right.bin'), data);
  // As an extraction writes shards: in shared memory, multipart.
  const shard = Buffer.from(new SharedArrayBuffer(20 * MiB));
  randomBytes(20 * MiB).copy(shard);
  await store.put('given/shard.bin', shard, sha256(shard));
  assert.ok((await store.get('given/shard.bin'))!.equals(shard));
  await assert.rejects(store.put('given/wrong.bin', data, sha256(Buffer.from('other bytes'))));
  assert.equal(await store.exists('given/wrong.bin'), false);
});

test('list filters by prefix and follows pagination', async () => {
  const store = storeFor({ listPageSize: 3 });
  const keys = Array.from({ length: 10 }, (_, i) => `page/k${String(i).padStart(2, '0')}`);
  await Promise.all([...keys, 'pages/x', 'other/y'].map((key) => store.put(key, Buffer.from(key))));

  const firstPage = await store.client.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'page/', MaxKeys: 3 }),
  );
  assert.equal(firstPage.Contents?.length, 3);
  assert.equal(firstPage.IsTruncated, true, 'the server honours MaxKeys, so listing 10 keys takes 4 pages');

  assert.deepEqual(await store.list('page/'), keys);
  assert.deepEqual(await store.list('page'), [...keys, 'pages/x']);
  assert.deepEqual(await store.list('nothing/'), []);
});

test('exists and delete', async () => {
  const store = storeFor();
  assert.equal(await store.exists('gone/a.bin'), false);
  await store.put('gone/a.bin', Buffer.from('a'));
  assert.equal(await store.exists('gone/a.bin'), true);
  await store.delete('gone/a.bin');
  assert.equal(await store.exists('gone/a.bin'), false);
  assert.equal(await store.get('gone/a.bin'), undefined);
  await store.delete('gone/a.bin');
  assert.deepEqual(await store.list('gone/'), []);
});

test("doctor's store check passes on SeaweedFS and leaves nothing behind; a wrong secret fails it at the write", async () => {
  const store = storeFor({ prefix: 'doctor' });
  const check = await checkStore(store);
  assert.equal(check.status, 'ok', check.summary);
  assert.match(check.summary, /^s3:\/\/artifacts\/doctor: write, read, list and delete of 64 KiB in \d+ ms$/);
  assert.deepEqual(await store.list(''), []);
  const denied = await checkStore(
    storeFor({ credentials: { accessKeyId: server.accessKeyId, secretAccessKey: 'not-the-secret' } }),
  );
  assert.equal(denied.status, 'fail');
  assert.match(denied.summary, /^s3:\/\/artifacts: write failed: /);
  assert.ok(!denied.summary.includes('not-the-secret'), denied.summary);
});

test('a prune plans and deletes the same on S3 as in a folder', async () => {
  const s3 = storeFor({ prefix: 'prune' });
  const local = new LocalArtifactStore(path.join(await mkdtemp(path.join(os.tmpdir(), 'prune-')), 'store'));
  try {
    await Promise.all([writePruneFixture(s3), writePruneFixture(local)]);
    const plans = await Promise.all(
      [s3, local].map(async (store) =>
        planPrune(await storeInventory(store), { running: 'unchecked', incomplete: true }),
      ),
    );
    assert.deepEqual(plans[0], plans[1]);
    assert.equal(plans[0]!.remove.length, PRUNE_FIXTURE.unused.length + PRUNE_FIXTURE.incomplete.length);
    const deleted = await Promise.all(
      [s3, local].map((store, i) => removeArtifacts(store, plans[i]!.remove)),
    );
    assert.deepEqual(deleted, [12, 12]);
    assert.deepEqual(await s3.list(''), await local.list(''));
  } finally {
    await rm(path.dirname(local.root), { recursive: true, force: true });
  }
});

test('an upload a stopped writer never completed is an abandoned write, listed with its bytes, and discarded', async () => {
  const store = storeFor({ prefix: 'abandoned' });
  await store.put('features/set/shard-0.f32', randomBytes(1000));
  // What a writer killed midway leaves: a multipart upload with a part stored, never completed.
  const { UploadId } = await store.client.send(
    new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'abandoned/features/set/shard-1.f32' }),
  );
  await store.client.send(
    new UploadPartCommand({
      Bucket: BUCKET,
      Key: 'abandoned/features/set/shard-1.f32',
      UploadId,
      PartNumber: 1,
      Body: randomBytes(3000),
    }),
  );
  // Started just now: not stale to a prune, yet listed when asked about everything before a minute from now.
  assert.deepEqual(await staleAbandonedWrites(store), []);
  const writes = await store.abandonedWrites(new Date(Date.now() + 60_000));
  assert.deepEqual(
    writes.map(({ key, id, bytes }) => ({ key, id, bytes })),
    [{ key: 'features/set/shard-1.f32', id: UploadId, bytes: 3000 }],
  );
  assert.deepEqual(await store.list('features/'), ['features/set/shard-0.f32']);
  await store.discardAbandonedWrite(writes[0]!);
  assert.deepEqual(await store.abandonedWrites(new Date(Date.now() + 60_000)), []);
  assert.deepEqual(await store.list('features/'), ['features/set/shard-0.f32']);
});

test('openStore maps s3:// URLs to a prefix in the bucket and other URLs to local folders', async () => {
  const store = openStore(`s3://${BUCKET}/runs/r1?endpoint=${encodeURIComponent(server.endpoint)}`, {
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  assert.ok(store instanceof S3ArtifactStore);
  assert.equal(store.location, `s3://${BUCKET}/runs/r1`);
  await store.put('a/b.json', Buffer.from('{}'));
  const head = await store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'runs/r1/a/b.json' }));
  assert.equal(head.ContentLength, 2);
  assert.deepEqual(await store.list(''), ['a/b.json']);

  const local = openStore('file:///tmp/infodisent-store');
  assert.ok(local instanceof LocalArtifactStore);
  assert.equal(local.root, '/tmp/infodisent-store');
  const relative = openStore('some/folder');
  assert.ok(relative instanceof LocalArtifactStore);
  assert.equal(relative.root, path.resolve('some/folder'));
  assert.throws(() => openStore('gs://bucket/x'), /unsupported store URL/);
});

test('get throws, naming the key, when the bytes do not match the recorded SHA-256', async () => {
  const store = storeFor();
  const original = Buffer.from('the real artifact');
  await store.put('corrupt/a.bin', original);
  await store.client.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: 'corrupt/a.bin',
      Body: Buffer.from('tampered artifact'),
      Metadata: { [SHA256_METADATA]: sha256(original) },
    }),
  );
  await assert.rejects(store.get('corrupt/a.bin'), (error: Error) => {
    assert.ok(error instanceof ArtifactIntegrityError);
    assert.equal(error.key, 'corrupt/a.bin');
    assert.match(error.message, /'corrupt\/a\.bin'.*corrupt/);
    return true;
  });

  await store.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'corrupt/foreign.bin', Body: 'x' }));
  await assert.rejects(store.get('corrupt/foreign.bin'), /'corrupt\/foreign\.bin'.*no sha256 metadata/);
});

test('rejected credentials give a clear error that never contains the secret', async () => {
  const wrongSecret = 'wrong-secret-0123456789abcdefghijklmn';
  const badSecret = storeFor({
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: wrongSecret },
    maxAttempts: 1,
  });
  const badKey = storeFor({
    credentials: { accessKeyId: 'NOSUCHKEY0000000000', secretAccessKey: wrongSecret },
    maxAttempts: 1,
  });
  const operations = [
    (s: S3ArtifactStore) => s.get('round/small.bin'),
    (s: S3ArtifactStore) => s.put('creds/x.bin', Buffer.from('x')),
    (s: S3ArtifactStore) => s.exists('round/small.bin'),
    (s: S3ArtifactStore) => s.list('round/'),
  ];
  for (const store of [badSecret, badKey]) {
    for (const operation of operations) {
      await assert.rejects(operation(store), (error: Error) => {
        assert.ok(error instanceof S3CredentialsError, `${error.name}: ${error.message}`);
        assert.match(error.message, /credentials .*were rejected/);
        assert.ok(error.message.includes(server.endpoint), error.message);
        assert.ok(error.message.includes(`'${BUCKET}'`), error.message);
        assert.ok(!error.message.includes(wrongSecret) && !error.message.includes(server.secretAccessKey));
        return true;
      });
    }
  }
});

test('a missing bucket is reported as such, and can be created', async () => {
  const store = storeFor({ bucket: 'no-such-bucket', maxAttempts: 1 });
  for (const operation of [
    () => store.get('a.bin'),
    () => store.exists('a.bin'),
    () => store.put('a.bin', Buffer.from('a')),
    () => store.list(''),
  ]) {
    await assert.rejects(operation(), (error: Error) => {
      assert.ok(error instanceof S3BucketNotFoundError, `${error.name}: ${error.message}`);
      assert.match(
        error.message,
        /bucket 'no-such-bucket' does not exist at http:\/\/127\.0\.0\.1:\d+.*createBucket/,
      );
      return true;
    });
  }

  const creating = storeFor({ bucket: 'created-on-demand', createBucket: true });
  assert.equal(await creating.exists('a.bin'), false);
  await creating.put('a.bin', Buffer.from('a'));
  assert.deepEqual(await creating.get('a.bin'), Buffer.from('a'));
  await creating.createBucket();
  assert.deepEqual(await creating.list(''), ['a.bin']);
});

test('a server crash mid-upload leaves no partial artifact, and a retry succeeds', async () => {
  let crashed: Promise<void> | undefined;
  const store = storeFor({
    maxAttempts: 2,
    // Crash as soon as the first part of either upload has been stored, while other parts are in flight.
    onUploadProgress: () => {
      crashed ??= server.kill();
    },
  });
  const previous = randomBytes(20 * MiB);
  await storeFor().put('crash/existing.bin', previous);
  const fresh = randomBytes(20 * MiB);
  const replacement = randomBytes(20 * MiB);

  const results = await Promise.allSettled([
    store.put('crash/fresh.bin', fresh),
    store.put('crash/existing.bin', replacement),
  ]);
  assert.ok(crashed, 'the server was killed during the uploads');
  await crashed;
  for (const result of results) {
    assert.equal(result.status, 'rejected');
    assert.match(
      String((result as PromiseRejectedResult).reason),
      /S3 writing 'crash\/.*' .*failed after 2 attempts/,
    );
  }

  await server.start();
  const restarted = storeFor();
  const freshNow = await restarted.get('crash/fresh.bin');
  assert.ok(freshNow === undefined || freshNow.equals(fresh), 'a new key is absent or whole');
  const existingNow = await restarted.get('crash/existing.bin');
  assert.ok(
    existingNow?.equals(previous) || existingNow?.equals(replacement),
    'an old key keeps whole content',
  );
  assert.deepEqual(
    await restarted.list('crash/'),
    freshNow === undefined ? ['crash/existing.bin'] : ['crash/existing.bin', 'crash/fresh.bin'],
  );

  await restarted.put('crash/fresh.bin', fresh);
  await restarted.put('crash/existing.bin', replacement);
  assert.ok((await restarted.get('crash/fresh.bin'))!.equals(fresh));
  assert.ok((await restarted.get('crash/existing.bin'))!.equals(replacement));
});
