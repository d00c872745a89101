#!/usr/bin/env bash
# One device call that spends a GPU lease on both GPU jobs of the project, in this order:
#   1. the engine bench (bench/gpu/run.sh) inside --bench-s, its numbers first because they are the ones
#      the GPU issue is judged by;
#   2. training of the bundled model (training/gpu/run.sh) for --train-s;
# and packs what comes back into at most 8 files, as the device tool returns ($OUT: logs.tgz with every
# log, curve and bench JSON, plus the training runs' weight parts, each under 16 MiB).
#
#   run(command: "bash bench/gpu/lease.sh --bench-s 300 --train-s 200", carry: [".gpu-bundle", ".gl"], timeout_s: ...)
#
# timeout_s should be bench-s + train-s + 90 (training start-up, evaluation and export). .gl holds the
# GL/Vulkan loader packages the H200 needs (bench/gpu/README.md); without it the system's loader is used.
# Extra arguments after -- go to the bench (bench.ts options), e.g. -- --e2e-fractions 0.1,0.25.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
BENCH_S=300 TRAIN_S=200 TRAIN_ARGS=() BENCH_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bench-s) BENCH_S=$2; shift 2 ;;
    --train-s) TRAIN_S=$2; shift 2 ;;
    --only) TRAIN_ARGS+=(--only "$2"); shift 2 ;;
    --) shift; BENCH_ARGS=("$@"); break ;;
    *) echo "lease.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
RESULT=${OUT:-$ROOT/bench/gpu/lease-out}
WORK=$(mktemp -d)
mkdir -p "$RESULT" "$WORK/bench" "$WORK/train"

# Only on a machine without a Vulkan loader (the GPU machine): never over a system's own libraries.
if [ -d .gl ] && ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
done

pack() {
  tar czf "$RESULT/logs.tgz" --exclude='weights*' -C "$WORK" bench train
  cp "$WORK"/train/weights_gpu_* "$RESULT"/ 2>/dev/null
  ls -la "$RESULT"
}
trap pack EXIT

if [ "$BENCH_S" -gt 0 ]; then
  OUT="$WORK/bench" bash bench/gpu/run.sh --budget-s "$BENCH_S" --skip-torch -- --devices webgpu --e2e-devices webgpu "${BENCH_ARGS[@]}"
  echo "lease.sh: bench exit $?"
fi
if [ "$TRAIN_S" -gt 0 ]; then
  OUT="$WORK/train" timeout $(( TRAIN_S + 75 )) bash training/gpu/run.sh --seconds "$TRAIN_S" "${TRAIN_ARGS[@]}" > "$WORK/train/run.txt" 2>&1
  echo "lease.sh: training exit $?"
  tail -n 25 "$WORK/train/run.txt"
fi
