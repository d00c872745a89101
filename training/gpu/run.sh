#!/bin/bash
# One-shot GPU training of the bundled model (issue 19), run from the repo root on the device machine:
#   bash training/gpu/run.sh --seconds 330            # writes to $OUT (default training/runs/gpu_out)
# Trains two models side by side on the one GPU, each for --seconds of wall clock (lr cosine to 10% over them),
# both continued from models/default (--init-from), lr 3e-4:
#   v1:  the plain recipe (the control; with a v1c models/default it continues v1c the plain way);
#   v1c: coordinate input channels (common.UNET_CONFIG_V1C), --layout-weight 6 and --mirror-pairs (issue 19's
#        left/right diagnosis, training/README.md "Session 14").
#   (--only v2: the older experiment, cross-attention also at 16x16 and a 4x256 text encoder, from scratch.)
# Both train on the latents of models/default's VAE (no decoder fine-tuning), batch 256, bf16 autocast, and
# score their EMA weights on all 100 held-out captions (DPM-Solver++ 20 steps, CFG 4.5, checker.py) at the
# start, every --eval-every s and at the end. Outputs (8 files, each <= 15 MiB):
#   curve_<run>.csv             held-out curve (utc, step, train_min, guidance, colour_pos, shape, background, scene)
#   log_<run>.txt               training logs
#   weights_gpu_<run>.part*of*  EMA UNet + text encoder F32, rewritten at every evaluation;
#                               training/gpu/import_weights.py turns them into a diffusers folder.
# Options: --seconds N (330), --batch B (256), --eval-every S (60), --only v1|v1c|v2; for a CPU smoke test also
# --eval-n K (100: held-out captions per evaluation) and --workers W (6: data processes per run).
set -u
cd "$(dirname "$0")/../.." || exit 1
SECS=330 BATCH=256 EVAL=60 ONLY="" EVAL_N=100 WORKERS=6
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --eval-every) EVAL=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --eval-n) EVAL_N=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-training/runs/gpu_out}
mkdir -p "$OUT" training/runs
rm -f "$OUT"/curve_*.csv "$OUT"/weights_gpu_*.part*
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2
RUNS=(v1 v1c)
[ -n "$ONLY" ] && RUNS=("$ONLY")
for r in "${RUNS[@]}"; do { date -u; nvidia-smi -L 2>&1; } > "$OUT/log_$r.txt" 2>&1; done

# The torch scene renderer against scenes.render on this device (seconds, on the CPU cores beside the training).
$PY training/test_gpu_render.py --device auto --n 400 > training/runs/render_check.txt 2>&1 &
render_pid=$!

COMMON=(--device auto --batch "$BATCH" --seconds "$SECS" --eval-every-s "$EVAL" --eval-n "$EVAL_N" --no-export
        --loss-curve "" --out "$OUT" --dec-every 0 --ckpt-min 100000 --workers "$WORKERS" --threads 2)
pids=()
start() {  # name, then train.py arguments; both runs start at once
  local name=$1; shift
  rm -rf "training/runs/gpu_$name"
  ( $PY training/vae_from_folder.py --from models/default --run "gpu_$name" &&
    exec $PY training/train.py --run "gpu_$name" --curve "$OUT/curve_$name.csv" "${COMMON[@]}" "$@" ) >> "$OUT/log_$name.txt" 2>&1 &
  pids+=($!)
}
V1_ARCH=v1
grep -q '"coord_channels"' models/default/unet/config.json && V1_ARCH=v1c   # v1 cannot load a v1c folder
for r in "${RUNS[@]}"; do
  case "$r" in
    v1) start v1 --arch "$V1_ARCH" --init-from models/default --lr 3e-4 --warmup 100 --eval-at-start ;;
    v1c) start v1c --arch v1c --init-from models/default --lr 3e-4 --warmup 100 --eval-at-start --layout-weight 6 --mirror-pairs ;;
    v2) start v2 --arch v2 --lr 8e-4 --warmup 300 ;;
    *) echo "run.sh: --only v1|v1c|v2, not $r" >&2; exit 2 ;;
  esac
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
wait "$render_pid"; echo "render check (exit $?): $(cat training/runs/render_check.txt)" | tee -a "$OUT/log_${RUNS[0]}.txt"
for f in "$OUT"/curve_*.csv; do echo "== $f"; cat "$f"; done
tail -n 3 "$OUT"/log_*.txt
ls -la "$OUT"
exit $rc
