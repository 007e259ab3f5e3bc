import type { AbandonedWrite, ArtifactStore } from '../store/artifact-store';
import type { StoreInventory } from './inventory';

export type PrunableKind = 'features' | 'head' | 'summary';

/** An artifact a prune may delete: a feature set, a head (with its checkpoint and evaluations), a summary. */
export interface PrunableArtifact {
  key: string;
  kind: PrunableKind;
  /** False for a feature set without its manifest or a head with only a checkpoint. */
  complete: boolean;
  /** A feature set's size, from its manifest. */
  bytes?: number;
  /** "parts train, 48 images, 7x7x1280 float32", "trained infodisent head", … */
  detail: string;
}

export interface KeptArtifact extends PrunableArtifact {
  reason: string;
}

export interface PrunePlan {
  remove: PrunableArtifact[];
  keep: KeptArtifact[];
}

/** What the sweeps running now have resolved, as far as Temporal's histories tell; or not looked at. */
export type RunningWork = { workflows: string[]; keys: ReadonlySet<string> } | 'unchecked';

export interface PruneOptions {
  running: RunningWork;
  /** Also remove cut-off extractions and training checkpoints (never while workflows run). */
  incomplete: boolean;
}

function artifacts(inventory: StoreInventory): (PrunableArtifact & { usedBy: string[] })[] {
  return [
    ...inventory.features.map(({ key, complete, shards, usedBy }) => ({
      key,
      kind: 'features' as const,
      complete: complete !== undefined,
      ...(complete ? { bytes: complete.bytes } : {}),
      detail: complete
        ? `${complete.dataset} ${complete.split}, ${complete.images} images, ` +
          `${complete.shape.height}x${complete.shape.width}x${complete.shape.channels} ${complete.dtype}`
        : `${shards} shards, no manifest`,
      usedBy,
    })),
    ...inventory.heads.map(({ key, kind, finished, usedBy }) => ({
      key,
      kind: 'head' as const,
      complete: finished,
      detail: finished ? `trained ${kind} head` : `${kind} training checkpoint`,
      usedBy,
    })),
    ...inventory.summaries.map(({ key, part, usedBy }) => ({
      key,
      kind: 'summary' as const,
      complete: !part,
      detail: part ? "one head's explanation, from a cut-off explain stage" : 'explanation summary',
      usedBy,
    })),
  ];
}

/**
 * Which artifacts no stored sweep's results read and no running sweep has resolved. An incomplete one may
 * be an extraction or a training under way (its key is in no history until it finishes) or a cut-off run
 * that a resume continues: it goes only when asked, and never while any sweep runs.
 */
export function planPrune(inventory: StoreInventory, { running, incomplete }: PruneOptions): PrunePlan {
  const plan: PrunePlan = { remove: [], keep: [] };
  const workflows = running === 'unchecked' ? 0 : running.workflows.length;
  for (const { usedBy, ...artifact } of artifacts(inventory)) {
    const keep = (reason: string) => plan.keep.push({ ...artifact, reason });
    if (usedBy.length > 0) keep(`used by ${usedBy.join(', ')}`);
    else if (running !== 'unchecked' && running.keys.has(artifact.key)) keep('used by a running sweep');
    else if (!artifact.complete && workflows > 0)
      keep(`incomplete, and ${workflows} sweep workflows are running: it may be theirs`);
    else if (!artifact.complete && !incomplete)
      keep('incomplete: a cut-off run continues it when resumed (--incomplete removes it)');
    else plan.remove.push(artifact);
  }
  return plan;
}

/** The file whose presence makes an artifact complete: deleted first, so a reader never finds half of one. */
const COMPLETION_MARKER: Record<PrunableKind, string | undefined> = {
  features: 'manifest.json',
  head: 'head.bin',
  summary: undefined,
};

const DELETES_AT_ONCE = 16;

/** Deletes the planned artifacts, each marker first; returns the number of files deleted. */
export async function removeArtifacts(
  store: ArtifactStore,
  remove: readonly PrunableArtifact[],
  onProgress?: (done: number, total: number) => void,
): Promise<number> {
  let files = 0;
  for (const [index, artifact] of remove.entries()) {
    const marker = COMPLETION_MARKER[artifact.kind];
    const keys = marker === undefined ? [artifact.key] : await store.list(`${artifact.key}/`);
    const first = keys.filter((key) => key === `${artifact.key}/${marker}`);
    const rest = keys.filter((key) => !first.includes(key));
    for (const key of first) await store.delete(key);
    for (let start = 0; start < rest.length; start += DELETES_AT_ONCE)
      await Promise.all(rest.slice(start, start + DELETES_AT_ONCE).map((key) => store.delete(key)));
    files += keys.length;
    onProgress?.(index + 1, remove.length);
  }
  return files;
}

/**
 * Unfinished writes this old are a stopped writer's leftovers, not a write under way (a shard takes seconds):
 * a prune deletes them, whatever runs.
 */
export const ABANDONED_WRITE_AGE_MS = 60 * 60 * 1000;

/** The store's unfinished writes last active at least ABANDONED_WRITE_AGE_MS before `now`. */
export function staleAbandonedWrites(store: ArtifactStore, now = Date.now()): Promise<AbandonedWrite[]> {
  return store.abandonedWrites(new Date(now - ABANDONED_WRITE_AGE_MS));
}
