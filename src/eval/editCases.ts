// Edit cases for the edit-quality evaluation: from a scene caption, change ONE object's colour or shape
// and say what the edited scene must show. Deterministic in (spec, index), so runs are comparable.
import { COLOURS, SHAPES, type SceneSpec, type Shape } from './sceneSpec';

export type EditKind = 'colour' | 'shape';

export interface EditCase {
  kind: EditKind;
  /** Which object of the parent's spec changes. */
  objectIndex: number;
  parent: SceneSpec;
  /** The parent's spec with the one attribute changed and the new caption. */
  child: SceneSpec;
  from: string;
  to: string;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

/**
 * Case i of a spec: the object i mod n changes; even i change its colour (to the first palette colour,
 * counted from i, that neither another object nor the background uses), odd i its shape (to the next
 * shape). Refuses a caption in which the object's "colour shape" phrase is not found exactly once.
 */
export function editCase(spec: SceneSpec, i: number, kind: EditKind = i % 2 === 0 ? 'colour' : 'shape'): EditCase {
  const j = i % spec.objects.length;
  const o = spec.objects[j];
  let to: string;
  if (kind === 'colour') {
    const used = new Set([...spec.objects.map((x) => x.colour), ...(spec.background ? [spec.background] : [])]);
    const free = COLOURS.map((_, k) => COLOURS[(i + k) % COLOURS.length]).filter((c) => !used.has(c));
    if (free.length === 0) throw new Error(`no free colour for "${spec.caption}"`);
    to = free[0];
  } else {
    to = SHAPES[(SHAPES.indexOf(o.shape) + 1) % SHAPES.length];
  }
  const from = kind === 'colour' ? o.colour : o.shape;
  // "a|an [small |large ]colour shape": the article follows the word after it.
  const phrase = new RegExp(`\\ban? ((?:small |large )?)${o.colour} ${o.shape}\\b`, 'g');
  const hits = spec.caption.match(phrase) ?? [];
  if (hits.length !== 1) throw new Error(`"${o.colour} ${o.shape}" occurs ${hits.length} times in "${spec.caption}"`);
  const caption = spec.caption.replace(phrase, (_m, size: string) => {
    const colour = kind === 'colour' ? to : o.colour;
    const shape = kind === 'shape' ? to : o.shape;
    return `${article(size || colour)} ${size}${colour} ${shape}`;
  });
  const objects = spec.objects.map((x, k) => (k !== j ? x : kind === 'colour' ? { ...x, colour: to } : { ...x, shape: to as Shape }));
  return { kind, objectIndex: j, parent: spec, child: { ...spec, objects, caption }, from, to };
}
