// The synthetic-scene vocabulary of the bundled default model (training/scenes.py is the generator;
// this is its caption grammar and palette, so edited prompts can be scored too).
//   caption := object (" and " object)* [" on a|an " colour " background"]
//   object  := a|an [small|large] colour shape [place]

export type Rgb = [number, number, number];

export const PALETTE: Record<string, Rgb> = {
  red: [220, 30, 30],
  green: [30, 160, 50],
  blue: [40, 70, 225],
  yellow: [245, 220, 30],
  purple: [140, 50, 180],
  orange: [250, 140, 20],
  white: [245, 245, 245],
  black: [15, 15, 15],
  gray: [128, 128, 128],
};
export const COLOURS = Object.keys(PALETTE);
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

/** Place phrase → [row, col] on the 3×3 grid, row 0 at the top. */
export const PLACES: Record<string, [number, number]> = {
  'on the left': [1, 0],
  'on the right': [1, 2],
  'at the top': [0, 1],
  'at the bottom': [2, 1],
  'in the center': [1, 1],
  'in the top left': [0, 0],
  'in the top right': [0, 2],
  'in the bottom left': [2, 0],
  'in the bottom right': [2, 2],
};

export interface SceneObject {
  colour: string;
  shape: Shape;
  /** [row, col]; null when the caption names no place. */
  cell: [number, number] | null;
  size?: 'small' | 'medium' | 'large';
}

export interface SceneSpec {
  objects: SceneObject[];
  /** null when the caption names no background. */
  background: string | null;
  caption: string;
}

export class CaptionParseError extends Error {
  constructor(readonly caption: string, reason: string) {
    super(`cannot read scene caption "${caption}": ${reason}`);
    this.name = 'CaptionParseError';
  }
}

const OBJECT_RE = new RegExp(
  `^an? (?:(small|large) )?(${COLOURS.join('|')}) (${SHAPES.join('|')})(?: (${Object.keys(PLACES).join('|')}))?$`,
);

/** Parse a caption of the scene grammar; refuses anything else so scores are never guessed. */
export function parseSceneCaption(caption: string): SceneSpec {
  let text = caption.trim().toLowerCase().replace(/\s+/g, ' ');
  let background: string | null = null;
  const bg = new RegExp(` on an? (${COLOURS.join('|')}) background$`).exec(text);
  if (bg) {
    background = bg[1];
    text = text.slice(0, bg.index);
  }
  const objects: SceneObject[] = text.split(' and ').map((part) => {
    const m = OBJECT_RE.exec(part);
    if (!m) throw new CaptionParseError(caption, `"${part}" is not "a [size] colour shape [place]"`);
    return {
      size: (m[1] as 'small' | 'large' | undefined) ?? 'medium',
      colour: m[2],
      shape: m[3] as Shape,
      cell: m[4] ? PLACES[m[4]] : null,
    };
  });
  return { objects, background, caption };
}

/** Held-out evaluation scenes as written by training/scenes.py (heldout_captions.json). */
export interface HeldoutFile {
  scenes: { caption: string; background: string; objects: { colour: string; shape: Shape; size: string; cell: [number, number] }[] }[];
}

export function specsFromHeldout(doc: HeldoutFile): SceneSpec[] {
  return doc.scenes.map((s) => ({
    caption: s.caption,
    background: s.background,
    objects: s.objects.map((o) => ({ colour: o.colour, shape: o.shape, cell: o.cell, size: o.size as SceneObject['size'] })),
  }));
}
