import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AbandonedWrite, type ArtifactStore, assertValidKey } from './artifact-store';

/** The embedded default: a folder on the local disk. Writes go to a temporary file, then an atomic rename. */
export class LocalArtifactStore implements ArtifactStore {
  readonly location: string;

  constructor(readonly root: string) {
    this.root = path.resolve(root);
    this.location = pathToFileURL(this.root).href;
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    const temporary = `${target}${TEMPORARY}${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(temporary, data).catch(async (error: NodeJS.ErrnoException) => {
        // A delete of the folder's last file may have removed the folder just now.
        if (error.code !== 'ENOENT') throw error;
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(temporary, data);
      });
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch {
      return false;
    }
  }

  /** Calls `visit` with the store-relative path of every file under `folder` ('' for the whole store). */
  private async walk(folder: string, visit: (relative: string) => Promise<void> | void): Promise<void> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(folder ? path.join(this.root, ...folder.split('/')) : this.root, {
        withFileTypes: true,
      });
    } catch {
      return;
    }
    for (const entry of entries) {
      const relative = folder ? `${folder}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await this.walk(relative, visit);
      else if (entry.isFile()) await visit(relative);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    // Only the prefix's folder is walked: listing one feature set must not visit every other set's shards.
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    await this.walk(folder, (key) => {
      if (temporaryAt(key) < 0 && key.startsWith(prefix)) keys.push(key);
    });
    return keys.sort();
  }

  /** Deletes the file and the folders it leaves empty, so a deleted artifact leaves no trace in the tree. */
  async delete(key: string): Promise<void> {
    await this.removeFile(this.pathOf(key));
  }

  /** Temporary files of puts that never renamed them, last changed before `before`. */
  async abandonedWrites(before: Date): Promise<AbandonedWrite[]> {
    const found: AbandonedWrite[] = [];
    await this.walk('', async (relative) => {
      const at = temporaryAt(relative);
      if (at < 0) return;
      // A put under way may rename its file between the listing and here: then it is no abandoned write.
      const stats = await stat(this.pathOf(relative)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (stats && stats.mtime < before)
        found.push({
          key: relative.slice(0, at),
          id: relative,
          bytes: stats.size,
          lastActivity: stats.mtime,
        });
    });
    return found.sort((a, b) => a.id.localeCompare(b.id));
  }

  async discardAbandonedWrite(write: AbandonedWrite): Promise<void> {
    if (temporaryAt(write.id) < 0)
      throw new Error(`'${write.id}' is not a temporary file of ${this.location}`);
    await this.removeFile(this.pathOf(write.id));
  }

  private async removeFile(file: string): Promise<void> {
    await rm(file, { force: true });
    for (let dir = path.dirname(file); dir.startsWith(`${this.root}${path.sep}`); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): the folders above it stay too
      }
    }
  }
}

/** What a put's temporary file adds to its key's file name, before a random suffix. */
const TEMPORARY = '.tmp-';

/** Where a path's file name (not its folders) marks it a temporary file; -1 where it does not. */
function temporaryAt(relative: string): number {
  const at = relative.lastIndexOf(TEMPORARY);
  return at > relative.lastIndexOf('/') ? at : -1;
}
