// Help texts. The exit codes here mirror exitCodes.ts.
import { GENERATE_DEFAULTS, MAX_GUIDANCE, MAX_STEPS } from '../engine/pipeline/generate';
import { SCHEDULER_NAMES } from '../engine/scheduler';
import { DEVICE_HELP } from './device';
import { GRAPH_CACHE_HELP } from './graphCacheOption';
import { WEIGHTS_HELP } from './weightsOption';

export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    internal error (a bug; please report it)
  2    usage error: unknown command or option, missing or invalid value
  3    model error: model folder missing or unusable (configs, weights, tokenizer, graph/session),
       or --device cannot run here (CUDA providers not installed, no WebGPU adapter)
  4    file error: --init-latents/--mask unreadable, --out/--save-latents not writable, --state
       directory unusable (not a state directory, damaged record)
  5    inference failed while running (runtime error, NaN in the latents)
  130  interrupted (Ctrl-C)
`;

export const MAIN_HELP = `fisedit — text-to-image diffusion on onnxruntime (CPU, or a GPU with --device)

Usage:
  fisedit generate    [--model DIR] --prompt TEXT [options]   generate an image (PNG)
  fisedit edit        --state DIR [--parent ID] --prompt TEXT [options]   edit a stored image
  fisedit encode-text [--model DIR] --prompt TEXT --out FILE.npy   CLIP last_hidden_state [1,77,D]
  fisedit tokenize    [--model DIR] --prompt TEXT             token ids as JSON
  fisedit eval        [--model DIR] [--limit N] [--sheet F.png]   held-out accuracy of a scene model
  fisedit serve       [--port 4000] [--data DIR] [--model DIR]   GraphQL service (npm start)
  fisedit worker      --database-url postgres://… --redis-url redis://…   scale-out worker (docs/scaling.md)
  fisedit token create --user NAME [--data DIR]               create a user if needed, print an API token
  fisedit images copy --to-database | --to-images-dir DIR     move image files to another store (scale-out)
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
      --state DIR          also record the image as a new root node in DIR (created if missing) for
                           fisedit edit: its latents of every step and its UNet activations (only
                           where the step costs measured in DIR say its sparse edits repay them);
                           prints the node id (--json: nodeId, parentId, mode, cacheBytes, recording)
  -o, --out FILE           PNG to write (default fisedit-<seed>.png); metadata in tEXt chunks:
                           prompt, negative, seed, steps, scheduler, guidance, model, width, height
      --variant NAME       load *.NAME.safetensors weight files (e.g. fp16) instead of the default ones
      --json               print one JSON object (settings, timings ms per phase, totalMs) to stdout
      --threads N          onnxruntime threads (default: all cores)
${WEIGHTS_HELP}${GRAPH_CACHE_HELP}${DEVICE_HELP}      --progress MODE      bar | lines | none on stderr (default: bar on a terminal, else none);
                           lines prints "step k/N" per step
  -q, --quiet              same as --progress none
  -h, --help

${EXIT_CODES_HELP}`;

export const ENCODE_TEXT_HELP = `Usage: fisedit encode-text [--model DIR] --prompt TEXT --out FILE.npy [--json] [--device NAME]

Writes the text encoder's last_hidden_state for one prompt as float32 .npy [1, 77, D].

${DEVICE_HELP}
${EXIT_CODES_HELP}`;

export const TOKENIZE_HELP = `Usage: fisedit tokenize [--model DIR] --prompt TEXT

Prints {"ids": [77 ids], "truncated": bool, "droppedTokens": n, "tokens": [BPE pieces]} as JSON.

${EXIT_CODES_HELP}`;

export const EDIT_HELP = `Usage: fisedit edit --state DIR [--parent ID] --prompt TEXT [options]

Creates a child of a node in DIR with a new prompt (same seed, steps, guidance, scheduler, size),
recomputing only the region the edit changes and reusing the parent's cached UNet activations
elsewhere (FISEdit). Outside the mask the image is the parent's, bit for bit.

  -m, --model DIR          model folder (default: the one the parent was made with, recorded in its node.json; models/default for older nodes)
      --state DIR          state directory written by fisedit generate --state
      --parent ID          node to edit (default: the newest node in DIR)
  -p, --prompt TEXT        the new prompt (required, not empty)
      --negative TEXT      negative prompt (default: the parent's)
      --mask FILE.png      where the edit may change things: white = edit, black = keep; the size of
                           the image. With a mask the edit is sparse from step 0
      --strategy S         auto | latent | attention | mask | dense (default auto: the mask if given,
                           else latent). latent = FISEdit target-area capture: the first k steps run
                           dense with the new prompt, the mask is where the latents moved. dense =
                           regenerate everything. attention = the first k steps run dense, the mask
                           is where the changed words' cross-attention maps concentrate
      --capture-steps K    k for latent (default 30 % of the steps) or attention (default 10 %), >= 1
      --dilation N         also recompute N latent pixels around the mask in the sparse steps
                           (default: 1/16 of the latent side for a found mask, latent or attention,
                           which lets its border see the new prompt; 0 for --mask, as FISEdit; the
                           pixels that may change are the same, only the work grows)
      --coarse-cover R     any (default) | half: which coarse UNet pixels the sparse steps recompute:
                           every one the mask touches, as FISEdit, or those it covers at least half
                           of (less work at large masks; the region's border reads the parent's
                           coarse features there, so it is not exact)
      --dense-above F      run dense when the mask covers more than F of the latent (default 0.6)
      --cache-fallback P   when the parent's cache is gone: rerecord (default; rebuild it from its
                           stored latents) or dense (run this edit dense)
      --save-mask FILE.png write the latent mask used, scaled to the image
      --decode MODE        auto (default) | sparse | crop | full. sparse runs the VAE decoder on
                           the affected pixels alone, reading the rest of every decoder layer from
                           the parent's recorded decode (needs the parent's decoder activations in
                           the cache); crop decodes the affected region's bounding box plus a margin
                           with the parent's whole-image statistics; full decodes everything. auto:
                           full where decoding is cheap (small decoders such as the bundled
                           model's), else sparse while it is under 60 % of the decoder's work, else
                           crop while the box is at most 3/4 of the latent, else full
  -o, --out FILE           PNG to write (default fisedit-edit-of-<parent>.png)
      --json               one JSON object: nodeId, parentId, mode (SPARSE | DENSE | PARENT), reason,
                           maskedFraction (overall and per UNet level), denseSteps, sparseSteps,
                           cacheFallback (RERECORDED | DENSE | null), cacheBytes, decodeMethod
                           (SPARSE | BOX | FULL) with decodeMacFraction or decodeBox, timings (ms
                           per phase), totalMs (without model loading and writing)
      --threads N          onnxruntime threads (default: all cores)
${WEIGHTS_HELP}${GRAPH_CACHE_HELP}${DEVICE_HELP}      --progress MODE      bar | lines | none on stderr (default: bar on a terminal, else none)
  -q, --quiet              same as --progress none
  -h, --help

${EXIT_CODES_HELP}`;
