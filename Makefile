# Two commands for a newcomer: `make demo` and `make test`. Each sets up what it needs from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where torch comes from. Empty: pip's own configuration (here a local CPU wheel; on PyPI the
# Linux wheel is the multi-GB CUDA build). `make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu`
# takes the CPU build from PyTorch's index, as deploy/Dockerfile.cpu does.
TORCH_INDEX_URL ?=
TORCH_FROM := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)

.PHONY: setup demo test lint typecheck unit bench clean

setup: $(STAMP)

# torch==2.13.0 first, from TORCH_INDEX_URL when set: a bare `torch` requirement would pull a
# multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_FROM)
	$(BIN)/pip install --quiet -e '.[dev,onnx]'
	touch $(STAMP)

demo: setup
	$(BIN)/streamseg demo

lint: setup
	$(BIN)/ruff check streamseg tests bench
	$(BIN)/ruff format --check streamseg tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q -ra

test: lint typecheck unit

bench: setup
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
