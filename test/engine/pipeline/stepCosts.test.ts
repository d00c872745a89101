// The sparse-or-dense choice of an edit's steps from measured costs (src/engine/pipeline/stepCosts.ts),
// with injected measurements: interpolation, the decision and its reason, and the persisted table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chooseEditSteps, rootRecording, sparseMsAt, StepCostBook, type StepCosts } from '../../../src/engine/pipeline/stepCosts';

const costs = (over: Partial<StepCosts> = {}): StepCosts => ({ denseMs: 25, recordMs: 40, sparse: [{ fraction: 0.1, ms: 20 }, { fraction: 0.3, ms: 40 }], ...over });

test('sparse cost: linear between measured fractions, extended along the nearest two beyond them', () => {
  expect(sparseMsAt(costs(), 0.1)).toBeCloseTo(20, 9);
  expect(sparseMsAt(costs(), 0.2)).toBeCloseTo(30, 9);
  expect(sparseMsAt(costs(), 0.5)).toBeCloseTo(60, 9);
  expect(sparseMsAt(costs(), 0.05)).toBeCloseTo(15, 9);
  expect(sparseMsAt(costs(), 0)).toBeCloseTo(10, 9);
  expect(sparseMsAt(costs({ sparse: [] }), 0.2)).toBeNull();
  // one point: in proportion to the fraction
  expect(sparseMsAt(costs({ sparse: [{ fraction: 0.2, ms: 50 }] }), 0.4)).toBeCloseTo(100, 9);
});

test('sparse steps only where they cost less than dense ones; the reason gives both measurements', () => {
  const small = chooseEditSteps(costs(), 0.1);
  expect(small).toMatchObject({ steps: 'SPARSE', sparseMs: 20, denseMs: 25, reason: '' });
  const large = chooseEditSteps(costs(), 0.25);
  expect(large.steps).toBe('DENSE');
  expect(large.sparseMs).toBeCloseTo(35, 9);
  expect(large.reason).toBe('a sparse step at 25.0 % costs 35.0 ms against 25.0 ms for a dense one (measured for this model and size): ran dense');
  // equal cost: dense (no gain, and a dense step needs no cache)
  expect(chooseEditSteps(costs({ sparse: [{ fraction: 0.1, ms: 25 }, { fraction: 0.3, ms: 40 }] }), 0.1).steps).toBe('DENSE');
  // nothing measured for sparse steps: as before, sparse
  expect(chooseEditSteps(costs({ sparse: [] }), 0.5).steps).toBe('SPARSE');
});

test("a child that keeps its cache decodes at a cost: the choice counts it over the edit's steps", () => {
  // 8 ms against 10 per step saves 2 ms a step; keeping the page costs 30 ms once
  const c = costs({ denseMs: 10, recordMs: null, sparse: [{ fraction: 0.1, ms: 8 }, { fraction: 0.3, ms: 12 }], keepPageDecodeMs: 30 });
  const short = chooseEditSteps(c, 0.1, 14); // 142 against 140 ms
  expect(short.steps).toBe('DENSE');
  expect(short.reason).toBe("a sparse step at 10.0 % costs 8.0 ms against 10.0 ms for a dense one, and keeping the child's cache adds 30.0 ms to its decode (14 steps: 142 against 140 ms) (measured for this model and size): ran dense");
  expect(chooseEditSteps(c, 0.1, 20).steps).toBe('SPARSE'); // 190 against 200 ms
  // dense steps that record keep the cache too: then both pay it, and per step decides
  expect(chooseEditSteps({ ...c, recordMs: 10.2 }, 0.1, 14)).toMatchObject({ steps: 'SPARSE', recordDense: true });
});

test('dense steps record the child only when recording costs at most 5 % more than not', () => {
  expect(chooseEditSteps(costs({ recordMs: 26.25 }), 0.5).recordDense).toBe(true);
  expect(chooseEditSteps(costs({ recordMs: 26.3 }), 0.5).recordDense).toBe(false);
  expect(chooseEditSteps(costs({ recordMs: null }), 0.5).recordDense).toBe(false);
});

