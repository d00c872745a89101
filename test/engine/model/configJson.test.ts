import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigJsonError, parseConfigJson } from '../../../src/engine/model/configJson';
import { loadModelFolder, ModelFolderError } from '../../../src/engine/model/modelFolder';
import { createScheduler } from '../../../src/engine/scheduler';
import { ClipTokenizer } from '../../../src/engine/tokenizer/clipTokenizer';
import { writeTinyModelFolder } from '../../helpers/modelFolderBuilder';

const ROOT = path.resolve(__dirname, '../../..');

/**
 * Byte for byte what Python 3's json.dumps(cfg, indent=2) writes for a diffusers DPMSolverMultistepScheduler
 * config (the keys diffusers saves; allow_nan=True is the default, so -inf becomes the bare -Infinity).
 */
const PYTHON_DPM_CONFIG = `{
  "_class_name": "DPMSolverMultistepScheduler",
  "_diffusers_version": "0.27.2",
  "algorithm_type": "dpmsolver++",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "dynamic_thresholding_ratio": 0.995,
  "euler_at_final": false,
  "final_sigmas_type": "zero",
  "lambda_min_clipped": -Infinity,
  "lower_order_final": true,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "sample_max_value": 1.0,
  "set_alpha_to_one": false,
  "solver_order": 2,
  "solver_type": "midpoint",
  "steps_offset": 1,
  "thresholding": false,
  "timestep_spacing": "linspace",
  "trained_betas": null,
  "use_karras_sigmas": false,
  "use_lu_lambdas": false,
  "variance_type": null
}
`;

function jsonFilesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.json'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('parseConfigJson', () => {
  test('equals JSON.parse on every JSON file of the bundled model and the fixtures', () => {
    const files = [...jsonFilesUnder(path.join(ROOT, 'models')), ...jsonFilesUnder(path.join(ROOT, 'test/fixtures/models'))];
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      expect([f, parseConfigJson(text)]).toEqual([f, JSON.parse(text)]);
    }
  });

  test('equals JSON.parse on strings, escapes, numbers and nesting', () => {
    const texts = [
      '{"a\\u00e9\\n\\"\\\\":"\\ud83d\\ude00 \\/ \\t","b":[1,-0,2.5e-3,-1E+2,0.1,1e400,[],{}],"c":{"d":[true,false,null]}}',
      ' [ 1 , 2 ] ',
      '"just a string"',
      '-12.75e1',
      '{"__proto__": {"x": 1}, "constructor": 2}',
      '{"dup": 1, "dup": 2}',
    ];
    for (const t of texts) expect(parseConfigJson(t)).toEqual(JSON.parse(t));
    expect(Object.getPrototypeOf(parseConfigJson('{"__proto__": {"x": 1}}'))).toBe(Object.prototype);
  });

  test("reads Python's non-finite literals as numbers, in objects and arrays", () => {
    const v = parseConfigJson(PYTHON_DPM_CONFIG) as Record<string, unknown>;
    expect(v['lambda_min_clipped']).toBe(-Infinity);
    expect(v['beta_start']).toBe(0.00085);
    expect(Object.keys(v)).toHaveLength(25);
    const a = parseConfigJson('[NaN, Infinity, -Infinity, {"x": NaN}]') as unknown[];
    expect(a[0]).toBeNaN();
    expect(a[1]).toBe(Infinity);
    expect(a[2]).toBe(-Infinity);
    expect((a[3] as { x: number }).x).toBeNaN();
    // Inside strings the words stay text.
    expect(parseConfigJson('{"s": "NaN -Infinity"}')).toEqual({ s: 'NaN -Infinity' });
  });

  test('rejects what JSON.parse rejects, with a position', () => {
    const bad = ['{"a": 1,}', '[1 2]', '{a: 1}', "{'a': 1}", '01', '1.', '.5', '+1', 'nan', 'inf', '-NaN', 'Infinityx', '"\\x41"', '"a\nb"', '{"a": 1', '', '[1] 2', 'tru'];
    for (const t of bad) {
      expect(() => JSON.parse(t)).toThrow();
      let err: unknown;
      try {
        parseConfigJson(t);
      } catch (e) {
        err = e;
      }
      expect([t, err]).toEqual([t, expect.any(ConfigJsonError)]);
      expect((err as ConfigJsonError).position).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('model folders whose configs Python wrote with non-finite floats', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-configjson-'));
    writeTinyModelFolder(dir);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a scheduler_config.json with "lambda_min_clipped": -Infinity loads, and DPM-Solver++ accepts it', () => {
    fs.writeFileSync(path.join(dir, 'scheduler/scheduler_config.json'), PYTHON_DPM_CONFIG);
    const folder = loadModelFolder(dir);
    expect(folder.schedulerConfig['lambda_min_clipped']).toBe(-Infinity);
    const s = createScheduler('dpmpp-2m', folder.schedulerConfig as never);
    s.setTimesteps(20);
    expect(s.timesteps).toHaveLength(20);
  });

  test('NaN / Infinity in component and tokenizer configs load (config.json extras, tokenizer_config.json)', () => {
    const unetCfg = path.join(dir, 'unet/config.json');
    fs.writeFileSync(unetCfg, fs.readFileSync(unetCfg, 'utf8').replace(/^\{/, '{\n  "dropout_ratio": NaN,\n  "upcast_limit": Infinity,'));
    const tokCfg = path.join(dir, 'tokenizer/tokenizer_config.json');
    fs.writeFileSync(tokCfg, fs.readFileSync(tokCfg, 'utf8').replace(/^\{/, '{\n  "model_max_length_f": Infinity,'));
    const folder = loadModelFolder(dir);
    expect(folder.unet.config.blockOutChannels).toEqual([8, 16]);
    const tok = ClipTokenizer.fromFiles(folder.tokenizer.vocabFile, folder.tokenizer.mergesFile, folder.tokenizer.configFile);
    expect(tok.encode('a red cat').ids.length).toBe(77);
  });

  test('vocab.json stays strict JSON: NaN there is still bad JSON', () => {
    const vocab = path.join(dir, 'tokenizer/vocab.json');
    fs.writeFileSync(vocab, fs.readFileSync(vocab, 'utf8').replace(/^\{/, '{\n  "x</w>": NaN,'));
    let err: unknown;
    try {
      loadModelFolder(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelFolderError);
    expect((err as ModelFolderError).reason).toMatch(/^bad JSON/);
  });
});
