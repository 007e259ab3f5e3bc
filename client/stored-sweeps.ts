import { type SweepResults, storedSweeps, sweepRuns } from '../core/pipeline/results';
import type { ArtifactStore } from '../core/store/artifact-store';
import { plural } from '../core/util/plural';
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

/**
 * A stored run of a sweep: `NAME` is its latest run, `NAME@N` its N-th stored run (oldest first, as `store
 * history` numbers them) and `NAME@PREFIX` the run whose finishing time (ISO, UTC) starts with PREFIX, e.g.
 * `paper@2026-11-20`.
 */
export async function findStoredRun(store: ArtifactStore, reference: string): Promise<SweepResults> {
  const at = reference.indexOf('@');
  if (at < 0) return findStoredSweep(store, reference);
  const [name, run] = [reference.slice(0, at), reference.slice(at + 1)];
  const runs = await sweepRuns(store, (await findStoredSweep(store, name)).sweep);
  const listed = () => runs.map((r, i) => `${i + 1}: ${r.finishedAt}`).join(', ');
  if (/^\d+$/.test(run)) {
    const found = runs[Number(run) - 1];
    if (!found)
      throw new CliError(
        `'${reference}': sweep '${name}' has ${plural(runs.length, 'stored run')} (${listed()})`,
      );
    return found;
  }
  const matching = runs.filter((r) => r.finishedAt.startsWith(run));
  if (matching.length !== 1)
    throw new CliError(
      `'${reference}': ${matching.length === 0 ? 'no' : matching.length} stored runs of '${name}' finished at ` +
        `${run}…; name one by its number or a longer time (${listed()})`,
    );
  return matching[0]!;
}
