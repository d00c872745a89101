// The record a --state directory keeps per node (DIR/nodes/<id>/node.json): the settings that made
// the node, how it was made (mode, mask, timings) and what its cache holds. Parsing checks every
// field and names the file and the field that is wrong: a hand-edited or truncated record is refused,
// never half-used.

import { isSchedulerName, type SchedulerName } from '../scheduler';
import { WEIGHT_FORMATS, type WeightFormat } from '../graph/graphBuilder';

export const NODE_RECORD_FORMAT = 1;

export type NodeMode = 'DENSE' | 'SPARSE' | 'PARENT';
export const NODE_MODES: readonly NodeMode[] = ['DENSE', 'SPARSE', 'PARENT'];

/** What the activation cache (DIR/cache) holds for the node. */
export interface NodeCacheInfo {
  /** Activations were recorded for this node (false: latents only; an edit re-records or runs dense). */
  recorded: boolean;
  /** The node whose cache this node's deltas overlay (null: self-contained or nothing recorded). */
  base: string | null;
  /** Entry names recorded per step (what an edit checks before relying on the cache). */
  names: string[];
  /** Bytes this node adds to the cache (its own full entries or deltas, not its base's). */
  bytes: number;
}

export interface NodeEditInfo {
  strategy: string;
  /** Dense steps run with the new prompt before the mask was fixed (FISEdit's k). */
  captureSteps: number;
  /** decideEditMode's sentence, or why the edit ran dense. */
  reason: string;
  /** How the parent's missing cache was replaced, if it was. */
  cacheFallback: 'RERECORDED' | 'DENSE' | null;
  /** Latent-resolution fraction of the mask per UNet level (level 0 = the latent). */
  maskedFractionPerLevel: number[];
}

export interface NodeRecord {
  format: typeof NODE_RECORD_FORMAT;
  id: string;
  parentId: string | null;
  /** Creation order within the store (1, 2, …): the default parent of an edit is the highest. */
  seq: number;
  createdAt: string;
  model: string;
  /** Absolute model folder the node was made with; absent in records written before it was recorded. */
  modelDir?: string;
  /** UNet weight storage it was made with when not fp32 ('int8': graph/quantizedWeights.ts); its edits use the same. */
  weights?: WeightFormat;
  prompt: string;
  negativePrompt: string;
  /** Decimal string (64-bit seeds do not fit a JSON number); null when the noise came from a file (noise.npy). */
  seed: string | null;
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
  width: number;
  height: number;
  /** [C, h, w] of the latents. */
  latentShape: [number, number, number];
  timesteps: number[];
  mode: NodeMode;
  /** Fraction of latent pixels the edit recomputed; null for a root. */
  maskedFraction: number | null;
  /** UNet steps run densely (all of them for a dense node). */
  denseSteps: number;
  timings: Record<string, number>;
  totalMs: number;
  cache: NodeCacheInfo;
  /** Present on edits. */
  edit: NodeEditInfo | null;
  /** Files beside node.json. */
  files: NodeFiles;
}

/**
 * decoder.npy (optional; absent in records written before it existed): the VAE decoder's whole-image
 * context of the node's image (GroupNorm statistics, mid-attention keys/values; regionDecoder.ts),
 * which region decodes of its children normalise and attend with.
 */
export interface NodeFiles {
  image: 'image.png';
  latents: 'latents.npy';
  noise: 'noise.npy' | null;
  mask: 'mask.png' | null;
  decoder: 'decoder.npy' | null;
}

/** A record that cannot be used as written. */
export class NodeRecordError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'NodeRecordError';
  }
}

type Json = Record<string, unknown>;

function field<T>(file: string, o: Json, key: string, ok: (v: unknown) => boolean, what: string): T {
  const v = o[key];
  if (!ok(v)) throw new NodeRecordError(file, `field "${key}" must be ${what} (got ${JSON.stringify(v)?.slice(0, 80)})`);
  return v as T;
}

const isStr = (v: unknown) => typeof v === 'string';
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const isNonNegInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const isStrOrNull = (v: unknown) => v === null || typeof v === 'string';
const isFraction = (v: unknown) => isNum(v) && (v as number) >= 0 && (v as number) <= 1;

function parseCache(file: string, v: unknown): NodeCacheInfo {
  if (!v || typeof v !== 'object') throw new NodeRecordError(file, 'field "cache" must be an object');
  const o = v as Json;
  return {
    recorded: field<boolean>(file, o, 'recorded', (x) => typeof x === 'boolean', 'a boolean'),
    base: field<string | null>(file, o, 'base', isStrOrNull, 'a node id or null'),
    names: field<string[]>(file, o, 'names', (x) => Array.isArray(x) && x.every(isStr), 'an array of strings'),
    bytes: field<number>(file, o, 'bytes', isNonNegInt, 'a non-negative integer'),
  };
}

