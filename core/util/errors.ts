/**
 * Bad input from a user (a config, a dataset file, a feature shard): retrying cannot help,
 * so the orchestration fails it at once instead of retrying.
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
