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

/** An error as it crosses a thread boundary: structured clone keeps neither its class nor its stack. */
export interface ErrorMessage {
  name: string;
  message: string;
  stack?: string;
}

export function toErrorMessage(error: unknown): ErrorMessage {
  const failure = error instanceof Error ? error : new Error(String(error));
  return {
    name: failure instanceof InputError ? 'InputError' : failure.name,
    message: failure.message,
    ...(failure.stack ? { stack: failure.stack } : {}),
  };
}

/** The error again on this side, an InputError still one (retrying cannot help it). */
export function fromErrorMessage(message: ErrorMessage): Error {
  const error = message.name === 'InputError' ? new InputError(message.message) : new Error(message.message);
  if (message.stack) error.stack = message.stack;
  return error;
}
