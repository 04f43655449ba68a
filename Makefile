# Thin wrappers: every target calls Python in the course's own virtual environment.
# The two commands a user needs are `make course` and `make test` (see README.md).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cnncourse-installed
# A second environment with JAX alone (TensorFlow absent, as on many GPU machines): `make test`
# runs the smoke course there too, and the unit tests whose outcome can depend on the backend.
VENV_JAX  := .venv-jax
PY_JAX    := $(VENV_JAX)/bin/python
STAMP_JAX := $(VENV_JAX)/.cnncourse-installed
# Unit tests and smoke notebooks run on TensorFlow (.venv) and on JAX without TensorFlow (.venv-jax).
PYTEST := $(PY) -m pytest -q
PYTEST_JAX := $(PY_JAX) -m pytest -q
# extra pytest arguments for `make test`, e.g. TEST_ARGS='-m "not browser"' skips the browser test
TEST_ARGS ?=
# `make lab LAB_DIR=student` serves the student copies; LAB_ARGS e.g. --ip=0.0.0.0 for a classroom
LAB_DIR ?= notebooks
LAB_ARGS ?=
# `make site REPO=owner/name` adds "Open in Colab" and Binder buttons (default: $CNNCOURSE_REPO, else
# the origin remote when it is on GitHub)
REPO ?=
# `make grade NB=04_activations_init`: nbgrader's loop for one assignment in grading/;
# GRADE_ARGS=--self-test also submits the unchanged release and the reference solutions
NB ?=
GRADE_ARGS ?=

.PHONY: setup setup-jax course test unit notebooks lab student site grade bench gpu-check gpu-prepare data doctor clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[tensorflow,jax,test]"
	@touch $(STAMP)

setup: $(STAMP)                    ## create .venv and install the course

$(STAMP_JAX): pyproject.toml
	@test -x $(PY_JAX) || $(PYTHON) -m venv $(VENV_JAX)
	$(PY_JAX) -m pip install -q --upgrade pip
	$(PY_JAX) -m pip install -q -e ".[jax,test]"
	@touch $(STAMP_JAX)

setup-jax: $(STAMP_JAX)            ## create .venv-jax: the course on JAX with TensorFlow absent

course: $(STAMP)                   ## run every notebook in the active profile, write build/
	$(PY) -m cnncourse doctor
	$(PY) -m cnncourse run

# TensorFlow's environment runs every unit test, the browser tests and the smoke notebooks; the
# JAX-only one first proves TensorFlow is absent, then runs the unit tests that can depend on the
# backend (conftest.py marks the others backend_neutral) and the whole smoke course again.
test: $(STAMP) $(STAMP_JAX)        ## unit + browser + smoke notebook tests on TensorFlow, then on JAX without TensorFlow
	$(PYTEST) -n 2 --dist loadfile --nbval-lax $(TEST_ARGS) tests notebooks
	@$(PY_JAX) -c 'import importlib.util as u, sys; sys.exit("TensorFlow is installed in $(VENV_JAX): it must not be" if u.find_spec("tensorflow") else 0)'
	$(PYTEST_JAX) -n 2 tests/unit -m "not tf_only and not backend_neutral"
	$(PYTEST_JAX) -n 2 --dist loadfile --nbval-lax notebooks

unit: $(STAMP)
	$(PYTEST) tests/unit

notebooks: $(STAMP)
	$(PYTEST) -n 2 --dist loadfile --nbval-lax notebooks

lab: $(STAMP)                      ## JupyterLab on the course notebooks (LAB_DIR=student for the student copies)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(LAB_DIR) $(LAB_ARGS)

student: $(STAMP)                  ## student/ copies: solutions cleared by nbgrader, outputs removed
	$(PY) -m cnncourse student

site: $(STAMP)                     ## the course book (Sphinx + MyST-NB) of the stored outputs in build/site/
	$(PY) -m cnncourse site $(if $(REPO),--repo $(REPO))

grade: $(STAMP)                    ## nbgrader's loop for one assignment: make grade NB=04_activations_init
	@test -n "$(NB)" || { echo "usage: make grade NB=NN_name (an assignment in grading/source/)"; exit 2; }
	$(PY) -m cnncourse grade $(NB) $(GRADE_ARGS)

bench: $(STAMP)                    ## run the benchmarks, rewrite benchmarks/results/*.md
	$(PY) -m cnncourse bench

gpu-check:                         ## on a GPU: every notebook in the gpu profile (time budget) + benchmarks, Keras on JAX
	PY=$(if $(wildcard $(PY)),$(PY),python3) scripts/gpu_check.sh

gpu-prepare: $(STAMP)              ## wheels (.whl/) and datasets (.gpu-data/) for running gpu-check on a bare JAX machine
	PY=$(PY) scripts/gpu_prepare.sh

data: $(STAMP)                     ## download (where a network exists) and verify the datasets
	$(PY) -m cnncourse data fetch
	$(PY) -m cnncourse data verify

doctor: $(STAMP)
	$(PY) -m cnncourse doctor

clean:
	rm -rf build student
