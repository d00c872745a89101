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
