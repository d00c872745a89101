// Optional C++ addon (native/, built by `npm ci` via native/build.js). Every method mirrors a TypeScript
// function bit for bit, so callers may use either; without a compiler the addon is absent and nativeAddon()
// returns null: the engine stays pure TypeScript. FISEDIT_NATIVE=0 disables it. All methods are SYNC:
// each is a memory-bound loop of well under a sparse step (bench/native), cheaper than a worker hop.

import * as fs from 'fs';
import * as path from 'path';
import type { RowGeometry } from '../cache/rows';
import type { BinaryMask } from '../mask/binaryMask';
import type { ConvTable } from '../mask/pyramid';

export interface NativeAddon {
  /** Sync. N-API version and build tag. */
  info(): { napiVersion: number; build: string };
  /** Sync. = cache/fp16.ts floatsToHalves (round to nearest even). */
  floatsToHalves(src: Float32Array, dst?: Uint16Array): Uint16Array;
  /** Sync. = cache/fp16.ts halvesToFloats. */
  halvesToFloats(src: Uint16Array, dst?: Float32Array): Float32Array;
  /** Sync. = cache/rows.ts scatterRows; also checks lengths and row bounds (RangeError, target untouched). */
  scatterRows(target: Uint16Array, g: RowGeometry, rows: Int32Array, delta: Uint16Array): void;
  /** Sync. The compose of ActivationCache.readRows: copy base, apply deltas oldest first; into: reuse a buffer. */
  overlayChain(base: Uint16Array, g: RowGeometry, deltas: ReadonlyArray<{ rows: Int32Array; data: Uint16Array }>, into?: Uint16Array): Uint16Array;
  /** Sync. = mask/pyramid.ts buildConvTable (3×3 stride-1 halo + neighbour table). */
  buildConvTable(mask: BinaryMask): ConvTable;
}

export const NATIVE_ADDON_PATH = path.resolve(__dirname, '../../../native/build/Release/fisedit_native.node');

let cached: NativeAddon | null | undefined;

/** The addon, or null when it is not built, fails to load, or FISEDIT_NATIVE=0. */
export function nativeAddon(): NativeAddon | null {
  if (cached === undefined) {
    cached = null;
    if (process.env.FISEDIT_NATIVE !== '0' && fs.existsSync(NATIVE_ADDON_PATH)) {
      try {
        cached = require(NATIVE_ADDON_PATH) as NativeAddon; // eslint-disable-line @typescript-eslint/no-require-imports
      } catch (e) {
        process.emitWarning(`src/engine/native/index.ts: ${NATIVE_ADDON_PATH} did not load (${(e as Error).message}); using TypeScript paths`);
      }
    }
  }
  return cached;
}
