# twinbench: two commands on a fresh machine.
#   make conform   run the whole conformance suite and write reports/
#   make test      what CI runs (.ci/run calls it)
# Each target builds .venv from pyproject.toml's pins and prepares the data cache first.

PYTHON ?= python3.11
export TF_CPP_MIN_LOG_LEVEL = 2
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.twinbench-installed

.PHONY: test conform data venv clean-venv

venv: $(STAMP)

# The pins are read from pyproject.toml (one source of truth); the stamp is written last,
# so an interrupted install is redone on the next call.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt
	$(PY) -c "import torch, tensorflow, keras; assert torch.__version__.startswith('2.14.1'), torch.__version__"
	touch $(STAMP)

data: $(STAMP)
	$(PY) -m fixtures.data

test: data
	$(PY) -m pytest -p no:cacheprovider --benchmark-disable

conform: data
	mkdir -p reports
	$(PY) -m pytest -p no:cacheprovider --conform-report reports

clean-venv:
	rm -rf $(VENV)