function parseEdit(file: string, v: unknown): NodeEditInfo | null {
  if (v === null) return null;
  if (!v || typeof v !== 'object') throw new NodeRecordError(file, 'field "edit" must be an object or null');
  const o = v as Json;
  return {
    strategy: field<string>(file, o, 'strategy', isStr, 'a string'),
    captureSteps: field<number>(file, o, 'captureSteps', isNonNegInt, 'a non-negative integer'),
    reason: field<string>(file, o, 'reason', isStr, 'a string'),
    cacheFallback: field<NodeEditInfo['cacheFallback']>(file, o, 'cacheFallback', (x) => x === null || x === 'RERECORDED' || x === 'DENSE', 'RERECORDED, DENSE or null'),
    maskedFractionPerLevel: field<number[]>(file, o, 'maskedFractionPerLevel', (x) => Array.isArray(x) && x.every(isFraction), 'an array of fractions'),
  };
}

/** Parse and check node.json text. `file` names it in errors. */
export function parseNodeRecord(text: string, file: string): NodeRecord {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new NodeRecordError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new NodeRecordError(file, 'must hold a JSON object');
  const o = j as Json;
  if (o.format !== NODE_RECORD_FORMAT) throw new NodeRecordError(file, `unsupported record format ${JSON.stringify(o.format)} (this fisedit reads ${NODE_RECORD_FORMAT})`);
  const steps = field<number>(file, o, 'steps', isPosInt, 'a positive integer');
  const latentShape = field<[number, number, number]>(file, o, 'latentShape', (x) => Array.isArray(x) && x.length === 3 && x.every(isPosInt), '[C, h, w] positive integers');
  const files = o.files as Json | undefined;
  if (!files || typeof files !== 'object') throw new NodeRecordError(file, 'field "files" must be an object');
  if (files.image !== 'image.png' || files.latents !== 'latents.npy' || !(files.noise === null || files.noise === 'noise.npy') || !(files.mask === null || files.mask === 'mask.png') || !(files.decoder === undefined || files.decoder === null || files.decoder === 'decoder.npy')) {
    throw new NodeRecordError(file, `field "files" names unexpected files: ${JSON.stringify(files)}`);
  }
  const rec: NodeRecord = {
    format: NODE_RECORD_FORMAT,
    id: field<string>(file, o, 'id', isStr, 'a string'),
    parentId: field<string | null>(file, o, 'parentId', isStrOrNull, 'a node id or null'),
    seq: field<number>(file, o, 'seq', isPosInt, 'a positive integer'),
    createdAt: field<string>(file, o, 'createdAt', isStr, 'an ISO date string'),
    model: field<string>(file, o, 'model', isStr, 'a string'),
    ...(o.modelDir === undefined ? {} : { modelDir: field<string>(file, o, 'modelDir', isStr, 'a string') }),
    ...(o.weights === undefined ? {} : { weights: field<WeightFormat>(file, o, 'weights', (v): v is WeightFormat => (WEIGHT_FORMATS as readonly unknown[]).includes(v), `one of ${WEIGHT_FORMATS.join(', ')}`) }),
    prompt: field<string>(file, o, 'prompt', isStr, 'a string'),
    negativePrompt: field<string>(file, o, 'negativePrompt', isStr, 'a string'),
    seed: field<string | null>(file, o, 'seed', (x) => x === null || (typeof x === 'string' && /^\d+$/.test(x)), 'a decimal string or null'),
    steps,
    guidance: field<number>(file, o, 'guidance', isNum, 'a number'),
    scheduler: field<SchedulerName>(file, o, 'scheduler', (x) => typeof x === 'string' && isSchedulerName(x), 'a scheduler name'),
    width: field<number>(file, o, 'width', isPosInt, 'a positive integer'),
    height: field<number>(file, o, 'height', isPosInt, 'a positive integer'),
    latentShape,
    timesteps: field<number[]>(file, o, 'timesteps', (x) => Array.isArray(x) && x.length === steps && x.every(isNum), `${steps} numbers`),
    mode: field<NodeMode>(file, o, 'mode', (x) => NODE_MODES.includes(x as NodeMode), NODE_MODES.join(', ')),
    maskedFraction: field<number | null>(file, o, 'maskedFraction', (x) => x === null || isFraction(x), 'a fraction or null'),
    denseSteps: field<number>(file, o, 'denseSteps', isNonNegInt, 'a non-negative integer'),
    timings: field<Record<string, number>>(file, o, 'timings', (x) => !!x && typeof x === 'object' && Object.values(x as Json).every(isNum), 'an object of numbers'),
    totalMs: field<number>(file, o, 'totalMs', isNum, 'a number'),
    cache: parseCache(file, o.cache),
    edit: parseEdit(file, o.edit ?? null),
    files: { image: 'image.png', latents: 'latents.npy', noise: files.noise as 'noise.npy' | null, mask: files.mask as 'mask.png' | null, decoder: (files.decoder ?? null) as 'decoder.npy' | null },
  };
  if (rec.seed === null && rec.files.noise === null) throw new NodeRecordError(file, 'a node needs a seed or a noise.npy file');
  if (rec.parentId === null && rec.edit !== null) throw new NodeRecordError(file, 'a root node (parentId null) cannot carry edit information');
  return rec;
}
