// FISEDIT_DEVICE_CACHE_BYTES: the device tier's budget for the engine worker (engineState.ts).
import { deviceCacheBytesFromEnv } from '../../../src/service/inference/engineState';

describe('FISEDIT_DEVICE_CACHE_BYTES', () => {
  test('unset or empty leaves the engine default; 0 turns the tier off; bytes are taken as given', () => {
    expect(deviceCacheBytesFromEnv({})).toBeUndefined();
    expect(deviceCacheBytesFromEnv({ FISEDIT_DEVICE_CACHE_BYTES: ' ' })).toBeUndefined();
    expect(deviceCacheBytesFromEnv({ FISEDIT_DEVICE_CACHE_BYTES: '0' })).toBe(0);
    expect(deviceCacheBytesFromEnv({ FISEDIT_DEVICE_CACHE_BYTES: String(8 * 2 ** 30) })).toBe(8 * 2 ** 30);
  });

  test.each(['-1', '1.5', '6GiB', 'lots', '1e40'])('%s is refused, naming the variable', (v) => {
    expect(() => deviceCacheBytesFromEnv({ FISEDIT_DEVICE_CACHE_BYTES: v })).toThrow(/FISEDIT_DEVICE_CACHE_BYTES must be a non-negative integer/);
  });
});
