import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Configuration } from '../core/config/experiment';
import type { Split } from '../core/data/dataset';
import type { HeadKind } from '../core/method/head';
import { sincePreviousRun } from '../core/pipeline/compare';
import { postNotification, sweepNotification } from '../core/pipeline/notify';
import { type SweepResults, sweepRuns, writeSweepResults } from '../core/pipeline/results';
import {
  type StageArgs,
  type StageLocation,
  type StageName,
  type StageResult,
  StageThreadPool,
} from '../core/pipeline/stage-runner';
import type { DatasetRef, ExplainStageResult, FeaturesRef, TrainedHeadRef } from '../core/pipeline/stages';
import { openStore } from '../core/store/open-store';
import { roughDuration } from '../core/util/duration';
import { InputError } from '../core/util/errors';

/** Heartbeat payload: what the CLI's progress bars show for a running activity. */
export interface StageProgress {
  stage: string;
  done: number;
  total: number;
  detail?: string;
}

/** Bad input fails at once; anything else is left to the workflow's retry policy. */
function asTemporalFailure(error: unknown): unknown {
  return error instanceof InputError ? ApplicationFailure.nonRetryable(error.message, 'InputError') : error;
}

/** Where a stage runs and who hears of it. */
interface StageRunner {
  threads: StageThreadPool;
  location: StageLocation;
  /** A line when a stage starts and when it ends (`infodisent worker`'s log); none: silent. */
  log?: ((line: string) => void) | undefined;
}

/** "(300/300)": how far the stage's last progress report got. */
const reached = (progress: StageProgress | undefined) =>
  progress ? ` (${progress.done}/${progress.total})` : '';

/**
 * Runs a pipeline stage in a thread of the pool, forwarding its progress as heartbeats. `label` is the
 * stage as the configuration's progress names it ('extract train', 'train infodisent').
 */
async function runStage<N extends StageName>(
  { threads, location, log }: StageRunner,
  label: string,
  name: N,
  ...args: StageArgs<N>
): Promise<StageResult<N>> {
  const context = Context.current();
  const { workflowExecution, activityType, attempt } = context.info;
  const where = workflowExecution?.workflowId ?? activityType;
  const say = (words: string) => log?.(`${new Date().toISOString()} ${where}: ${label} ${words}`);
  const started = Date.now();
  const took = () => roughDuration((Date.now() - started) / 1000);
  say(attempt > 1 ? `started (attempt ${attempt})` : 'started');
  let last: StageProgress | undefined;
  // The stage's thread leaves this event loop free: heartbeat on a timer too, so a long step between
  // progress reports never looks like a lost worker, whatever the sweep's heartbeat timeout.
  const every = Math.min(5000, (context.info.heartbeatTimeoutMs ?? 120_000) / 3);
  const timer = setInterval(() => (last ? context.heartbeat(last) : context.heartbeat()), every);
  try {
    const result = await threads.run(
      name,
      args,
      location,
      ({ stage, done, total, detail }) => {
        last = { stage, done, total, ...(detail ? { detail } : {}) };
        context.heartbeat(last);
      },
      context.cancellationSignal,
    );
    say(`done in ${took()}${reached(last)}`);
    return result;
  } catch (error) {
    // Why it failed follows from the SDK's logger, which logs every activity failure.
    say(`${context.cancellationSignal.aborted ? 'stopped' : 'failed'} after ${took()}${reached(last)}`);
    throw asTemporalFailure(error);
  } finally {
    clearInterval(timer);
  }
}

export interface ActivityOptions {
  /** A webhook told when a sweep finishes (INFODISENT_NOTIFY_URL); none: nothing is posted. */
  notifyUrl?: string | undefined;
  threads?: StageThreadPool;
  /** Told a line when each stage starts and ends. */
  log?: ((line: string) => void) | undefined;
}

/** Thin adapters from Temporal to the pipeline's stages; every stage is idempotent and content-addressed. */
export function createActivities(location: StageLocation, options: ActivityOptions = {}) {
  const runner: StageRunner = {
    threads: options.threads ?? new StageThreadPool(),
    location,
    log: options.log,
  };
  const stage = <N extends StageName>(label: string, name: N, ...args: StageArgs<N>) =>
    runStage(runner, label, name, ...args);
  return {
    prepareDataset: (configuration: Configuration): Promise<DatasetRef> =>
      stage('dataset', 'prepareDataset', configuration),
    extractFeatures: (
      configuration: Configuration,
      dataset: DatasetRef,
      split: Split,
    ): Promise<FeaturesRef> => stage(`extract ${split}`, 'extractSplit', configuration, dataset, split),
    trainHead: (
      configuration: Configuration,
      kind: HeadKind,
      features: FeaturesRef,
    ): Promise<TrainedHeadRef> => stage(`train ${kind}`, 'trainHeadStage', configuration, kind, features),
    evaluateHead: (configuration: Configuration, trained: TrainedHeadRef, test: FeaturesRef) =>
      stage(`evaluate ${trained.kind}`, 'evaluateStage', configuration, trained, test),
    explain: (
      configuration: Configuration,
      dataset: DatasetRef,
      train: FeaturesRef,
      test: FeaturesRef,
      trained: TrainedHeadRef[],
    ): Promise<ExplainStageResult> =>
      stage('explain', 'explainStage', configuration, dataset, train, test, trained),
    writeReport: (report: StageArgs<'reportStage'>[0]) => stage('report', 'reportStage', report),
    writeResults: async (results: SweepResults): Promise<string[]> => {
      try {
        return await writeSweepResults(openStore(location.storeUrl), results);
      } catch (error) {
        throw asTemporalFailure(error);
      }
    },
    /** Posts the finished sweep to this worker's webhook, where it has one. */
    notifyFinished: async (results: SweepResults, reportKey: string): Promise<'sent' | 'no webhook'> => {
      if (!options.notifyUrl) return 'no webhook';
      const store = openStore(location.storeUrl);
      const previous = await sincePreviousRun(store, await sweepRuns(store, results.sweep), results);
      const report = `${store.location}/${reportKey}`;
      await postNotification(options.notifyUrl, sweepNotification(results, report, previous ?? undefined));
      return 'sent';
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
