/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// NodeStore.delete and the service's forgetNodes: whole subtrees go (folders and activations), a node
// with a surviving child is refused with nothing deleted, unknown ids are skipped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { editNode } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import { NodeInUseError } from '../../../src/engine/state/nodeStore';
import { forgetNodes } from '../../../src/service/inference/engineState';
import { rectMask, useTinyStateContext } from '../../engine/pipeline/editFixtures';

const tiny = useTinyStateContext('fisedit-delete-');

test('deletes a subtree; refuses a parent whose child stays; frees the activations', async () => {
  const ctx = await tiny.state();
  const { store } = ctx;
  const root = (await generateNode(ctx, { prompt: 'a red circle on the left', seed: 1, steps: 3 })).record;
  const mask = rectMask(16, 16, 2, 2, 6, 6);
  const a = (await editNode(ctx, { parentId: root.id, prompt: 'a blue circle on the left', mask })).node;
  const a1 = (await editNode(ctx, { parentId: a.id, prompt: 'a blue square on the left', mask })).node;
  const b = (await editNode(ctx, { parentId: root.id, prompt: 'a green circle on the left', mask })).node;
  expect(ctx.cache!.hasNode(a1.id)).toBe(true);

  // a without a1: refused, nothing gone
  expect(() => store.delete([a.id])).toThrow(NodeInUseError);
  expect(() => store.delete([a.id])).toThrow(new RegExp(`node ${a.id} has child ${a1.id}`));
  expect(store.ids().sort()).toEqual([root.id, a.id, a1.id, b.id].sort());

  // the branch a → a1 (plus an unknown id): both folders and both caches go; root and b stay usable
  expect((await forgetNodes(ctx, [a.id, a1.id, 'ffffffffff'])).sort()).toEqual([a.id, a1.id].sort());
  expect(store.ids().sort()).toEqual([root.id, b.id].sort());
  expect(fs.readdirSync(path.join(store.dir, 'nodes')).filter((n) => n.startsWith('.deleted-'))).toEqual([]);
  expect([ctx.cache!.hasNode(a.id), ctx.cache!.hasNode(a1.id), ctx.cache!.hasNode(b.id)]).toEqual([false, false, true]);
  const again = await editNode(ctx, { parentId: b.id, prompt: 'a green square on the left', mask });
  expect(again.mode).toBe('SPARSE');
  expect(again.cacheFallback).toBeNull();
  expect(store.delete([])).toEqual([]);
});
