#!/usr/bin/env bash
# A GPU session in one command, on any machine with a CUDA GPU and a checkout of this repository:
# benchmarks/gpu_sweep.py (a recipe chosen on a validation split, then resnet18, seresnet18 and
# densenet121 trained with it, 5,000 images held out, float16 weights), then
# scripts/gpu_bundle.py packs the finals' weights into $OUT in parts small enough to copy back
# from a machine whose file transfers are limited (8 files of at most 16 MiB by default).
#
#   DATA=/path/holding/cifar-10-batches-py bash scripts/gpu_session.sh [gpu_sweep.py args]
#   OUT=/tmp/out BUDGET=900 bash scripts/gpu_session.sh --final-models resnet18
#
# DATA unset: cifarzoo's default data root ($CIFARZOO_DATA, else ~/.cache/cifarzoo); DATA_NAME
# names the data in the results (unset: "CIFAR-10" for the official release, recognised by its
# md5 sums, else "CIFAR-10 (unverified copy)"). RUNS (default runs) is where the session works,
# OUT (default $RUNS/session-out) what it packs. Then, on the machine that keeps the weights:
#
#   python scripts/gpu_bundle.py unpack OUT_COPY runs/gpu --install   # checks every sha256
#   python scripts/accuracy_table.py
#
# Runs that do not fit one copy wait in later batches: `bash scripts/gpu_session.sh --collect N`
# copies batch N to $OUT. BUDGET (default 500 s, from the script's start) bounds the training: a
# final that would not fit is skipped, and a hard stop at BUDGET + 60 s leaves time to pack what
# finished.
#   bash scripts/gpu_session.sh --smoke [gpu_sweep.py args]   # the whole path on a CPU, synthetic
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs}"  # where the session works
DEST="${OUT:-$RUNS/session-out}"
LATER="$RUNS/session/later"
PY="${PYTHON:-$(command -v python3 || command -v python)}"  # some images have python3 alone
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$DEST" "$RUNS"
if [ "${1:-}" = "--collect" ]; then
  batch="$LATER/batch-${2:?--collect needs the batch number}"
  [ -d "$batch" ] || { echo "no $batch: no such batch waits on this machine" >&2; exit 1; }
  cp "$batch"/* "$DEST"/ && ls -l "$DEST"
  exit
fi
data_args=()
[ -n "${DATA:-}" ] && data_args+=(--data "$DATA")
[ -n "${DATA_NAME:-}" ] && data_args+=(--data-name "$DATA_NAME")
pack_args=()
if [ "${1:-}" = "--smoke" ]; then
  data_args=()  # gpu_recipe.py --smoke trains on synthetic images without --data
  pack_args=(--part-bytes 262144)  # 256 KiB parts: small models take the multi-part path too
else
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
budget="${BUDGET:-500}"
# the budget counts from this script's start ($SECONDS); the hard stop leaves time to pack the
# results even if an estimate was wrong
timeout "$((budget + 60 - SECONDS))" "$PY" benchmarks/gpu_sweep.py "${data_args[@]}" \
  --out "$RUNS/session" --budget "$((budget - SECONDS))" "$@" 2>&1 | tee "$RUNS/session.log"
shopt -s nullglob
"$PY" scripts/gpu_bundle.py pack "$DEST" "$RUNS"/session/final/*/ --later "$LATER" \
  --session "$RUNS/session/session.json" --log "$RUNS/session.log" "${pack_args[@]}" \
  || cp "$RUNS/session.log" "$RUNS/session/session.json" "$DEST"/  # the metrics at least
ls -l "$DEST"
