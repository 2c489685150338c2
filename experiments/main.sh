#!/usr/bin/env bash
# The main job: set up jcl in a virtual environment and run the brain-
# inspired replay comparison on split MNIST Class-IL (None, GR, BI-R and
# Joint, 3 seeds at once, the NMI 2022 code's settings: every output unit
# active from the first task) on the real MNIST data (fetched and
# checksummed on first use). The plot: runs/split-mnist-bir/accuracy.png.
#
#   bash experiments/main.sh [extra jcl run flags, e.g. --out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e .
exec jcl run --protocol split-mnist --scenario class \
  --method none,gr,bir,joint --class-outputs all \
  --seeds 3 --out runs/split-mnist-bir "$@"
