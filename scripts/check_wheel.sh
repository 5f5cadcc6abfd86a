#!/usr/bin/env bash
# Build cifarzoo's wheel and check it as a user gets it: installed into a fresh virtual
# environment, offline (HF_HUB_OFFLINE=1), from outside the checkout. Every weights the
# installed package ships loads by name and runs (scripts/check_wheel.py); with a CIFAR-10 folder,
# `cifarzoo eval ARCH.TAG --pretrained` also prints each one's recorded test accuracy.
#
#   bash scripts/check_wheel.sh [DATA_DIR]    # DATA_DIR default: $CIFARZOO_TEST_DATA, if set
#
# Fails when the wheel is over 80 MB. Needs about 6 GB free in $TMPDIR (torch), all removed after.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${CIFARZOO_TEST_DATA:-}}
python=${PYTHON:-python3}
max_mb=80
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "$data" ]; then
    data=$(cd "$data" && pwd)  # the checks run from another folder
fi

echo "--- building the wheel"
# from a copy of the checkout's files (tracked, and untracked ones git does not ignore): a
# build/ folder left in the checkout could put files deleted since into the wheel
mkdir "$work/tree"
git -C "$root" ls-files -z --cached --others --exclude-standard \
    | (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) \
    | tar -xf - -C "$work/tree"
"$python" -m pip wheel -q --no-deps -w "$work/dist" "$work/tree"
wheel=$(ls "$work"/dist/cifarzoo-*.whl)
size_bytes=$(stat -c %s "$wheel")
size_mb=$(awk -v b="$size_bytes" 'BEGIN { printf "%.1f", b / 1024 / 1024 }')
echo "wheel: $(basename "$wheel"), ${size_mb} MB"
if [ "$size_bytes" -gt $((max_mb * 1024 * 1024)) ]; then
    echo "FAILED: the wheel is ${size_mb} MB, over the ${max_mb} MB limit" >&2
    exit 1
fi

echo "--- installing it into a fresh virtual environment"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"

echo "--- checking the installed package (offline, from $work)"
cp "$root/scripts/check_wheel.py" "$work/"
cd "$work"
HF_HUB_OFFLINE=1 "$work/venv/bin/python" check_wheel.py \
    --package-under "$work/venv" ${data:+--data "$data"}
