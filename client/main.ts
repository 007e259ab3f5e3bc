#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, sweepJsonSchema } from '../core/config/experiment';
import { sizeLibuvPool } from '../infra/libuv-pool';
import { projectVersion } from '../infra/paths';
import { registerCompareCommand } from './commands/compare';
import { registerConfigNewCommand } from './commands/config-new';
import { registerDoctorCommand } from './commands/doctor';
import { registerExplainCommand } from './commands/explain';
import { registerExportCommand } from './commands/export';
import { registerPlanCommand } from './commands/plan';
import { runCommand } from './commands/run';
import { registerScheduleCommands } from './commands/schedule';
import { registerStoreCommands } from './commands/store';
import { registerSweepCommands } from './commands/sweep';
import { validateCommand } from './commands/validate';
import { registerWorkerCommand } from './commands/worker';
import { addNotifyOption } from './connection';
import { CliError, printLine, redact } from './output';
import { addOnlyOption } from './sweep-file';

sizeLibuvPool();
// A reader that stops early (`| head`) closes the pipe: that ends the output, it is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command()
  .name('infodisent')
  .description(
    'InfoDisent experiments on Temporal: sweeps of dataset x backbone configurations, analyses and exports',
  )
  .version(projectVersion(), '-V, --version')
  .showHelpAfterError();

addNotifyOption(
  addOnlyOption(
    program
      .command('run')
      .description(
        'run a sweep on the embedded default: a local Temporal dev server, an in-process worker, a local store',
      )
      .argument('<sweep-file>', 'sweep configuration (JSON), e.g. experiments/smoke.json')
      .option(
        '--home <dir>',
        'local state folder (default: .infodisent in the repository, or $INFODISENT_HOME)',
      )
      .option('--parallelism <n>', 'configurations run at once', '2')
      .option(
        '--ui',
        "serve Temporal's web UI (port 8233, else a free one) while the run lasts: each workflow's history, retries and failures",
      ),
  ),
).action(runCommand);

const config = program.command('config').description('work with sweep configuration files');
config
  .command('validate')
  .description('validate sweep files and list their configurations')
  .argument('<files...>', 'sweep configuration files')
  .option('--json', 'print {"configurations": [...]} for scripts')
  .action(validateCommand);
config
  .command('schema')
  .description(
    'print the JSON Schema of sweep files (experiments/schema/sweep.schema.json), for editors that complete and check a ' +
      'file whose "$schema" names it',
  )
  .action(() => printLine(JSON.stringify(sweepJsonSchema(), null, 2)));
registerConfigNewCommand(config);

registerPlanCommand(program);
registerExplainCommand(program);
registerSweepCommands(program);
registerScheduleCommands(program);
registerWorkerCommand(program);
registerExportCommand(program);
registerCompareCommand(program);
registerStoreCommands(program);
registerDoctorCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${redact(error.message)}\n`);
    process.exit(2);
  }
  if (error instanceof CliError) {
    process.stderr.write(`error: ${redact(error.message)}\n`);
    process.exit(error.exitCode);
  }
  // A file system's refusal (an --out that is a file, a folder not writable, a full disk) names its path: the
  // stack would add only this program's insides.
  const text =
    error instanceof Error
      ? isFileSystemError(error)
        ? error.message
        : (error.stack ?? error.message)
      : String(error);
  process.stderr.write(`error: ${redact(text)}\n`);
  process.exit(1);
});

function isFileSystemError(error: Error): boolean {
  const { code, path } = error as NodeJS.ErrnoException;
  return typeof code === 'string' && typeof path === 'string';
}