test('the table persists beside the state, folds in observed step times, and survives a damaged file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-step-costs-'));
  try {
    const file = path.join(dir, 'step-costs.json');
    const book = new StepCostBook(file);
    expect(book.get('m')).toBeNull();
    book.observe('m', { denseMs: 10 }); // nothing to refine before a measurement
    expect(book.get('m')).toBeNull();
    book.set('m', costs({ sparse: [{ fraction: 0.3, ms: 40 }, { fraction: 0.1, ms: 20 }] }));
    expect(book.get('m')!.sparse.map((p) => p.fraction)).toEqual([0.1, 0.3]);
    book.observe('m', { denseMs: 35, recordMs: 50, sparse: { fraction: 0.11, ms: 30 } });
    book.observe('m', { sparse: { fraction: 0.5, ms: 70 } });
    // Observations are written at flush() (an edit's save phase), not by each observation.
    expect(new StepCostBook(file).get('m')!.denseMs).toBe(25);
    book.flush();
    const again = new StepCostBook(file).get('m')!;
    // dense: a moving average; the kinds seen beside it move their ratio to it; the others follow it
    const dense = 0.7 * 25 + 0.3 * 35;
    expect(again.denseMs).toBeCloseTo(dense, 9);
    expect(again.recordMs).toBeCloseTo(dense * (0.7 * (40 / 25) + 0.3 * (50 / 35)), 9);
    expect(again.sparse).toEqual([
      { fraction: 0.1, ms: expect.closeTo(dense * (0.7 * (20 / 25) + 0.3 * (30 / 35)), 9) },
      { fraction: 0.3, ms: expect.closeTo((40 * dense) / 25, 9) },
      { fraction: 0.5, ms: 70 }, // seen without a dense time: as it was seen
    ]);
    fs.writeFileSync(file, '{ not json');
    expect(new StepCostBook(file).get('m')).toBeNull();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a busy spell seen in dense steps alone moves every kind alike: the choice does not flip to a recording step at 1.33x', () => {
  const book = new StepCostBook();
  book.set('m', { denseMs: 30, recordMs: 40, sparse: [{ fraction: 0.1, ms: 33 }, { fraction: 0.3, ms: 45 }] });
  for (let i = 0; i < 6; i++) book.observe('m', { denseMs: 60 }); // dense edits on a loaded machine
  const c = book.get('m')!;
  expect(c.denseMs).toBeGreaterThan(55);
  expect(c.recordMs! / c.denseMs).toBeCloseTo(40 / 30, 9);
  expect(chooseEditSteps(c, 0.2)).toMatchObject({ steps: 'DENSE', recordDense: false });
  // A recording edit beside its dense capture steps moves the ratio (here to 1.02x: recording now pays)
  for (let i = 0; i < 12; i++) book.observe('m', { denseMs: 50, recordMs: 51 });
  expect(chooseEditSteps(book.get('m')!, 0.2).recordDense).toBe(true);
});

test('a parent that was not recorded: the sparse side pays its re-recording, and the reason says so', () => {
  const c = costs({ denseMs: 10, recordMs: 12, sparse: [{ fraction: 0.1, ms: 4 }, { fraction: 0.3, ms: 8 }] });
  expect(chooseEditSteps(c, 0.1, 14).steps).toBe('SPARSE'); // 56 against 140 ms
  const after = chooseEditSteps(c, 0.1, 14, 14); // 56 + 14 × 12 = 224 against 140 ms
  expect(after.steps).toBe('DENSE');
  expect(after.reason).toBe('a sparse step at 10.0 % costs 4.0 ms against 10.0 ms for a dense one, and its parent was not recorded: re-recording 14 steps adds 168 ms (14 steps: 224 against 140 ms) (measured for this model and size): ran dense');
  // re-recording the remaining steps costs at least as much as running them dense, however cheap sparse steps are
  expect(chooseEditSteps(costs({ denseMs: 100, recordMs: 100, sparse: [{ fraction: 0.1, ms: 1 }, { fraction: 0.3, ms: 2 }] }), 0.1, 14, 14).steps).toBe('DENSE');
  expect(chooseEditSteps(costs({ denseMs: 100, recordMs: 100, sparse: [{ fraction: 0.1, ms: 1 }, { fraction: 0.3, ms: 2 }] }), 0.1, 14, 0).steps).toBe('SPARSE');
});

test('a root records only where one sparse 10 % edit of it saves more than the recording costs', () => {
  // unmeasured: record, as before
  expect(rootRecording(null, 20)).toEqual({ record: true, reason: 'recorded: its step costs are not measured yet' });
  expect(rootRecording(costs({ recordMs: null }), 20).record).toBe(true);
  expect(rootRecording(costs({ sparse: [] }), 20).record).toBe(true);
  // the bundled model as measured: recording 20 × (17.4 − 12.6) + 4.6 = 100.6 ms; a 10 % edit saves 14 × (12.6 − 7.6) − 4.6 = 65.4 ms
  const bundled = rootRecording({ denseMs: 12.6, recordMs: 17.4, sparse: [{ fraction: 0.1, ms: 7.6 }, { fraction: 0.3, ms: 12.7 }], keepPageDecodeMs: 4.6 }, 20);
  expect(bundled).toEqual({ record: false, reason: 'not recorded: recording its 20 steps costs 101 ms and a sparse 10 % edit of it saves 65 ms (measured for this model and size); its edits run dense, or re-record it' });
  // SD width at 256 px: a recording step a little dearer than a dense one, a sparse one a fifth of it
  expect(rootRecording({ denseMs: 1800, recordMs: 1950, sparse: [{ fraction: 0.1, ms: 400 }, { fraction: 0.3, ms: 700 }] }, 20).record).toBe(true);
});
