#!/usr/bin/env bash
# The GPU bench on a machine with no Node and no network (issue 14), from the offline bundle that
# `npm run bundle:gpu` wrote to .gpu-bundle/ (carried there by the device tool). Run from anywhere:
#
#   bash bench/gpu/run.sh [--quick] [--budget-s 450] [--skip-torch] [-- bench.ts arguments …]
#
# 1. unpacks node, onnxruntime and the app bundle to $FISEDIT_GPU_WORK (default /tmp/fisedit-gpu), and
#    Debian's Vulkan loader beside them (dpkg-deb -x; nothing is written to /), used only when the
#    system has no libvulkan.so.1; points the loader at NVIDIA's ICD file when one is installed;
# 2. times the PyTorch reference UNet (bench/gpu/torch_anchor.py) on CUDA, fp32 and fp16 — the anchor —
#    while node writes the random weights (bench.js --prepare-only) beside it;
# 3. runs bench.js: attention forms, dense step webgpu vs cpu at 256/512 px (with a per-kernel GPU
#    profile and the candidate attention forms / EP options of the 512 px step), sparse steps at 2–50 % of
#    512 px, edit end to end vs dense regeneration, on SD-1.5-width random weights written to /tmp.
# The whole run keeps inside --budget-s (default 450 s, under the 8 minutes asked for); results go to
# $OUT (gpu-bench.json, torch-anchor.json, run.log) when OUT is set.
# --quick: CPU-sized (narrow preset, 64/128 px, torch on the CPU, one thread) to check the bundle here.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUNDLE="${FISEDIT_GPU_BUNDLE:-$ROOT/.gpu-bundle}"
WORK="${FISEDIT_GPU_WORK:-/tmp/fisedit-gpu}"
PY="${PYTHON:-python3}"
BUDGET=450
QUICK=""
TORCH=1
BENCH_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --budget-s) BUDGET="$2"; shift ;;
    --skip-torch) TORCH="" ;;
    --) shift; BENCH_ARGS+=("$@"); break ;;
    *) BENCH_ARGS+=("$1") ;;
  esac
  shift
done
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/run.log") 2>&1
fi

for f in node.xz ort.tar.xz app.tar.xz; do
  [ -f "$BUNDLE/$f" ] || { echo "run.sh: $BUNDLE/$f missing: build it with npm run bundle:gpu and carry .gpu-bundle" >&2; exit 2; }
done

# 1. unpack (xz -T0: every core)
rm -rf "$WORK" && mkdir -p "$WORK/app" "$WORK/sysroot" "$WORK/xdg"
chmod 700 "$WORK/xdg"
xz -T0 -dc "$BUNDLE/node.xz" > "$WORK/node" && chmod +x "$WORK/node"
xz -T0 -dc "$BUNDLE/ort.tar.xz" | tar xf - -C "$WORK/app"
xz -T0 -dc "$BUNDLE/app.tar.xz" | tar xf - -C "$WORK/app"
for d in "$WORK"/app/debs/*.deb; do dpkg-deb -x "$d" "$WORK/sysroot"; done
# (grep without -q: with pipefail, grep -q quitting early would fail the pipeline through SIGPIPE)
if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; then
  export LD_LIBRARY_PATH="$WORK/sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "run.sh: no system Vulkan loader; using the bundle's ($(ls "$WORK"/app/debs))"
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "$QUICK" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK/xdg}"
echo "run.sh: unpacked in $(( $(date +%s) - START )) s; node $("$WORK/node" --version); VK_DRIVER_FILES=${VK_DRIVER_FILES:-<default>}; $(cat "$WORK/app/MANIFEST.json" | tr -d '\n ')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# 2. PyTorch anchor (at most 120 s; 40 s with --quick), while node writes the random weights (4 GB) beside it
PREP_ARGS=(--prepare-only)
[ -n "$QUICK" ] && PREP_ARGS+=(--quick)
"$WORK/node" "$WORK/app/bench.js" "${PREP_ARGS[@]}" "${BENCH_ARGS[@]}" &
PREP=$!
if [ -n "$TORCH" ]; then
  TA=(--out "${OUT:-$WORK}/torch-anchor.json")
  [ -n "$QUICK" ] && TA+=(--quick)
  PYTHONUNBUFFERED=1 timeout $([ -n "$QUICK" ] && echo 40 || echo 120) "$PY" "$HERE/torch_anchor.py" "${TA[@]}" || echo "run.sh: torch anchor failed or timed out (exit $?)"
fi

wait "$PREP" || { echo "run.sh: writing the random model failed" >&2; exit 4; }

# 3. the engine bench, inside what is left of the budget (30 s kept for the report and shutdown)
NB=$(( $(left) - 30 ))
[ "$NB" -lt 30 ] && { echo "run.sh: only $(left) s of the budget left, engine bench not run" >&2; exit 3; }
BA=(--budget-s "$NB")
[ -n "$QUICK" ] && BA+=(--quick)
[ -n "${OUT:-}" ] && BA+=(--out "$OUT/gpu-bench.json")
timeout $(( NB + 25 )) "$WORK/node" "$WORK/app/bench.js" "${BA[@]}" "${BENCH_ARGS[@]}"
rc=$?
echo "run.sh: done in $(( $(date +%s) - START )) s (budget $BUDGET s), bench exit $rc"
exit $rc
