// Deterministic standard-normal generator: one seed gives the same initial latents, and so the same image,
// on every machine. The algorithm is specified exactly here and in docs/seeds.md so other implementations
// can reproduce it:
//
//   1. seed: an integer in [0, 2^64 − 1].
//   2. SplitMix64 (Steele, Lea, Flood 2014) seeded with the seed produces two 64-bit outputs z1, z2:
//        state += 0x9E3779B97F4A7C15; z = state;
//        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^= z >> 31
//      (all mod 2^64). xoshiro128** state: s0 = low32(z1), s1 = high32(z1), s2 = low32(z2), s3 = high32(z2).
//      (SplitMix64's output function is a bijection, so z1 ≠ z2 and the state is never all zero.)
//   3. xoshiro128** 1.1 (Blackman, Vigna 2018) gives 32-bit words:
//        result = rotl(s1 * 5, 7) * 9; t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
//   4. A uniform u in [0, 1) from two consecutive words a, b: u = ((a >> 5) · 2^26 + (b >> 6)) / 2^53.
//   5. Box–Muller in IEEE float64 from two uniforms u1 then u2 (four words):
//        r = sqrt(−2 · ln(1 − u1)),  θ = (2π as float64) · u2,  z0 = r · cos θ,  z1 = r · sin θ
//      The stream is z0, z1, z0', z1', …; each value is rounded to float32 (round to nearest even).
//      For an odd count the last pair's z1 is dropped, so a shorter draw is a prefix of a longer one.
//   6. Latents [1, 4, h, w] take the stream in NCHW (row-major) order.
//
// V8 computes ln, cos and sin with its own fdlibm port, identical on every platform, so Node gives
// bit-identical results everywhere. Another language's libm may differ in the last float64 bit; after
// rounding to float32 that changes a value only in rare ties (see docs/seeds.md).

export class SeedError extends Error {
  constructor(reason: string) {
    super(`seed: ${reason}`);
    this.name = 'SeedError';
  }
}

const MASK64 = (1n << 64n) - 1n;
export const MAX_SEED = MASK64;

/** Accepts a non-negative integer (number, bigint or decimal string) below 2^64. */
export function parseSeed(seed: number | bigint | string): bigint {
  let v: bigint;
  if (typeof seed === 'bigint') v = seed;
  else if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) throw new SeedError(`${seed} is not an integer in [0, 2^53); pass larger seeds as a bigint or string`);
    v = BigInt(seed);
  } else {
    if (!/^\d+$/.test(seed.trim())) throw new SeedError(`"${seed}" is not a non-negative decimal integer`);
    v = BigInt(seed.trim());
  }
  if (v < 0n || v > MASK64) throw new SeedError(`${v} is outside [0, 2^64 − 1]`);
  return v;
}

/** SplitMix64: returns [next state, output]. */
export function splitMix64(state: bigint): [bigint, bigint] {
  const s = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [s, z ^ (z >> 31n)];
}

const TWO_PI = 2 * Math.PI;

export class GaussianGenerator {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number | bigint | string) {
    const [st, z1] = splitMix64(parseSeed(seed));
    const [, z2] = splitMix64(st);
    this.s0 = Number(z1 & 0xffffffffn) | 0;
    this.s1 = Number(z1 >> 32n) | 0;
    this.s2 = Number(z2 & 0xffffffffn) | 0;
    this.s3 = Number(z2 >> 32n) | 0;
  }

  /** Next xoshiro128** word as an unsigned 32-bit integer. */
  nextUint32(): number {
    const s1 = this.s1;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextUniform(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Next standard normal in float64 (before the float32 rounding that `fill` applies). */
  nextGaussian(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    const u1 = this.nextUniform();
    const u2 = this.nextUniform();
    const r = Math.sqrt(-2 * Math.log(1 - u1));
    const theta = TWO_PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fills `out` with the next values of the stream, rounded to float32. */
  fill(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.nextGaussian();
    return out;
  }
}

/** The first `count` values of the seed's stream, as float32 (e.g. initial latents of 4·h·w values). */
export function gaussianFloat32(seed: number | bigint | string, count: number): Float32Array {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`gaussianFloat32: count must be a non-negative integer (got ${count})`);
  return new GaussianGenerator(seed).fill(new Float32Array(count));
}
