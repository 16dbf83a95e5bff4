# Two entry points for a fresh machine with only python3: `make demo` and `make test`.
# Each creates or updates .venv by itself, with the versions pinned in constraints.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[demo,test]"
	touch $(STAMP)

# About 80 s on 2 CPU cores: ResNet-20 on the embedded MNIST digits for 6 epochs (about 2% test error).
demo: $(STAMP)
	$(VENV)/bin/resnetlab train --model resnet20 --data default --recipe cosine --epochs 6 --warmup-iterations 30 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
