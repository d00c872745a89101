// The resolver types are generated from schema.graphql; this fails when someone edits one without the other.
import * as fs from 'fs';
import { buildSchema } from 'graphql';
import { generateTypes, SCHEMA_FILE, TYPES_FILE } from '../../src/api/codegen/generateTypes';
import { loadSchema } from '../../src/api/server';

it('src/api/generated/schemaTypes.ts is up to date (npx tsx src/api/codegen/generateTypes.ts)', () => {
  expect(fs.readFileSync(TYPES_FILE, 'utf8')).toBe(generateTypes(buildSchema(fs.readFileSync(SCHEMA_FILE, 'utf8'))));
});

it('every resolver names a field of the schema (no typo left unresolved)', () => {
  expect(() => loadSchema()).not.toThrow();
});

it('keeps the operation names and shapes of the contract', () => {
  const s = buildSchema(fs.readFileSync(SCHEMA_FILE, 'utf8'));
  const sig = (type: string, field: string) => {
    const f = (s.getType(type) as any).getFields()[field];
    return `${f.args.map((a: any) => `${a.name}: ${a.type}`).join(', ')} -> ${f.type}`;
  };
  expect(sig('Query', 'me')).toBe(' -> User!');
  expect(sig('Query', 'trees')).toBe('first: Int, after: String -> TreeConnection!');
  expect(sig('Query', 'tree')).toBe('id: ID! -> Tree');
  expect(sig('Query', 'node')).toBe('id: ID! -> Node');
  expect(sig('Mutation', 'generate')).toBe('input: GenerateInput! -> Node!');
  expect(sig('Mutation', 'edit')).toBe('input: EditInput! -> Node!');
  expect(sig('Mutation', 'cancelJob')).toBe('nodeId: ID! -> Node!');
  expect(sig('Mutation', 'retryNode')).toBe('nodeId: ID! -> Node!');
  expect(sig('Mutation', 'deleteNode')).toBe('nodeId: ID! -> Boolean!');
  expect(sig('Mutation', 'shareTree')).toBe('treeId: ID!, userName: String!, role: TreeRole! -> Tree!');
  expect(sig('Mutation', 'unshareTree')).toBe('treeId: ID!, userName: String! -> Boolean!');
  expect(sig('Subscription', 'nodeProgress')).toBe('nodeId: ID! -> NodeProgress!');
  // afterSeq replays missed state events (issue 15 item 7).
  expect(sig('Subscription', 'treeEvents')).toBe('treeId: ID!, afterSeq: Int -> TreeEvent!');
  const fields = (t: string) => Object.keys((s.getType(t) as any).getFields());
  expect(fields('GenerateInput')).toEqual(expect.arrayContaining(['prompt', 'negativePrompt', 'seed', 'steps', 'guidance', 'scheduler', 'width', 'height', 'title']));
  expect(fields('EditInput')).toEqual(expect.arrayContaining(['parentId', 'prompt', 'negativePrompt', 'mask', 'strategy']));
  expect(fields('NodeProgress')).toEqual(expect.arrayContaining(['seq', 'step', 'totalSteps', 'phase', 'etaMs', 'preview', 'maskedFraction']));
  expect(fields('TreeEvent')).toEqual(expect.arrayContaining(['type', 'node']));
  expect(fields('Node')).toEqual(expect.arrayContaining(['id', 'tree', 'parent', 'children', 'prompt', 'negativePrompt', 'seed', 'steps', 'guidance', 'scheduler', 'width', 'height', 'status', 'error', 'image', 'mask', 'stats', 'promptDiff']));
  expect(fields('Image')).toEqual(expect.arrayContaining(['url', 'width', 'height']));
  expect(fields('Mask')).toEqual(expect.arrayContaining(['url', 'fraction']));
  expect(fields('NodeStats')).toEqual(expect.arrayContaining(['mode', 'wallMs', 'denseEstimateMs', 'speedup', 'maskedFraction']));
  expect((s.getType('TreeEventType') as any).getValues().map((v: any) => v.name)).toEqual(['CREATED', 'STARTED', 'PROGRESSED', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'DELETED']);
  expect((s.getType('NodeStatus') as any).getValues().map((v: any) => v.name)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']);
});
