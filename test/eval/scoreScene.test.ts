import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../../src/engine/io/npy';
import { parseSceneCaption, specsFromHeldout, CaptionParseError, HeldoutFile } from '../../src/eval/sceneSpec';
import { renderScene } from '../../src/eval/renderScene';
import { scoreScene, summarise, largestComponent, shapeFromFill } from '../../src/eval/scoreScene';

const dir = join(__dirname, '..', 'fixtures', 'eval');

describe('scene scoring against the Python checker (training/checker.py)', () => {
  const renders = readNpy(join(dir, 'renders.npy'));
  const scenes = specsFromHeldout({ scenes: JSON.parse(readFileSync(join(dir, 'scenes.json'), 'utf8')) } as HeldoutFile);
  const py = JSON.parse(readFileSync(join(dir, 'python_scores.json'), 'utf8')) as {
    objects: { colour_pos: boolean; shape: boolean; got_shape: string | null }[];
    background: boolean;
    scene: boolean;
  }[];
  const [n, h, w] = renders.shape;
  const img = (i: number) => (renders.data as Uint8Array).subarray(i * h * w * 3, (i + 1) * h * w * 3);

  it('agrees with the reference checker on every image, object and attribute', () => {
    for (let i = 0; i < n; i++) {
      const s = scoreScene(img(i), w, h, scenes[i]);
      expect(s.background).toBe(py[i].background);
      expect(s.allCorrect).toBe(py[i].scene);
      s.objects.forEach((o, j) => {
        expect(o.colourPosition).toBe(py[i].objects[j].colour_pos);
        expect(o.shapeCorrect).toBe(py[i].objects[j].shape);
        expect(o.detectedShape).toBe(py[i].objects[j].got_shape);
      });
    }
  });

  it('scores reference renders 100 % and catches swapped colours and shapes', () => {
    const truth = summarise(Array.from({ length: 24 }, (_, i) => scoreScene(img(i), w, h, scenes[i])));
    expect(truth).toMatchObject({ colourPosition: 1, shape: 1, background: 1, scene: 1 });
    for (let i = 24; i < 40; i++) expect(scoreScene(img(i), w, h, scenes[i]).allCorrect).toBe(false);
  });
});

describe('colour anywhere (diagnostic beyond the checker)', () => {
  it('tells the right colour in the wrong cell from a missing colour', () => {
    const drawn = renderScene([{ colour: 'red', shape: 'circle', size: 'large', cell: [0, 0], jitter: [0, 0] }], 'white');
    const asked = parseSceneCaption('a large red circle in the bottom right and a blue square on the left on a white background');
    const [red, blue] = scoreScene(drawn, 64, 64, asked).objects;
    expect(red).toMatchObject({ colourPosition: false, colourAnywhere: true, detectedCell: 0, shapeCorrect: false });
    expect(blue).toMatchObject({ colourPosition: false, colourAnywhere: false, detectedCell: null });
    const right = scoreScene(drawn, 64, 64, parseSceneCaption('a large red circle in the top left on a white background'));
    expect(right.objects[0]).toMatchObject({ colourPosition: true, colourAnywhere: true, detectedCell: 0, detectedShape: 'circle' });
    expect(summarise([scoreScene(drawn, 64, 64, asked)])).toMatchObject({ colourPosition: 0, colourAnywhere: 0.5 });
  });
});

describe('caption grammar', () => {
  it('parses objects, sizes, places and background', () => {
    const s = parseSceneCaption('a large red circle on the left and an orange triangle in the top right on a white background');
    expect(s.background).toBe('white');
    expect(s.objects).toEqual([
      { size: 'large', colour: 'red', shape: 'circle', cell: [1, 0] },
      { size: 'medium', colour: 'orange', shape: 'triangle', cell: [0, 2] },
    ]);
    expect(parseSceneCaption('a blue square').objects[0].cell).toBeNull();
  });
  it('refuses captions outside the grammar', () => {
    expect(() => parseSceneCaption('a photo of a cat')).toThrow(CaptionParseError);
  });
});

describe('shape measures', () => {
  it('fill ratio of a filled square, a disc and a triangle', () => {
    const sq = new Uint8Array(100).fill(1);
    expect(shapeFromFill(largestComponent(sq, 10, 10).fill)).toBe('square');
    const disc = new Uint8Array(400);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) disc[y * 20 + x] = (x - 9.5) ** 2 + (y - 9.5) ** 2 <= 100 ? 1 : 0;
    expect(largestComponent(disc, 20, 20).fill).toBeCloseTo(Math.PI / 4, 1);
    const tri = new Uint8Array(400);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) tri[y * 20 + x] = Math.abs(x - 9.5) <= (y + 0.5) / 2 ? 1 : 0;
    expect(shapeFromFill(largestComponent(tri, 20, 20).fill)).toBe('triangle');
  });
  it('takes the largest 4-connected component, not diagonal neighbours', () => {
    const m = new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(largestComponent(m, 3, 3).size).toBe(1);
  });
});

describe('reference renderer', () => {
  it('matches training/scenes.py renders within one grey level', () => {
    const renders = readNpy(join(dir, 'renders.npy'));
    const scenes = JSON.parse(readFileSync(join(dir, 'scenes.json'), 'utf8'));
    const px = 64 * 64 * 3;
    for (let i = 0; i < 24; i++) {
      const ours = renderScene(scenes[i].objects, scenes[i].background);
      const ref = (renders.data as Uint8Array).subarray(i * px, (i + 1) * px);
      let maxDiff = 0;
      for (let k = 0; k < px; k++) maxDiff = Math.max(maxDiff, Math.abs(ours[k] - ref[k]));
      expect(maxDiff).toBeLessThanOrEqual(1);
    }
  });
});
