#!/usr/bin/env bash
# Prepare a bare GPU machine's run of the gpu profile (scripts/gpu_check.sh), from this checkout.
#
# A borrowed GPU machine may have JAX with CUDA and nothing else of ours: no Keras, no Jupyter
# kernel, no network. This downloads, for its Python (3.12, x86-64 Linux), the wheels the course
# needs beyond what such a machine has (Keras and the notebook-execution stack; numpy, JAX,
# matplotlib, h5py, scipy are expected there), pinned to the versions of this checkout's .venv,
# into .whl/, and copies the offline Fashion-MNIST files into .gpu-data/. Both folders are
# git-ignored; name them when copying the checkout to the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PYTHON_VERSION=${GPU_PYTHON_VERSION:-3.12}
NAMES="keras namex optree nbclient nbformat nbconvert jupyter_client jupyter_core ipykernel ipython
ipython_pygments_lexers traitlets pyzmq tornado comm debugpy matplotlib-inline platformdirs fastjsonschema
jsonschema jsonschema-specifications referencing rpds-py prompt_toolkit pexpect ptyprocess jedi parso
stack-data asttokens executing pure_eval wcwidth bleach mistune pandocfilters tinycss2 defusedxml
jupyterlab_pygments beautifulsoup4 soupsieve webencodings"
pins=()
for name in $NAMES; do
    version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null) || {
        echo "gpu_prepare: $name is not installed in $PY; run 'make setup' first" >&2; exit 1; }
    pins+=("$name==$version")
done
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
         manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 any; do
    platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    "${platforms[@]}" -d .whl "${pins[@]}"
data=${CNNCOURSE_DATA:-../shared/datasets}
mkdir -p .gpu-data
cp -r "$data/fashion-mnist" .gpu-data/
echo "gpu_prepare: $(ls .whl | wc -l) wheels ($(du -sh .whl | cut -f1)) in .whl/, datasets ($(du -sh .gpu-data | cut -f1)) in .gpu-data/"
