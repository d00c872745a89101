import { GaussianGenerator, gaussianFloat32, parseSeed, SeedError, splitMix64 } from '../../../src/engine/random/gaussian';

// A second, deliberately different implementation of docs/seeds.md: every 32- and 64-bit operation in
// BigInt, one uniform at a time, no caching of the Box–Muller pair.
function referenceStream(seed: bigint, count: number): Float32Array {
  const M64 = (1n << 64n) - 1n;
  const M32 = (1n << 32n) - 1n;
  let sm = seed;
  const mix = (): bigint => {
    sm = (sm + 0x9e3779b97f4a7c15n) & M64;
    let z = sm;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    return z ^ (z >> 31n);
  };
  const z1 = mix();
  const z2 = mix();
  const s = [z1 & M32, z1 >> 32n, z2 & M32, z2 >> 32n];
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M32;
  const next = (): bigint => {
    const result = (rotl((s[1] * 5n) & M32, 7n) * 9n) & M32;
    const t = (s[1] << 9n) & M32;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
    return result;
  };
  const uniform = () => {
    const a = next() >> 5n;
    const b = next() >> 6n;
    return Number((a << 26n) | b) / 2 ** 53;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = uniform();
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(1 - u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

describe('deterministic Gaussian stream (docs/seeds.md)', () => {
  test('SplitMix64 from 0 gives the published first outputs', () => {
    let st = 0n;
    const outs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [n, o] = splitMix64(st);
      st = n;
      outs.push(o.toString(16));
    }
    expect(outs).toEqual(['e220a8397b1dcdaf', '6e789e6aa1b965f4', '6c45d188009454f']);
  });

  test('pinned first values (fingerprint computed once; also reproduced by a numpy version of docs/seeds.md)', () => {
    expect(Array.from(gaussianFloat32(0, 6))).toEqual([
      -0.9758715629577637, -1.7697570323944092, 0.054684631526470184, -0.9459248185157776, 0.35621270537376404, -1.339381456375122,
    ]);
    expect(Array.from(gaussianFloat32(42, 4))).toEqual([1.033046007156372, 0.02586478367447853, -0.578862726688385, -1.3285483121871948]);
    expect(Array.from(gaussianFloat32('18446744073709551615', 3))).toEqual([0.33378979563713074, 0.35269999504089355, -0.15011721849441528]);
  });

  test('matches the independent BigInt re-implementation bit for bit', () => {
    for (const seed of [0n, 1n, 42n, 123456789012345678n, (1n << 64n) - 1n]) {
      expect(gaussianFloat32(seed, 4097)).toEqual(referenceStream(seed, 4097));
    }
  });

  test('a shorter draw is a prefix of a longer one; seeds differ', () => {
    const long = gaussianFloat32(7, 1001);
    expect(gaussianFloat32(7, 333)).toEqual(long.subarray(0, 333));
    expect(gaussianFloat32(8, 16)).not.toEqual(long.subarray(0, 16));
  });

  test('moments of 1e5 samples match N(0, 1) within 5 standard errors', () => {
    const n = 100_000;
    const x = gaussianFloat32(2024, n);
    let sum = 0;
    let sum2 = 0;
    let sum3 = 0;
    let within1 = 0;
    for (const v of x) {
      sum += v;
      sum2 += v * v;
      sum3 += v * v * v;
      if (Math.abs(v) < 1) within1++;
    }
    const mean = sum / n;
    const variance = sum2 / n - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n)); // 0.0158
    expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n)); // 0.0224
    expect(Math.abs(sum3 / n)).toBeLessThan(5 * Math.sqrt(15 / n)); // skewness, sd √15/√n
    expect(Math.abs(within1 / n - 0.682689)).toBeLessThan(5 * Math.sqrt((0.6827 * 0.3173) / n)); // 0.0074
  });

  test('generator exposes the float64 values before float32 rounding', () => {
    const g = new GaussianGenerator(0);
    expect(Math.fround(g.nextGaussian())).toBe(-0.9758715629577637);
  });

  test('seeds are validated', () => {
    expect(parseSeed('  17 ')).toBe(17n);
    expect(() => parseSeed(-1)).toThrow(SeedError);
    expect(() => parseSeed(1.5)).toThrow(/not an integer/);
    expect(() => parseSeed('18446744073709551616')).toThrow(/outside \[0, 2\^64 − 1\]/);
    expect(() => parseSeed('abc')).toThrow(/non-negative decimal/);
  });
});
