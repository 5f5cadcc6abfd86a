#!/usr/bin/env bash
# One call on a lent GPU: benchmarks/gpu_sweep.py (recipe chosen on a validation split, then
# resnet18, seresnet18 and densenet121 trained with it, 5,000 images held out, float16 weights),
# with the offline data set carried in .device/, and the trained weights packed into $OUT by
# scripts/gpu_bundle.py (8 files at most come back, 16 MiB each, 64 MiB in all).
#
# Here, before the call:
#   mkdir -p .device && cp ../shared/datasets/cifar10/{cifar10-jpeg.npz,materialize.py} .device/
# The call (one command: machine start + about 9.5 minutes of the session's 15):
#   run(command="bash scripts/gpu_session.sh", carry=[".device"], timeout_s=595)
# Here, after it (FILES_AT = the reply's files_at):
#   python scripts/gpu_bundle.py unpack FILES_AT runs/gpu --install   # checks every sha256
#   python scripts/accuracy_table.py
# If pack had to leave runs for a later batch (it prints so; not with these three models), bring
# batch N back while the machine is still warm with
#   run(command="bash scripts/gpu_session.sh --collect N", timeout_s=60)
#
# BUDGET (default 500 s, from the script's start) bounds the training: a final that would not fit
# is skipped; a hard stop at BUDGET + 60 s leaves time to pack what finished.
#   bash scripts/gpu_session.sh --smoke [gpu_sweep.py args]   # the whole path on a CPU, synthetic
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=.device/data
RUNS="${RUNS:-runs}"  # where the session works (on the device: the repository's runs/)
DEST="${OUT:-$RUNS/session-out}"
LATER="$RUNS/session/later"
PY="${PYTHON:-$(command -v python3 || command -v python)}"  # the device image may have python3 alone
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$DEST" "$RUNS"
if [ "${1:-}" = "--collect" ]; then
  batch="$LATER/batch-${2:?--collect needs the batch number}"
  [ -d "$batch" ] || { echo "no $batch on this machine (it was handed back?)" >&2; exit 1; }
  cp "$batch"/* "$DEST"/ && ls -l "$DEST"
  exit
fi
data_args=(--data "$DATA")
pack_args=()
if [ "${1:-}" = "--smoke" ]; then
  data_args=()  # gpu_recipe.py --smoke trains on synthetic images without --data
  pack_args=(--part-bytes 262144)  # 256 KiB parts: small models take the multi-part path too
else
  [ -d "$DATA/cifar-10-batches-py" ] || "$PY" .device/materialize.py "$DATA" || exit 1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
budget="${BUDGET:-500}"
# the budget counts from this script's start ($SECONDS, data set included); the hard stop leaves
# time to pack the results within the call even if an estimate was wrong
timeout "$((budget + 60 - SECONDS))" "$PY" benchmarks/gpu_sweep.py "${data_args[@]}" \
  --out "$RUNS/session" --budget "$((budget - SECONDS))" "$@" 2>&1 | tee "$RUNS/session.log"
shopt -s nullglob
"$PY" scripts/gpu_bundle.py pack "$DEST" "$RUNS"/session/final/*/ --later "$LATER" \
  --session "$RUNS/session/session.json" --log "$RUNS/session.log" "${pack_args[@]}" \
  || cp "$RUNS/session.log" "$RUNS/session/session.json" "$DEST"/  # the metrics at least
ls -l "$DEST"
