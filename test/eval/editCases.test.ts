import { editCase } from '../../src/eval/editCases';
import { parseSceneCaption } from '../../src/eval/sceneSpec';

const spec = parseSceneCaption('a small red circle on the left and an orange square in the top right on a white background');

test('a colour edit changes one object to a colour the scene does not use, fixing the article', () => {
  const c = editCase(spec, 0);
  expect(c.kind).toBe('colour');
  expect([c.objectIndex, c.from]).toEqual([0, 'red']);
  expect(['red', 'orange', 'white']).not.toContain(c.to);
  expect(c.child.caption).toBe(`a small ${c.to} circle on the left and an orange square in the top right on a white background`);
  // the edited caption parses to exactly the edited spec
  expect(parseSceneCaption(c.child.caption).objects).toEqual(c.child.objects);
  expect(c.child.objects[1]).toEqual(spec.objects[1]);
});

test('a shape edit changes the next object to the next shape; a/an follows the colour', () => {
  const c = editCase(spec, 1);
  expect([c.kind, c.objectIndex, c.from, c.to]).toEqual(['shape', 1, 'square', 'triangle']);
  expect(c.child.caption).toBe('a small red circle on the left and an orange triangle in the top right on a white background');
  const one = parseSceneCaption('a red circle at the top on a black background');
  const toOrange = editCase(one, 0);
  expect(toOrange.child.caption).toMatch(/^an? \w+ circle at the top on a black background$/);
  expect(toOrange.child.caption.startsWith(toOrange.to.match(/^[aeiou]/) ? 'an ' : 'a ')).toBe(true);
});

test('cases are deterministic and cover every object', () => {
  const objs = new Set([0, 1, 2, 3].map((i) => editCase(spec, i).objectIndex));
  expect([...objs].sort()).toEqual([0, 1]);
  expect(editCase(spec, 2)).toEqual(editCase(spec, 2));
});
