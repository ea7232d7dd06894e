#!/usr/bin/env bash
# Creates the `learnware` package's own venv (the anchor), never the project's shared .venv.
# torch==2.13.0 goes in first so pip keeps the local CPU wheel instead of pulling a CUDA build;
# fast-pytorch-kmeans (imported by its RKME code) and lightgbm (JobSelectorReuser) are not declared;
# scikit-learn < 1.8 because FeatureAugmentReuser passes LogisticRegressionCV(multi_class=...), gone in 1.8.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${LEARNWARE_VENV:-$ROOT/benchmarks/.venvs/learnware}"
# One install at a time: concurrent benchmark runs (one per market) each call this script, and two
# pips writing the same venv made one run's install fail (exit 1) and lose the anchor's figures.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import learnware, lightgbm, sklearn; assert sklearn.__version__ < '1.8'" 2>/dev/null; then
  echo "$VENV"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q learnware==0.4.0.post1 fast-pytorch-kmeans lightgbm "scikit-learn<1.8"
echo "$VENV"
