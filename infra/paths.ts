import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The repository root, from infra/ in the sources or dist/infra/ in the build. */
export function repoRoot(): string {
  const parent = path.dirname(__dirname);
  return path.basename(parent) === 'dist' ? path.dirname(parent) : parent;
}

/** Local state (store, Temporal database, tools): INFODISENT_HOME or <repo>/.infodisent. */
export function stateDir(): string {
  return path.resolve(process.env['INFODISENT_HOME'] ?? path.join(repoRoot(), '.infodisent'));
}

/** The version in the repository's package.json (what `infodisent --version` prints). */
export function projectVersion(): string {
  return (JSON.parse(readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string })
    .version;
}
