// Load a diffusers-layout model folder (shared/reference/sd-architecture.md §1.1):
//   model_index.json, unet/, text_encoder/, vae/, tokenizer/, scheduler/
// Everything is checked before any weight data is read: configs parse, each safetensors header is
// valid, and its tensor names and shapes match what the architecture needs for that config. A bad
// folder fails in milliseconds with every problem listed, not after reading gigabytes.

import * as fs from 'fs';
import * as path from 'path';
import { parseConfigJson } from './configJson';
import { ClipTextConfig, ModelConfigError, parseClipTextConfig, parseUNetConfig, parseVaeConfig, UNetConfig, VaeConfig } from './configs';
import { ExpectedTensors, expectedClipTensors, expectedUNetTensors, expectedVaeDecoderTensors, isVaeEncoderTensor } from './expectedTensors';
import { readSafetensors, readSafetensorsHeader, SafetensorsError, SkipTensor } from './safetensors';
import { WeightMap } from './tensor';
import { checkWeights, keepWeightName, NamedShape, renameVaeWeight, weightCheckLines, WeightRenamer } from './weightNames';

export class ModelFolderError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    /** Every individual problem when there are several (weight checks); the message may abbreviate. */
    readonly problems: string[] = [],
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ModelFolderError';
  }
}

export interface ModelComponent<C> {
  config: C;
  configFile: string;
  weightsFile: string;
  /** Canonical names (see weightNames.ts); data are views into one buffer per file. */
  weights: WeightMap;
  metadata: Record<string, string>;
}

export interface TokenizerFiles {
  vocabFile: string;
  mergesFile: string;
  configFile: string;
  specialTokensMapFile: string | null;
}

export interface ModelFolder {
  /** Folder base name, e.g. "stable-diffusion-v1-5". */
  name: string;
  dir: string;
  variant: string | null;
  modelIndex: Record<string, unknown>;
  unet: ModelComponent<UNetConfig>;
  textEncoder: ModelComponent<ClipTextConfig>;
  vae: ModelComponent<VaeConfig>;
  tokenizer: TokenizerFiles;
  /** scheduler/scheduler_config.json as written; schedulers apply their own defaults. */
  schedulerConfig: Record<string, unknown>;
}

export interface LoadModelFolderOptions {
  /** Weight file variant: "fp16" loads diffusion_pytorch_model.fp16.safetensors etc. */
  variant?: 'fp16' | string;
}

