#!/usr/bin/env bash
# The main job: set up jcl in a virtual environment and run the split MNIST
# None and Joint baselines in all three scenarios, 5 seeds at once, on the
# real MNIST data (fetched and checksummed on first use).
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
exec jcl run --protocol split-mnist --scenario all --method none,joint \
  --seeds 5 --out runs/split-mnist-baselines "$@"
