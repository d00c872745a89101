/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The edit-quality evaluation's mechanics on the tiny fixture model (it cannot draw scenes, so success is
// not asserted here; `fisedit eval --edits` measures it on the bundled model): every case runs a recorded
// parent and its edit, nothing outside the edit's region changes, and the summary adds up.
import { editNode } from '../../src/engine/pipeline/edit';
import { runEditEvaluation, quartiles, summariseEdits, editSheetRows } from '../../src/eval/editEvaluation';
import { parseSceneCaption } from '../../src/eval/sceneSpec';
import { useTinyStateContext } from '../engine/pipeline/editFixtures';

const tiny = useTinyStateContext('fisedit-edit-eval-');

test('runs each case as parent + edit and keeps every pixel outside the edit region', async () => {
  const ctx = await tiny.state();
  const { store } = ctx;
  const specs = ['a red circle on the left on a white background', 'a blue square at the top and a green triangle on the right on a black background'].map(parseSceneCaption);
  const report = await runEditEvaluation(ctx, specs, { steps: 4, guidance: 4.5, scheduler: 'dpmpp-2m', baseSeed: 7, strategy: 'latent' });
  expect(report.items.map((it) => [it.edit.kind, it.edit.child.caption])).toEqual([
    ['colour', expect.stringMatching(/^an? \w+ circle on the left on a white background$/)],
    ['shape', 'a blue square at the top and a green circle on the right on a black background'],
  ]);
  for (const it of report.items) {
    expect(it.outsideChanged).toBe(0);
    expect(it.seed).toBe(7 + report.items.indexOf(it));
    expect(it.childRgb.length).toBe(it.width * it.height * 3);
    expect(it.success).toBe(it.edit.kind === 'colour' ? it.childObject.colourPosition : it.childObject.shapeCorrect);
    expect(it.denseSuccess).toBe(it.edit.kind === 'colour' ? it.denseObject.colourPosition : it.denseObject.shapeCorrect);
    expect(it.denseMs).toBeGreaterThan(0);
  }
  expect(report.items[1].others).toBe(1);
  const s = report.summary;
  expect(s).toEqual(summariseEdits(report.items));
  expect(s.cases).toBe(2);
  expect(Object.values(s.modes).reduce((a, b) => a + b, 0)).toBe(2);
  expect(s.outsideChangedPixels).toBe(0);
  expect(editSheetRows(report.items).map((r) => r.length)).toEqual([2, 2]);
  // the parents are real recorded nodes: editing one again works from the store
  expect(store.list().length).toBe(4);
  const again = await editNode(ctx, { parentId: store.list()[0].id, prompt: 'a yellow circle on the left on a white background' });
  expect(again.node.parentId).toBe(store.list()[0].id);
});

test('summary splits success by kind, over all cases and over those whose parent or dense regeneration drew it right', () => {
  // kind, parent right, success, dense right: colour 3 cases (2 parent right: 1 success; 2 dense right:
  // 1 success), shape 2 cases (1 parent right: 0 success; 1 dense right: 0 success)
  const rows: Array<['colour' | 'shape', boolean, boolean, boolean]> = [
    ['colour', true, true, true],
    ['colour', true, false, false],
    ['colour', false, true, false],
    ['shape', true, false, true],
    ['shape', false, false, false],
  ];
  const items = rows.map(([kind, right, success, denseSuccess]) => ({
    edit: { kind },
    parentObject: { colourPosition: right },
    success,
    denseSuccess,
    denseMs: 3,
    outsideChanged: 0,
    othersKept: 0,
    others: 0,
    mode: 'SPARSE',
    maskedFraction: 0.1,
    editMs: 1,
    generateMs: 2,
  })) as unknown as Parameters<typeof summariseEdits>[0];
  const s = summariseEdits(items);
  expect(s.success).toBeCloseTo(2 / 5);
  expect(s.parentRight).toBe(3);
  expect(s.successWhereParentRight).toBeCloseTo(1 / 3);
  expect(s.byKind.colour).toEqual({ cases: 3, success: 2 / 3, parentRight: 2, successWhereParentRight: 1 / 2, denseSuccess: 1 / 3, successWhereDenseRight: 1 });
  expect(s.byKind.shape).toEqual({ cases: 2, success: 0, parentRight: 1, successWhereParentRight: 0, denseSuccess: 1 / 2, successWhereDenseRight: 0 });
  expect(s.denseRight).toBe(2);
  expect(s.denseSuccess).toBeCloseTo(2 / 5);
  expect(s.successWhereDenseRight).toBeCloseTo(1 / 2);
  expect(s.othersKept).toBeNull();
  expect(s.speedup).toBeCloseTo(3); // against the dense regeneration (3 ms), not the recorded parent (2 ms)
});

test('per-case speed: median and quartiles of regeneration ms / edit ms, which one slow job does not move as it moves the Σ ratio', () => {
  // Four edits as fast as their regenerations (100 ms), one that met a 300 ms stall.
  const ms: Array<[number, number]> = [[100, 100], [100, 100], [100, 100], [100, 100], [400, 100]];
  const items = ms.map(([editMs, denseMs]) => ({ edit: { kind: 'colour' }, parentObject: { colourPosition: true }, success: true, denseSuccess: true, denseMs, editMs, generateMs: 1, outsideChanged: 0, othersKept: 0, others: 0, mode: 'DENSE', maskedFraction: 0.1 })) as unknown as Parameters<typeof summariseEdits>[0];
  const s = summariseEdits(items);
  expect(s.speedup).toBeCloseTo(500 / 800);
  expect(s.speedupPerCase).toEqual({ median: 1, q1: 1, q3: 1 });
});

test('quartiles interpolate between order statistics, as numpy.percentile does', () => {
  // numpy.percentile([4, 1, 3, 2], [25, 50, 75]) = [1.75, 2.5, 3.25]
  expect(quartiles([4, 1, 3, 2])).toEqual({ median: 2.5, q1: 1.75, q3: 3.25 });
  expect(quartiles([7])).toEqual({ median: 7, q1: 7, q3: 7 });
  expect(quartiles([])).toEqual({ median: 0, q1: 0, q3: 0 });
});
