#!/usr/bin/env bash
# Run the gpu profile on one GPU in one command: every notebook within a device-time budget,
# then the benchmarks, all on Keras-on-JAX; the tables are written with the device named.
#
# On a machine with the course installed (`pip install -e ".[jax-cuda,test]"`): `make gpu-check`.
# On a bare machine with JAX and CUDA only: run scripts/gpu_prepare.sh here first, copy the
# checkout with .whl/ and .gpu-data/, and run this script there; it installs the wheels into a
# private folder first. Results: results/gpu_check.md, results/timings.json (the "gpu" rows the
# course map shows), benchmarks/results/*_<device>.md, and the executed notebooks in build/gpu/.
# With $OUT set, they are also packed into $OUT/gpu_results.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
BUDGET=${GPU_BUDGET_MINUTES:-8}
JOBS=${GPU_JOBS:-5}  # notebooks at once: small networks leave a GPU mostly idle, so their host work overlaps
if [ -d .whl ] && ! "$PY" -c "import keras, nbclient, ipykernel" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/cnncourse-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/cnncourse-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
[ -d .gpu-data ] && export CNNCOURSE_DATA=${CNNCOURSE_DATA:-$PWD/.gpu-data}
export PYTHONUNBUFFERED=1
status=0
"$PY" -m cnncourse doctor || status=1
"$PY" -m cnncourse gpu-check --budget-minutes "$BUDGET" --jobs "$JOBS" || status=1
"$PY" benchmarks/throughput.py --size 224 --batch 64 --steps 10 --dtype mixed_bfloat16 --write || status=1
"$PY" benchmarks/augmentation.py --batch-size 512 --write || status=1
"$PY" benchmarks/precision.py --batch 512 --steps 30 --write || status=1  # notebook 10 shows this table
"$PY" benchmarks/time_to_accuracy.py --budget 60 --write || status=1
if [ -n "${OUT:-}" ]; then  # one archive: a borrowed machine returns only a few files
    tar czf "$OUT/gpu_results.tgz" results/gpu_check.md results/timings.json benchmarks/results build/gpu/*.ipynb 2>/dev/null
fi
exit $status
