// Worker-thread entry for ortSession.test.ts: build a graph, run it with the engine's session wrapper
// inside the worker and post the result back. Proves the engine has no main-thread-only state.
import { parentPort, workerData } from 'worker_threads';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';

async function main(): Promise<void> {
  const g = new GraphBuilder('worker');
  const x = g.input('x', 'float32', ['N']);
  g.output('y', g.op('Mul', [x, g.constF32([3], [])]), 'float32');
  const s = await createSession(g.build(), { intraOpNumThreads: 1 });
  const input = Float32Array.from(workerData.values as number[]);
  const out = await s.run({ x: float32Tensor(input, [input.length]) });
  await s.release();
  parentPort!.postMessage(Array.from(out.y.data as Float32Array));
}

main().catch((e) => parentPort!.postMessage({ error: String(e) }));
