// Parent side of one variant process: start it, ask it to run one step at a time, collect its peak RSS.
// Strictly request → reply: the bench never has two requests in flight to one child.

import { ChildProcess, fork } from 'child_process';
import * as path from 'path';
import { ParentMessage, WorkerMessage, WorkerSpec } from './protocol';

export type ReadyMessage = Extract<WorkerMessage, { kind: 'ready' }>;
export type RanMessage = Extract<WorkerMessage, { kind: 'ran' }>;
export type FinalMessage = Extract<WorkerMessage, { kind: 'final' }>;

const WORKER = path.join(__dirname, 'variantWorker.ts');

export class VariantProcess {
  private waiting: { resolve: (m: WorkerMessage) => void; reject: (e: Error) => void } | null = null;
  private exited: Error | null = null;
  private readonly exit: Promise<void>;

  private constructor(
    readonly spec: WorkerSpec,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (m: WorkerMessage) => {
      const w = this.waiting;
      this.waiting = null;
      if (!w) return;
      if (m.kind === 'error') w.reject(new Error(`bench/dense: ${spec.variant} process (${spec.source}) failed: ${m.message}`));
      else w.resolve(m);
    });
    this.exit = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        // SIGKILL without a message is usually the kernel's OOM killer.
        this.exited = new Error(`bench/dense: ${spec.variant} process (${spec.source}) exited (code ${code}, signal ${signal})`);
        this.waiting?.reject(this.exited);
        this.waiting = null;
        resolve();
      });
    });
  }

  /** Fork the worker (same node, same tsx loader, --expose-gc) and wait until its session is ready. */
  static async start(spec: WorkerSpec): Promise<{ proc: VariantProcess; ready: ReadyMessage }> {
    const child = fork(WORKER, [JSON.stringify(spec)], {
      // 'advanced' = structured clone, so output Float32Arrays cross without JSON.
      serialization: 'advanced',
      execArgv: [...process.execArgv, '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const proc = new VariantProcess(spec, child);
    const ready = await proc.next('ready');
    return { proc, ready };
  }

  private next<K extends WorkerMessage['kind']>(kind: K, send?: ParentMessage): Promise<Extract<WorkerMessage, { kind: K }>> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting = {
        resolve: (m) => (m.kind === kind ? resolve(m as Extract<WorkerMessage, { kind: K }>) : reject(new Error(`bench/dense: expected "${kind}", got "${m.kind}"`))),
        reject,
      };
      if (send) this.child.send(send);
    });
  }

  /** One UNet call; wall and CPU time are measured inside the child around session.run. */
  run(returnOutput = false): Promise<RanMessage> {
    return this.next('ran', { cmd: 'run', returnOutput });
  }

  /** Ask for the peak RSS, release the session and wait for the process to end. */
  async finish(): Promise<FinalMessage> {
    const final = await this.next('final', { cmd: 'exit' });
    const timeout = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exit;
    clearTimeout(timeout);
    return final;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}