/** Problems listed in an error message before "… and N more" (all are in error.problems). */
const MAX_LISTED = 40;

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Config files may hold Python's NaN / Infinity / -Infinity (configJson.ts); every other JSON file is strict. */
function readJsonObject(file: string, what: 'config' | 'tokenizer file'): Record<string, unknown> {
  if (!isFile(file)) throw new ModelFolderError(file, `missing ${what}: ${path.basename(path.dirname(file))}/${path.basename(file)}`);
  let v: unknown;
  try {
    const text = fs.readFileSync(file, 'utf8');
    v = what === 'config' ? parseConfigJson(text) : JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(file, `bad JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelFolderError(file, 'bad JSON: expected an object');
  return v as Record<string, unknown>;
}

function parseConfig<C>(file: string, parse: (c: Record<string, unknown>, file: string) => C): C {
  const json = readJsonObject(file, 'config');
  try {
    return parse(json, file);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelFolderError(file, `bad config: ${e.reason}`);
    throw e;
  }
}

/** `<base>[.<variant>].safetensors`, with a clear reason when only .bin files or other variants exist. */
function findWeightsFile(dir: string, base: string, variant: string | null): string {
  const wanted = path.join(dir, `${base}${variant ? `.${variant}` : ''}.safetensors`);
  if (isFile(wanted)) return wanted;
  const present = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.(safetensors|bin)$/.test(f)).sort() : [];
  if (variant) {
    throw new ModelFolderError(wanted, `missing variant file ${path.basename(wanted)} for variant "${variant}" (found: ${present.join(', ') || 'nothing'})`);
  }
  if (present.some((f) => f.endsWith('.bin')) && !present.some((f) => f.endsWith('.safetensors'))) {
    throw new ModelFolderError(wanted, `only PyTorch .bin weights found (${present.join(', ')}); only safetensors are supported — convert the weights to .safetensors`);
  }
  throw new ModelFolderError(wanted, `missing weights file ${path.basename(wanted)} (found: ${present.join(', ') || 'nothing'})`);
}

/** How one sub-folder (unet/, text_encoder/, vae/) is read and checked. */
interface ComponentSpec<C> {
  folder: string;
  /** Weights file name without variant and extension. */
  base: string;
  parse: (c: Record<string, unknown>, file: string) => C;
  expected: (cfg: C) => ExpectedTensors;
  rename: WeightRenamer;
  /** Tensors in the file that are neither needed nor an error. */
  isAllowedExtra?: (name: string) => boolean;
  /** Tensors to skip entirely (validated for layout, any standard dtype, not returned). */
  skip?: SkipTensor;
}

const UNET: ComponentSpec<UNetConfig> = {
  folder: 'unet', base: 'diffusion_pytorch_model', parse: parseUNetConfig, expected: expectedUNetTensors, rename: keepWeightName,
};
const TEXT_ENCODER: ComponentSpec<ClipTextConfig> = {
  folder: 'text_encoder', base: 'model', parse: parseClipTextConfig, expected: expectedClipTensors, rename: keepWeightName,
  // Older exports save the non-persistent int64 position_ids buffer; it is not a weight.
  skip: (name) => name === 'text_model.embeddings.position_ids',
};
const VAE: ComponentSpec<VaeConfig> = {
  folder: 'vae', base: 'diffusion_pytorch_model', parse: parseVaeConfig, expected: expectedVaeDecoderTensors, rename: renameVaeWeight,
  isAllowedExtra: isVaeEncoderTensor,
};

interface PlannedComponent<C> {
  spec: ComponentSpec<C>;
  config: C;
  configFile: string;
  weightsFile: string;
}

/** Header-only check of one weights file against the tensors its architecture expects. */
function planComponent<C>(root: string, spec: ComponentSpec<C>, variant: string | null): PlannedComponent<C> {
  const dir = path.join(root, spec.folder);
  const configFile = path.join(dir, 'config.json');
  const config = parseConfig(configFile, spec.parse);
  const weightsFile = findWeightsFile(dir, spec.base, variant);
  const header = wrapSafetensors(() => readSafetensorsHeader(weightsFile, spec.skip));
  const found = renameAll(header.entries, spec.rename, weightsFile);
  const lines = weightCheckLines(checkWeights(spec.expected(config), found, spec.isAllowedExtra));
  if (lines.length > 0) {
    const shown = lines.slice(0, MAX_LISTED).join('; ');
    const more = lines.length > MAX_LISTED ? `; … and ${lines.length - MAX_LISTED} more (see error.problems)` : '';
    throw new ModelFolderError(weightsFile, `weights do not match ${spec.folder}/config.json (${lines.length} problems): ${shown}${more}`, lines);
  }
  return { spec, config, configFile, weightsFile };
}

function renameAll(entries: NamedShape[], renamer: WeightRenamer, file: string): NamedShape[] {
  const out: NamedShape[] = [];
  const seen = new Set<string>();
  for (const e of entries) {
    const r = renamer(e.name, e.shape);
    if (seen.has(r.name)) throw new ModelFolderError(file, `tensor ${e.name} duplicates ${r.name} after renaming old names`);
    seen.add(r.name);
    out.push(r);
  }
  return out;
}

function wrapSafetensors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SafetensorsError) throw new ModelFolderError(e.file, e.reason);
    throw e;
  }
}

function loadComponent<C>(plan: PlannedComponent<C>): ModelComponent<C> {
  const file = wrapSafetensors(() => readSafetensors(plan.weightsFile, { skip: plan.spec.skip }));
  const weights: WeightMap = new Map();
  for (const t of file.tensors.values()) {
    const r = plan.spec.rename(t.name, t.shape);
    weights.set(r.name, { ...t, name: r.name, shape: r.shape });
  }
  return { config: plan.config, configFile: plan.configFile, weightsFile: plan.weightsFile, weights, metadata: file.metadata };
}

function findTokenizerFiles(dir: string, vocabSize: number): TokenizerFiles {
  const need = (f: string) => {
    const p = path.join(dir, f);
    if (!isFile(p)) throw new ModelFolderError(p, `missing tokenizer file: tokenizer/${f}`);
    return p;
  };
  const vocabFile = need('vocab.json');
  const mergesFile = need('merges.txt');
  const configFile = need('tokenizer_config.json');
  readJsonObject(configFile, 'config');
  const special = path.join(dir, 'special_tokens_map.json');
  const specialTokensMapFile = isFile(special) ? special : null;
  if (specialTokensMapFile) readJsonObject(specialTokensMapFile, 'config');
  // An id ≥ vocab_size would surface much later as an out-of-range Gather in the text encoder graph.
  const vocab = readJsonObject(vocabFile, 'tokenizer file');
  for (const [tok, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new ModelFolderError(vocabFile, `token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}, outside text_encoder vocab_size ${vocabSize}`);
    }
  }
  return { vocabFile, mergesFile, configFile, specialTokensMapFile };
}

export function loadModelFolder(dir: string, opts: LoadModelFolderOptions = {}): ModelFolder {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new ModelFolderError(root, 'missing model folder');
  const variant = opts.variant ?? null;

  // 1. configs and weight headers (cheap), so a bad folder fails before any weight data is read
  const modelIndex = readJsonObject(path.join(root, 'model_index.json'), 'config');
  const unet = planComponent(root, UNET, variant);
  const textEncoder = planComponent(root, TEXT_ENCODER, variant);
  const vae = planComponent(root, VAE, variant);
  if (unet.config.crossAttentionDim !== textEncoder.config.hiddenSize) {
    throw new ModelFolderError(unet.configFile, `cross_attention_dim ${unet.config.crossAttentionDim} ≠ text encoder hidden_size ${textEncoder.config.hiddenSize}`);
  }
  if (unet.config.inChannels !== vae.config.latentChannels) {
    throw new ModelFolderError(unet.configFile, `in_channels ${unet.config.inChannels} ≠ VAE latent_channels ${vae.config.latentChannels}`);
  }
  const tokenizer = findTokenizerFiles(path.join(root, 'tokenizer'), textEncoder.config.vocabSize);
  const schedulerConfig = readJsonObject(path.join(root, 'scheduler', 'scheduler_config.json'), 'config');

  // 2. weights
  return {
    name: path.basename(root),
    dir: root,
    variant,
    modelIndex,
    unet: loadComponent(unet),
    textEncoder: loadComponent(textEncoder),
    vae: loadComponent(vae),
    tokenizer,
    schedulerConfig,
  };
}
