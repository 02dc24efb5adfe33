# convbench: `make bench` and `make test` on a fresh clone; both create .venv on first use.
#
# On a machine whose Python already has the dependencies and no package registry (a typical GPU box),
# name the interpreter and no venv is made:   make bench PYTHON=python3
SHELL := /bin/bash
VENV ?= .venv
SHAPES ?= default
BENCH_ARGS ?=

# Peers (PyTorch, as oneDNN and cuDNN's front end): `make bench PEERS=1` also installs TORCH_SPEC.
# The default pins the CPU build this project's machines keep on disk; TORCH_SPEC=torch takes the
# registry's newest (with its CUDA packages, several GB).
PEERS ?= 0
TORCH_SPEC ?= torch==2.13.0

# The pinned versions (see constraints.txt); CONSTRAINTS= installs the newest instead.
CONSTRAINTS ?= constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

ifeq ($(origin PYTHON),command line)
PY := $(PYTHON)
SETUP :=
else
PYTHON := python3
PY := $(VENV)/bin/python
SETUP := $(VENV)/.installed
ifeq ($(PEERS),1)
SETUP += $(VENV)/.peers
endif
endif

.PHONY: bench bench-quick test setup list clean report history ab compare

setup: $(SETUP)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIN) -e '.[test]'
	@touch $@

$(VENV)/.peers: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIN) '$(TORCH_SPEC)'
	@touch $@

bench: $(SETUP)
	$(PY) -m convbench run --shapes $(SHAPES) --report report --compare-latest $(BENCH_ARGS)

bench-quick: $(SETUP)
	$(PY) -m convbench run --shapes $(SHAPES) --quick $(BENCH_ARGS)

# Interleaved A/B timing of the kernels of BASE (a git revision) against this working tree.
BASE ?= HEAD
AB_ARGS ?=
ab: $(SETUP)
	$(PY) -m convbench ab --base $(BASE) --shapes $(SHAPES) $(AB_ARGS)

test: $(SETUP)
	$(PY) -m pytest $(TEST_ARGS)

list: $(SETUP)
	$(PY) -m convbench list

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# This machine's latest run against the one before it of the same selection, its other runs as
# history; or BASE_RUN=... NEW_RUN=...
compare: $(SETUP)
	$(PY) -m convbench compare $(BASE_RUN) $(NEW_RUN) $(COMPARE_ARGS)

report: $(SETUP)
	$(PY) -m convbench report --out report

history: $(SETUP)
	$(PY) -m convbench history --out report
