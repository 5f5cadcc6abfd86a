#!/usr/bin/env bash
# One call on a lent GPU: benchmarks/gpu_sweep.py (recipe chosen on a validation split, then the
# big models trained with it), with the offline data set carried in .device/. Prepare here:
#
#   mkdir -p .device && cp ../shared/datasets/cifar10/{cifar10-jpeg.npz,materialize.py} .device/
#
# then run `bash scripts/gpu_session.sh` there with .device carried (run(carry=[".device"],
# timeout_s=590)). BUDGET (default 500 s) bounds the session; session.json, its log and each
# final's metrics.json and history.json are copied to $OUT (8 files at most come back).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=.device/data
DEST="${OUT:-runs/session-out}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"  # the device image may have python3 alone
mkdir -p "$DEST" runs
[ -d "$DATA/cifar-10-batches-py" ] || "$PY" .device/materialize.py "$DATA" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
budget="${BUDGET:-500}"
# the hard stop leaves time to copy the results back even if an estimate was wrong
timeout "$((budget + 60))" "$PY" benchmarks/gpu_sweep.py --data "$DATA" --out runs/session \
  --budget "$budget" "$@" 2>&1 | tee runs/session.log
cp runs/session.log runs/session/session.json "$DEST"/ 2>/dev/null
for run in runs/session/final/*/; do
  m=$(basename "$run")
  cp "$run/metrics.json" "$DEST/$m-metrics.json" 2>/dev/null
  cp "$run/history.json" "$DEST/$m-history.json" 2>/dev/null
done
ls -l "$DEST"
