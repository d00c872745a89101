// Scheduler factory: every scheduler is configured from the same raw scheduler_config.json object
// (whatever class it names; SD 1.5 ships PNDMScheduler's), each class applying its own defaults.
import { DDIMScheduler } from './ddim';
import { DPMSolverMultistepScheduler } from './dpmSolverMultistep';
import { EulerDiscreteScheduler } from './eulerDiscrete';
import { SchedulerConfigError, type RawSchedulerConfig } from './config';
import type { Scheduler, SchedulerName } from './contract';

export type { Scheduler, SchedulerName } from './contract';
export { SchedulerConfigError, SchedulerUsageError } from './config';
export { DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler };

export const SCHEDULER_NAMES: readonly SchedulerName[] = ['ddim', 'dpmpp-2m', 'euler'];

export function isSchedulerName(s: string): s is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(s);
}

export function createScheduler(name: SchedulerName, config: RawSchedulerConfig): Scheduler {
  switch (name) {
    case 'ddim':
      return new DDIMScheduler(config);
    case 'dpmpp-2m':
      return new DPMSolverMultistepScheduler(config);
    case 'euler':
      return new EulerDiscreteScheduler(config);
    default:
      throw new SchedulerConfigError(`unknown scheduler ${JSON.stringify(name)} (expected ${SCHEDULER_NAMES.join(', ')})`);
  }
}
