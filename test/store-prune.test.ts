import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { storeInventory } from '../core/pipeline/inventory';
import { planPrune, removeArtifacts, staleAbandonedWrites } from '../core/pipeline/prune';
import type { SweepResults } from '../core/pipeline/results';
import { type ArtifactStore, getJson, putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { PRUNE_FIXTURE, writePruneFixture } from './support/prune-fixture';

let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-prune-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function fixtureStore(name: string): Promise<LocalArtifactStore> {
  const store = new LocalArtifactStore(path.join(dir, name));
  await writePruneFixture(store);
  return store;
}

const NOTHING_RUNNING = { workflows: [], keys: new Set<string>() };
const keysOf = (artifacts: readonly { key: string }[]) => artifacts.map((a) => a.key).sort();

test('a prune plans to delete what no stored sweep reads, and keeps incomplete work unless asked', async () => {
  const store = await fixtureStore('plan');
  const inventory = await storeInventory(store);
  const plan = planPrune(inventory, { running: NOTHING_RUNNING, incomplete: false });
  assert.deepEqual(keysOf(plan.remove), [...PRUNE_FIXTURE.unused].sort());
  assert.deepEqual(keysOf(plan.keep), [...PRUNE_FIXTURE.used, ...PRUNE_FIXTURE.incomplete].sort());
  for (const kept of plan.keep) {
    assert.match(
      kept.reason,
      PRUNE_FIXTURE.used.includes(kept.key) ? /^used by kept$/ : /^incomplete: .*--incomplete/,
      kept.key,
    );
  }
  const old = plan.remove.find((a) => a.key === 'features/bb/old')!;
  assert.deepEqual(old, {
    key: 'features/bb/old',
    kind: 'features',
    complete: true,
    bytes: PRUNE_FIXTURE.bytes['features/bb/old'],
    detail: 'parts train, 6 images, 2x2x8 float32',
  });

  const withIncomplete = planPrune(inventory, { running: 'unchecked', incomplete: true });
  assert.deepEqual(
    keysOf(withIncomplete.remove),
    [...PRUNE_FIXTURE.unused, ...PRUNE_FIXTURE.incomplete].sort(),
  );

  // A running sweep keeps what its history shows it resolved, and every incomplete artifact (it may be its own).
  const running = { workflows: ['sweep-x', 'sweep-x/a'], keys: new Set(['features/bb/old']) };
  const whileRunning = planPrune(inventory, { running, incomplete: true });
  assert.deepEqual(keysOf(whileRunning.remove), ['heads/infodisent/old', 'summaries/old-b.json']);
  const reasons = Object.fromEntries(whileRunning.keep.map((a) => [a.key, a.reason]));
  assert.equal(reasons['features/bb/old'], 'used by a running sweep');
  for (const key of PRUNE_FIXTURE.incomplete)
    assert.equal(reasons[key], 'incomplete, and 2 sweep workflows are running: it may be theirs');
});

test('a configuration that failed in the latest run (or that --only left out) keeps what it last completed with', async () => {
  const store = await fixtureStore('failed-rerun');
  const first = (await getJson<SweepResults>(store, 'results/kept/results.json'))!;
  const [outcome] = first.completed;
  // The first run kept under runs/, as writeSweepResults does; then a rerun in which 'a' failed.
  await putJson(store, 'results/kept/runs/2026-11-27T00-00-00-000Z.json', first);
  const failedRun = {
    ...first,
    finishedAt: '2026-11-28T00:00:00.000Z',
    completed: [],
    failed: [{ configuration: 'a', error: 'x' }],
  };
  await putJson(store, 'results/kept/results.json', failedRun);
  const unused = () =>
    storeInventory(store).then((inventory) =>
      keysOf(planPrune(inventory, { running: NOTHING_RUNNING, incomplete: false }).remove),
    );
  assert.deepEqual(await unused(), [...PRUNE_FIXTURE.unused].sort());

  // Once 'a' completes again, with other artifacts, what it used before is free.
  const moved = { ...outcome!, features: { ...outcome!.features, train: 'features/bb/old' } };
  await putJson(store, 'results/kept/runs/2026-11-28T00-00-00-000Z.json', failedRun);
  await putJson(store, 'results/kept/results.json', {
    ...first,
    finishedAt: '2026-11-29T00:00:00.000Z',
    completed: [moved],
  });
  assert.deepEqual(await unused(), [
    'features/bb/used-train',
    'heads/infodisent/old',
    'summaries/old-b.json',
  ]);
});

/** The store, recording the order of its deletes. */
function recordingDeletes(store: ArtifactStore): { store: ArtifactStore; deleted: string[] } {
  const deleted: string[] = [];
  return {
    deleted,
    store: {
      location: store.location,
      get: (key) => store.get(key),
      put: (key, data) => store.put(key, data),
      exists: (key) => store.exists(key),
      list: (prefix) => store.list(prefix),
      delete: async (key) => {
        deleted.push(key);
        await store.delete(key);
      },
      abandonedWrites: (before) => store.abandonedWrites(before),
      discardAbandonedWrite: (write) => store.discardAbandonedWrite(write),
    },
  };
}

test('removing deletes each artifact whole, its completion marker first, and leaves no empty folders', async () => {
  const store = await fixtureStore('remove');
  const before = await store.list('');
  const plan = planPrune(await storeInventory(store), { running: NOTHING_RUNNING, incomplete: true });
  const recording = recordingDeletes(store);
  const progress: number[] = [];
  const files = await removeArtifacts(recording.store, plan.remove, (done) => progress.push(done));
  const removed = [...PRUNE_FIXTURE.unused, ...PRUNE_FIXTURE.incomplete];
  assert.deepEqual(
    progress,
    removed.map((_, i) => i + 1),
  );
  const expected = before.filter((key) => removed.some((r) => key === r || key.startsWith(`${r}/`)));
  assert.equal(files, expected.length);
  assert.deepEqual([...recording.deleted].sort(), expected);
  assert.deepEqual(
    await store.list(''),
    before.filter((key) => !expected.includes(key)),
  );
  // A reader that comes in between finds an incomplete set or head, never a manifest without its shards.
  for (const [key, marker] of [
    ['features/bb/old', 'manifest.json'],
    ['heads/infodisent/old', 'head.bin'],
  ] as const) {
    const own = recording.deleted.filter((k) => k.startsWith(`${key}/`));
    assert.equal(own[0], `${key}/${marker}`, `${key} lost its ${marker} first`);
  }
  assert.deepEqual((await readdir(path.join(store.root, 'features', 'bb'))).sort(), [
    'used-test',
    'used-train',
  ]);
  assert.deepEqual(await readdir(path.join(store.root, 'heads', 'infodisent')), ['used']);
  // What the stored sweep reads is all still there.
  const inventory = await storeInventory(store);
  assert.ok(
    [...inventory.features, ...inventory.heads, ...inventory.summaries].every((a) => a.usedBy.length > 0),
  );
});

test("a local store's unfinished writes: the temporary files a stopped put left, once an hour old", async () => {
  const store = new LocalArtifactStore(path.join(dir, 'abandoned'));
  await store.put('features/bb/set/shard-0.f32', new Uint8Array(8));
  // Only a file's own name marks it temporary: a folder named so holds ordinary artifacts.
  await store.put('odd.tmp-folder/kept.json', new Uint8Array(4));
  assert.deepEqual(await store.list('odd'), ['odd.tmp-folder/kept.json']);
  assert.deepEqual(await store.abandonedWrites(new Date(Date.now() + 60_000)), []);
  await store.delete('odd.tmp-folder/kept.json');
  // A put stopped between writing and renaming leaves its temporary file: one two hours ago, one just now.
  const folder = path.join(store.root, 'features', 'bb', 'set');
  const stale = path.join(folder, 'shard-1.f32.tmp-0123456789ab');
  const fresh = path.join(folder, 'shard-2.f32.tmp-ba9876543210');
  await writeFile(stale, new Uint8Array(100));
  await writeFile(fresh, new Uint8Array(50));
  const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  await utimes(stale, twoHoursAgo, twoHoursAgo);
  const [write, ...others] = await staleAbandonedWrites(store);
  assert.deepEqual(others, []);
  assert.deepEqual(
    { ...write!, lastActivity: write!.lastActivity.getTime() },
    {
      key: 'features/bb/set/shard-1.f32',
      id: 'features/bb/set/shard-1.f32.tmp-0123456789ab',
      bytes: 100,
      lastActivity: twoHoursAgo.getTime(),
    },
  );
  assert.equal((await store.abandonedWrites(new Date(Date.now() + 60_000))).length, 2);
  assert.deepEqual(await store.list('features/'), ['features/bb/set/shard-0.f32']);
  await store.discardAbandonedWrite(write!);
  assert.deepEqual((await readdir(folder)).sort(), ['shard-0.f32', 'shard-2.f32.tmp-ba9876543210']);
  await assert.rejects(
    store.discardAbandonedWrite({ ...write!, id: 'features/bb/set/shard-0.f32' }),
    /not a temporary file/,
  );
  // The last one gone, no empty folder stays behind.
  await store.delete('features/bb/set/shard-0.f32');
  await store.discardAbandonedWrite((await store.abandonedWrites(new Date(Date.now() + 60_000)))[0]!);
  assert.deepEqual(await readdir(store.root), []);
});
