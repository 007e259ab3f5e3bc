import { type SweepResults, storedSweeps } from '../core/pipeline/results';
import type { ArtifactStore } from '../core/store/artifact-store';
import { CliError } from './output';

/**
 * A finished sweep in the store: the one named (by the name in its file), else the latest; a clear error
 * naming those there are when it is not there.
 */
export async function findStoredSweep(store: ArtifactStore, name: string | undefined): Promise<SweepResults> {
  const sweeps = await storedSweeps(store);
  if (sweeps.length === 0) {
    throw new CliError(
      `no finished sweep in ${store.location} (nothing under results/): a sweep writes its results there ` +
        'when it ends; check --store (or INFODISENT_STORE)',
    );
  }
  const results = name === undefined ? sweeps[0] : sweeps.find((s) => s.sweep === name);
  if (!results) {
    throw new CliError(
      `no finished sweep '${name}' in ${store.location}; it holds ${sweeps
        .map((s) => `'${s.sweep}'`)
        .join(', ')} (a sweep is named by the name in its file, not by the workflow id)`,
    );
  }
  return results;
}
