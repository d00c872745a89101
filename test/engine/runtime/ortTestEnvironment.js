// Jest environment for suites that run onnxruntime-node.
//
// Jest runs each test file in its own vm realm, but native addons live in the outer realm: the tensors
// onnxruntime-node returns are outer-realm Float32Array etc., and onnxruntime-common's Tensor (loaded
// inside the test realm) rejects them with "A float32 tensor's data must be type of Float32Array".
// Sharing the outer realm's typed-array constructors with the test realm makes both agree.
// Use with a docblock at the top of the test file:  /** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
];

class OrtTestEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtTestEnvironment;
