#!/usr/bin/env bash
# Train the big models on a GPU and build their publishable Hub folders (nothing is uploaded).
#
#   DATA=/path/holding/cifar-10-batches-py ORG=my-org scripts/train_big_gpu.sh [MODELS...]
#
# DATA_NAME names the data in the results (unset: "CIFAR-10" for the official release, recognised
# by its md5 sums, else "CIFAR-10 (unverified copy)"; e.g. DATA_NAME="CIFAR-10 (JPEG mirror)").
#
# benchmarks/gpu_recipe.py writes a `cifarzoo train`-style run folder per model in runs/gpu/<model>
# (model.safetensors + .sha256, metrics.json, curves); each is then built into hub/<model> and
# loaded back through timm's local-dir: to check it. Until the upload, the measured metrics can be
# recorded alone (`python scripts/install_weights.py runs/gpu/<model> --unpublished`); the model
# table lists them once the weights load.
# Upload and register afterwards:
#
#   cifarzoo publish --run runs/gpu/<model> --repo-id $ORG/cifarzoo-<model>
#   python scripts/install_weights.py runs/gpu/<model> --hub-id $ORG/cifarzoo-<model>@<commit>
#   python scripts/accuracy_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to the folder holding cifar-10-batches-py}"
ORG="${ORG:-cifarzoo}"
PY="${PYTHON:-python}"
name_args=()
[ -n "${DATA_NAME:-}" ] && name_args=(--data-name "$DATA_NAME")
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 seresnet18 densenet121)

"$PY" benchmarks/gpu_recipe.py --data "$DATA" "${name_args[@]}" --out runs/gpu \
  --models "${models[@]}" ${EXTRA_ARGS:-}
for m in "${models[@]}"; do
  rm -rf "hub/$m"
  "$PY" - "runs/gpu/$m" "$ORG/cifarzoo-$m" "hub/$m" <<'PYEOF'
import sys
from cifarzoo.hub import publish
result = publish(sys.argv[1], sys.argv[2], out_dir=sys.argv[3], dry_run=True)
print(f"built {result.folder} for {result.repo_id}")
PYEOF
done
