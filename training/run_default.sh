#!/bin/sh
# Stage 1 (VAE) then stage 2 (UNet + text encoder) of the bundled default model, in the background:
#   nohup sh training/run_default.sh > training/runs/default/pipeline.log 2>&1 &
# Both stages resume from their checkpoints when re-run; the VAE stage is skipped once runs/default/vae.pt exists.
# NICE (default 10) sets the priority; the UNet stage stops (checkpoint + export) at STOP_AT UTC.
cd "$(dirname "$0")/.." || exit 1
mkdir -p training/runs/default
NICE=${NICE:-10}
STOP_AT=${STOP_AT:-17:25}
nice -n "$NICE" /usr/bin/python3 training/train_vae.py --run default --steps 700 --minutes 25 >> training/runs/default/vae.log 2>&1 || exit 1
exec nice -n "$NICE" /usr/bin/python3 training/train.py --run default --stop-at "$STOP_AT" --eval-min 25 --dec-every 2 >> training/runs/default/train.log 2>&1
