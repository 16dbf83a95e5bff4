# Entry points for a fresh machine with only python3: `make demo`, `make test` and `make lint`.
# Each creates or updates .venv by itself, with the versions pinned in constraints.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[demo,test,lint,deploy,fast-jpeg]"
	touch $(STAMP)

# About 80 s on 2 CPU cores: ResNet-20 on the embedded MNIST digits for 6 epochs (about 2% test error).
demo: $(STAMP)
	$(VENV)/bin/resnetlab train --model resnet20 --data default --recipe cosine --epochs 6 --warmup-iterations 30 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (lint and format check) on everything, mypy on src/ (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts hubconf.py
	$(VENV)/bin/ruff format --check src tests benchmarks scripts hubconf.py
	$(VENV)/bin/mypy

# Rewrite imports and layout as `make lint` wants them.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts hubconf.py
	$(VENV)/bin/ruff format src tests benchmarks scripts hubconf.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
