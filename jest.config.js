// Edits choose sparse or dense steps by measured step cost (src/engine/pipeline/stepCosts.ts); off in
// tests (workers and the CLI/engine processes they start inherit it) so fixture edits do not depend on
// the machine's timing. The choice is tested with injected costs.
process.env.FISEDIT_STEP_COSTS ??= 'off';

/** @type {import('jest').Config} */
module.exports = {
  // Shares typed-array constructors with onnxruntime-node's realm (see the file for why).
  testEnvironment: '<rootDir>/test/engine/runtime/ortTestEnvironment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // isolatedModules: type checking runs separately (npm run typecheck) so tests stay fast on 2 cores.
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testTimeout: 120000,
  maxWorkers: 2,
};
