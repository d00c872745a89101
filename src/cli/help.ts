// Help texts. The exit codes here mirror exitCodes.ts.
import { GENERATE_DEFAULTS, MAX_GUIDANCE, MAX_STEPS } from '../engine/pipeline/generate';
import { SCHEDULER_NAMES } from '../engine/scheduler';

export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    internal error (a bug; please report it)
  2    usage error: unknown command or option, missing or invalid value
  3    model error: model folder missing or unusable (configs, weights, tokenizer, graph/session)
  4    file error: --init-latents unreadable or unusable, --out/--save-latents not writable
  5    inference failed while running (runtime error, NaN in the latents)
  130  interrupted (Ctrl-C)
`;

export const MAIN_HELP = `fisedit — text-to-image diffusion on onnxruntime (CPU)

Usage:
  fisedit generate    [--model DIR] --prompt TEXT [options]   generate an image (PNG)
  fisedit encode-text [--model DIR] --prompt TEXT --out FILE.npy   CLIP last_hidden_state [1,77,D]
  fisedit tokenize    [--model DIR] --prompt TEXT             token ids as JSON
  fisedit eval        [--model DIR] [--limit N] [--sheet F.png]   held-out accuracy of a scene model
  fisedit --help | --version
  fisedit COMMAND --help

--model defaults to the bundled model (models/default).

${EXIT_CODES_HELP}`;

export const GENERATE_HELP = `Usage: fisedit generate [--model DIR] --prompt TEXT [options]

  -m, --model DIR          diffusers-layout model folder (default: models/default)
  -p, --prompt TEXT        what to draw (CLIP keeps the first 75 tokens)
      --negative TEXT      negative prompt (default ""; needs --guidance > 1)
      --seed N             integer in [0, 2^64-1] (default: random, printed); see docs/seeds.md
      --steps N            denoising steps, 1-${MAX_STEPS} (default ${GENERATE_DEFAULTS.steps})
      --guidance F         classifier-free guidance scale, 0-${MAX_GUIDANCE} (default ${GENERATE_DEFAULTS.guidance}; CFG iff > 1)
      --scheduler NAME     ${SCHEDULER_NAMES.join(' | ')} (default ${GENERATE_DEFAULTS.scheduler})
      --width W            image width in pixels (default: the model's sample size; a multiple of the
      --height H           model's VAE × UNet downscale, 64 for SD 1.5)
      --init-latents FILE  start from this unit-variance noise (.npy float32 [1,4,h,w]) instead of
                           the seeded draw; it is scaled by the scheduler's init sigma. Excludes --seed;
                           width/height default to its size
      --save-latents FILE  also write the final latents (.npy float32 [1,4,h,w], before VAE scaling)
  -o, --out FILE           PNG to write (default fisedit-<seed>.png); metadata in tEXt chunks:
                           prompt, negative, seed, steps, scheduler, guidance, model, width, height
      --json               print one JSON object (settings, timings ms per phase, totalMs) to stdout
      --threads N          onnxruntime threads (default: all cores)
      --progress MODE      bar | lines | none on stderr (default: bar on a terminal, else none);
                           lines prints "step k/N" per step
  -q, --quiet              same as --progress none
  -h, --help

${EXIT_CODES_HELP}`;

export const ENCODE_TEXT_HELP = `Usage: fisedit encode-text [--model DIR] --prompt TEXT --out FILE.npy [--json]

Writes the text encoder's last_hidden_state for one prompt as float32 .npy [1, 77, D].

${EXIT_CODES_HELP}`;

export const TOKENIZE_HELP = `Usage: fisedit tokenize [--model DIR] --prompt TEXT

Prints {"ids": [77 ids], "truncated": bool, "droppedTokens": n, "tokens": [BPE pieces]} as JSON.

${EXIT_CODES_HELP}`;
