// bench/gpu/profile.ts: the summary of an onnxruntime profile (chrome trace) that the GPU bench prints,
// on a synthetic trace shaped like the WebGPU EP's (Api events "<node>&<op>&<program>" with GPU µs,
// Node "<node>_kernel_time" events with the provider, Session model_run events).
import { formatProfile, summarizeProfile } from '../../bench/gpu/profile';

function trace(runs: number) {
  const events: { cat: string; name: string; ts: number; dur: number; args?: Record<string, unknown> }[] = [];
  for (let r = 0; r < runs; r++) {
    const warm = r === 0 ? 10 : 1; // the warm-up run is slower: it must not count
    events.push({ cat: 'Session', name: 'model_run', ts: r * 1e6, dur: 5000 * warm });
    events.push({ cat: 'Node', name: 'down_blocks.0/attentions.0/transformer_blocks.0/attn1/scores_kernel_time', ts: 0, dur: 30, args: { provider: 'WebGpuExecutionProvider', op_name: 'MatMul' } });
    events.push({ cat: 'Node', name: 'Gather_3_kernel_time', ts: 0, dur: 50, args: { provider: 'CPUExecutionProvider', op_name: 'Gather' } });
    const t = r * 1e5;
    events.push({ cat: 'Api', name: 'down_blocks.0/attentions.0/transformer_blocks.0/attn1/scores&MatMul&MatMul', ts: t, dur: 3000 * warm, args: { shapes: 'inputs[0] = {2,8,4096,40}' } });
    events.push({ cat: 'Api', name: 'down_blocks.0/attentions.0/transformer_blocks.0/attn1/Softmax&Softmax&Softmax', ts: t + 3000, dur: 500 * warm });
    events.push({ cat: 'Api', name: 'down_blocks.0/attentions.0/proj_in/matmul&MatMul&MatMul', ts: t + 4000, dur: 500 * warm });
  }
  return events;
}

describe('summarizeProfile', () => {
  test('splits runs, drops the warm-up, and tables GPU time by op type, block and node', () => {
    const p = summarizeProfile(trace(3), 3, 1, 'synthetic');
    expect(p.runs).toBe(2);
    expect(p.wallMs).toEqual([5, 5]);
    expect(p.gpuTimestamps).toBe(true);
    expect(p.kernelsPerRun).toBe(3);
    expect(p.gpuKernelMs).toBeCloseTo(4, 6);
    expect(p.gpuSpanMs).toBeCloseTo(4.5, 6); // first start → last end, the gap included
    expect(p.byOp.map((r) => [r.key, r.ms])).toEqual([
      ['MatMul (attention)', 3],
      ['Softmax', 0.5],
      ['MatMul', 0.5],
    ]);
    expect(p.byOp[0].share).toBeCloseTo(0.75, 6);
    expect(p.byBlock).toEqual([{ key: 'down_blocks.0/attentions.0', ms: 4, share: 1, kernels: 3 }]);
    expect(p.byNode[0]).toMatchObject({ key: 'down_blocks.0/attentions.0/transformer_blocks.0/attn1/scores', op: 'MatMul', ms: 3, shapes: 'inputs[0] = {2,8,4096,40}' });
    expect(p.hostCpuNodeMs).toBeCloseTo(0.05, 6);
    expect(p.hostDeviceNodeMs).toBeCloseTo(0.03, 6);
    expect(p.cpuNodes).toEqual([{ op: 'Gather', count: 1, ms: 0.05 }]);
    expect(p.note).toBeUndefined();
    const text = formatProfile(p);
    expect(text).toMatch(/GPU kernels 4\.0 ms summed over 3 dispatches/);
    expect(text).toMatch(/GPU busy\s+80\.0 %/);
    expect(text).toMatch(/3\.00 ms\s+75\.0 %\s+1×\s+MatMul \(attention\)/);
  });

  test('says so when the events do not split into equal runs, and without GPU timestamps', () => {
    const events = trace(3).slice(0, -1); // one kernel of the last run missing
    const p = summarizeProfile(events, 3, 1);
    expect(p.note).toMatch(/do not split into 3 equal runs/);
    const host = summarizeProfile(trace(2).filter((e) => e.cat !== 'Api'), 2, 1);
    expect(host.gpuTimestamps).toBe(false);
    expect(formatProfile(host)).toMatch(/no GPU timestamps/);
  });
});
